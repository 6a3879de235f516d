"""Who is told what when a team changes by hand or by 补员, a task is closed uninspected,
or a specialist is assigned to assist (issue 18 §2), queued in the change's transaction
like every other notice (bot.batches.notices)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from bot import outbox_keys
from bot.batches import cards, notices
from bot.batches.inspection import team_of
from bot.batches.staffing import Assisted, Closed, Staffed
from bot.chat import recipients
from bot.outbound import Text
from bot.settings import Settings
from bot.texts import say
from storage import outbox
from storage.models import InspectionObject, Inspector, Item, Task


def _people(session: Session, task: Task, ids: list[str]) -> dict[str, Inspector]:
    wanted = set(ids) | ({task.expert_id} if task.expert_id else set())
    return {i.id: i for i in session.exec(select(Inspector).where(col(Inspector.id).in_(sorted(wanted))))}


def queue_staffed(session: Session, settings: Settings, done: Staffed) -> None:
    """Each newcomer gets the task card like any drawn member (a hand assignment says so);
    the standing partners are told who joined."""
    if not done.added:
        return
    task, batch = done.team.task, done.team.batch
    assert task.id is not None  # a stored task
    team = team_of(session, task.id)
    people = _people(session, task, [a.inspector_id for a in team])
    obj = session.get_one(InspectionObject, task.object_id)
    items = [i for i in (session.get(Item, code) for code in task.items) if i]
    messages: notices.Queued = []
    newcomers = [a.inspector_id for a in done.added]
    for added in done.added:
        card = cards.task_card(task, added, team, batch, obj, items, people)
        messages += notices._task_card_messages(settings, people[added.inspector_id], added, card)
    text = say("staffing", "joined", task=task, obj=obj, names=[people[i].name for i in newcomers],
               by_hand=any(a.origin == "hand" for a in done.added))
    first = done.added[0]
    assert first.id is not None  # flushed
    for partner in team:
        if partner.status != "recused" and partner.inspector_id not in newcomers:
            messages += notices._to_all(recipients.inspector(settings, people[partner.inspector_id]), Text(text),
                                        outbox_keys.staffed(first.id))
    outbox.queue_many(session, messages)


def queue_closed(session: Session, settings: Settings, done: Closed) -> None:
    """The standing team is told, and their task cards greyed out."""
    task = done.task
    assert task.id is not None  # a stored task
    obj = session.get_one(InspectionObject, task.object_id)
    text = say("staffing", "task_closed", task=task, obj=obj)
    messages: notices.Queued = []
    for member in done.standing:
        person = session.get_one(Inspector, member.inspector_id)
        messages += notices._to_all(recipients.inspector(settings, person), Text(text),
                                    outbox_keys.task_closed(task.id))
        notices.close_task_card(session, settings, member, say("staffing", "closed_button"), "closed")
    outbox.queue_many(session, messages)


def queue_assisting(session: Session, settings: Settings, done: Assisted) -> None:
    """The specialist is told privately (art. 12): the task, the object, the team; and the
    team who assists them."""
    task = done.task
    assert task.id is not None  # a stored task
    obj = session.get_one(InspectionObject, task.object_id)
    team = [a for a in team_of(session, task.id) if a.status != "recused"]
    people = _people(session, task, [a.inspector_id for a in team])
    text = say("staffing", "assist_notice", task=task, obj=obj, batch=done.batch,
               members=[people[a.inspector_id].name for a in team], wanted=done.wanted)
    key = outbox_keys.assisting(task.id, done.expert.id)
    messages = notices._to_all(recipients.inspector(settings, done.expert), Text(text), key)
    told = say("staffing", "assist_team_notice", task=task, obj=obj, name=done.expert.name, wanted=done.wanted)
    for member in team:  # the team knows who assists them (shown on the task)
        messages += notices._to_all(recipients.inspector(settings, people[member.inspector_id]), Text(told), key)
    outbox.queue_many(session, messages)
