"""Who is told what, queued in the transaction of the change itself (SPEC §2 step 6,
§5), so a notice exists exactly when its change does — made in chat or from the
command line alike: the draw (group announcement, one card per inspector per task),
a recusal (the replacement's card, the partner, the lead office, the group), a
result (the approver's card; the outcome to the inspectors)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlmodel import Session, SQLModel, col, select

from bot import outbox_keys
from bot.batches import cards
from bot.batches.inspection import team_of
from bot.chat import platforms, recipients
from bot.outbound import CARD, GROUP, Card, CardUpdate, Destination, Message, Text
from bot.outbox_keys import Key
from bot.settings import Settings
from bot.texts import say
from storage import outbox
from storage.models import Assignment, Batch, InspectionObject, Inspector, Item, OutboxMessage, Result, Task

ANNOUNCE_GROUP = "default"  # the configured group robot

Row = TypeVar("Row", bound=SQLModel)
Queued = list[tuple[Destination, Message, Key]]


def _group(settings: Settings, text: str, notice: str) -> Queued:
    return [(Destination(p, GROUP, ANNOUNCE_GROUP), Text(text), outbox_keys.to_group(notice, p))
            for p in platforms.enabled(settings) if platforms.can_push_to_group(settings, p)]


def _to_all(destinations: list[Destination], message: Message, notice: str) -> Queued:
    return [(d, message, outbox_keys.to_person(notice, d.platform, d.address)) for d in destinations]


def queue_draw_notices(session: Session, settings: Settings, batch: Batch, counts: dict[str, int]) -> int:
    """The announcement and every task card of a drawn batch; returns how many."""
    if not platforms.enabled(settings):
        return 0
    tasks = session.exec(select(Task).where(Task.batch_id == batch.id).order_by(col(Task.position))).all()
    on_task: defaultdict[int, list[Assignment]] = defaultdict(list)
    for assignment in session.exec(select(Assignment).join(Task, col(Assignment.task_id) == Task.id)
                                   .where(Task.batch_id == batch.id).order_by(col(Assignment.position))):
        on_task[assignment.task_id].append(assignment)
    inspectors = _by_id(session, Inspector, Inspector.id, {a.inspector_id for g in on_task.values() for a in g})
    objects = _by_id(session, InspectionObject, InspectionObject.id, {t.object_id for t in tasks})
    items = _by_id(session, Item, Item.code, {code for t in tasks for code in t.items})
    link = f"{settings.server.public_base_url.rstrip('/')}/public/batches/{batch.id}"
    messages = _group(settings, say("notices", "draw_announcement", batch=batch, counts=counts, tasks=len(tasks),
                                    link=link), outbox_keys.draw(batch.id))
    for task in tasks:
        assert task.id is not None  # a stored task
        team = on_task[task.id]
        for assignment in team:
            card = cards.task_card(task, assignment, team, batch, objects[task.object_id],
                                   [items[c] for c in task.items if c in items], inspectors)
            messages += _task_card_messages(settings, inspectors[assignment.inspector_id], assignment, card)
    return outbox.queue_many(session, messages)


def _task_card_messages(settings: Settings, person: Inspector, assignment: Assignment, card: Card) -> Queued:
    """The task card to each of the inspector's platforms; on DingTalk without a card
    template, a private text with the buttons' command twins instead (``serve`` warns)."""
    assert assignment.id is not None  # a stored assignment
    as_text = Text(say("card_text", "task_card", card=card, task=assignment.task_id))
    return [(d, as_text if _no_cards(settings, d.platform) else card, outbox_keys.task_card(assignment.id, d.platform))
            for d in recipients.inspector(settings, person)]


def _no_cards(settings: Settings, platform: str) -> bool:
    """DingTalk sends interactive cards only through a card template (SPEC §4)."""
    return platform == platforms.DINGTALK and not settings.dingtalk.card_template_id


def queue_recusal_notices(session: Session, settings: Settings, task: Task, recused: Assignment,
                          replacement: str | None) -> None:
    """The replacement's card, and word to the partner, the lead office and the group."""
    assert task.id is not None and recused.id is not None  # stored rows
    batch = session.get_one(Batch, task.batch_id)
    obj = session.get_one(InspectionObject, task.object_id)
    team = team_of(session, task.id)
    people = {i.id: i for i in session.exec(select(Inspector).where(
        col(Inspector.id).in_([a.inspector_id for a in team])))}
    names = {i: person.name for i, person in people.items()}
    text = say("notices", "recused", task=task, obj=obj, who=names[recused.inspector_id],
               replacement=names.get(replacement) if replacement else None)
    messages: Queued = []
    if replacement:
        newcomer = next(a for a in team if a.inspector_id == replacement and a.status != "recused")
        items = [session.get(Item, code) for code in task.items]
        card = cards.task_card(task, newcomer, team, batch, obj, [i for i in items if i], people)
        messages += _task_card_messages(settings, people[replacement], newcomer, card)
    for partner in team:
        if partner.status != "recused" and partner.inspector_id != replacement:
            messages += _to_all(recipients.inspector(settings, people[partner.inspector_id]),
                                Text(text), outbox_keys.recusal(recused.id, "partner"))
    leads = recipients.unit_people(settings, batch.lead_unit_id, "leads")
    messages += _to_all(recipients.people(settings, leads), Text(text), outbox_keys.recusal(recused.id, "lead"))
    messages += _group(settings, text, outbox_keys.recusal(recused.id, "group"))
    outbox.queue_many(session, messages)


def close_task_card(session: Session, settings: Settings, assignment: Assignment, closed: str, outcome: str) -> None:
    """Grey out an inspector's task card on every platform with the outcome (the click
    that decided may have been on another platform, or a typed command)."""
    assert assignment.id is not None  # a stored assignment
    _close_cards(session, outbox_keys.task_card_subject(assignment.id), closed,
                 lambda sent_id: outbox_keys.task_card_closed(outcome, sent_id))


def close_result_cards(session: Session, task_id: int, closed: str) -> None:
    """Once a result is submitted, the result cards of the task's team, everywhere."""
    _close_cards(session, outbox_keys.result_card_subject(task_id), closed, outbox_keys.result_card_closed)


def _close_cards(session: Session, subject: str, closed: str, close_key: Callable[[int], Key]) -> None:
    """Update every card sent about ``subject``, with the handle the platform gave when
    it was sent (``update_token``: WeCom's one-time response code, DingTalk's
    outTrackId); once per card and ``close_key``."""
    rows = session.exec(select(OutboxMessage).where(OutboxMessage.subject == subject,
                                                    OutboxMessage.kind == "card")).all()
    messages: Queued = []
    for sent in rows:
        assert sent.id is not None  # a stored row
        if token := (sent.platform_response or {}).get("update_token"):
            messages.append((Destination(sent.platform, CARD, sent.recipient),
                             CardUpdate(sent.payload["message"]["card_id"], closed, token), close_key(sent.id)))
    outbox.queue_many(session, messages)


def queue_result_card(session: Session, settings: Settings, task: Task, inspector_id: str, evidence: int) -> None:
    """The result card to the inspector who marked the inspection done."""
    task_id = task.id
    assert task_id is not None  # a stored task
    attempt = len(session.exec(select(Result.id).where(Result.task_id == task_id)).all()) + 1
    card = cards.result_card(task, session.get_one(InspectionObject, task.object_id), evidence, attempt)
    person = session.get_one(Inspector, inspector_id)
    outbox.queue_many(session, [(d, card, outbox_keys.result_card(task_id, attempt, d.platform, d.address))
                                for d in recipients.inspector(settings, person)])


def approval_recipients(session: Session, settings: Settings, task: Task) -> list[Destination]:
    """Who is asked to decide: the approvers of the lead inspector's unit; failing them,
    the lead office's leads, then the admins — someone must be asked (art. 20). Nobody is
    asked to decide on their own work (细则第十四条, 第二十条): an account of anyone ever on
    the team is left out, and a tier left empty by that falls to the next."""
    from bot.batches.results import lead_unit

    assert task.id is not None  # a stored task
    batch = session.get_one(Batch, task.batch_id)
    own = {(platform, user) for a in team_of(session, task.id)
           for person in [session.get_one(Inspector, a.inspector_id)] for platform in platforms.enabled(settings)
           if (user := platforms.user_id(person, platform))}
    tiers = (recipients.unit_people(settings, lead_unit(session, task.id), "approvers"),
             recipients.unit_people(settings, batch.lead_unit_id, "leads"), list(settings.roles.admins))
    return recipients.first_reachable(settings, tiers, leave_out=own)


def queue_approval_cards(session: Session, settings: Settings, result: Result, task: Task, evidence: int) -> None:
    assert task.id is not None and result.id is not None  # stored rows
    obj = session.get_one(InspectionObject, task.object_id)
    team = [a for a in team_of(session, task.id) if a.status != "recused"]
    names = [session.get_one(Inspector, a.inspector_id).name for a in team]
    messages: Queued = []
    for d in approval_recipients(session, settings, task):
        card = cards.approval_card(result, task, obj, names, evidence, d.address)
        messages.append((d, card, outbox_keys.approval_card(result.id, d.platform, d.address)))
    outbox.queue_many(session, messages)


def close_approval_cards(session: Session, settings: Settings, result: Result, closed: str) -> None:
    """Every approver's card for this result greys out once one of them decided."""
    assert result.id is not None  # a stored result
    _close_cards(session, outbox_keys.approval_card_subject(result.id), closed, outbox_keys.approval_card_closed)


def queue_decision_notices(session: Session, settings: Settings, result: Result, task: Task) -> None:
    """Tell the task's inspectors what became of their result."""
    assert task.id is not None and result.id is not None  # stored rows
    obj = session.get(InspectionObject, task.object_id)
    text = say("notices", "decided", result=result, task=task, obj=obj)
    messages: Queued = []
    for a in team_of(session, task.id):
        if a.status != "recused":
            messages += _to_all(recipients.inspector(settings, session.get_one(Inspector, a.inspector_id)), Text(text),
                                outbox_keys.decided(result.id, result.status))
    outbox.queue_many(session, messages)


def _by_id(session: Session, model: type[Row], column: Any, ids: Iterable[Any]) -> dict[Any, Row]:
    """Rows of ``model`` by the value of ``column`` (a model's column attribute, which
    sqlmodel types as its value), fetched in chunks of 10,000."""
    found: dict[Any, Row] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), 10_000):
        for row in session.exec(select(model).where(column.in_(ordered[start:start + 10_000]))):
            found[getattr(row, column.key)] = row
    return found
