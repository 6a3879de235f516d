"""Who is told what after a draw (SPEC §2 step 6): a group announcement, and one private
card per inspector per task with 无利害关系 / 申请回避. Queued in the draw's own
transaction, so the notices exist exactly when the draw does — whether it was made in
chat or from the command line."""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import Session, select

from bot.chat import platforms
from bot.chat.outbound import GROUP, USER, Button, Card, Destination, Text
from bot.texts import say
from storage import outbox
from storage.models import Assignment, Batch, InspectionObject, Inspector, Item, Task

ANNOUNCE_GROUP = "default"  # the configured group robot


def task_card_id(task_id: int, assignment_id: int) -> str:
    """Stable per inspector and task: WeCom's task_id / DingTalk's outTrackId."""
    return f"ss-t{task_id}-a{assignment_id}"


def queue_draw_notices(session: Session, settings, batch: Batch, counts: dict[str, int]) -> int:
    """Queue the announcement and every task card of a drawn batch; returns how many."""
    enabled = platforms.enabled(settings)
    if not enabled:
        return 0
    tasks = session.exec(select(Task).where(Task.batch_id == batch.id).order_by(Task.position)).all()
    on_task = defaultdict(list)
    for assignment in session.exec(select(Assignment).join(Task, Assignment.task_id == Task.id)
                                   .where(Task.batch_id == batch.id).order_by(Assignment.position)):
        on_task[assignment.task_id].append(assignment)
    inspectors = _by_id(session, Inspector, Inspector.id, {a.inspector_id for g in on_task.values() for a in g})
    objects = _by_id(session, InspectionObject, InspectionObject.id, {t.object_id for t in tasks})
    items = _by_id(session, Item, Item.code, {code for t in tasks for code in t.items})
    messages = []
    for platform in enabled:
        if platforms.can_push_to_group(settings, platform):
            link = f"{settings.server.public_base_url.rstrip('/')}/public/batches/{batch.id}"
            text = say("notices", "draw_announcement", batch=batch, counts=counts, tasks=len(tasks), link=link)
            messages.append((Destination(platform, GROUP, ANNOUNCE_GROUP), Text(text), f"draw:{batch.id}:{platform}"))
        for task in tasks:
            team = on_task[task.id]
            for assignment in team:
                user = platforms.user_id(inspectors[assignment.inspector_id], platform)
                if not user:
                    continue
                card = task_card(task, assignment, team, batch, objects[task.object_id],
                                 [items[c] for c in task.items if c in items], inspectors)
                messages.append((Destination(platform, USER, user), card,
                                 f"task-card:{assignment.id}:{platform}"))
    return outbox.queue_many(session, messages)


def task_card(task: Task, mine: Assignment, team: list[Assignment], batch: Batch, obj: InspectionObject,
              items: list[Item], inspectors: dict[str, Inspector]) -> Card:
    """The private task card: object, address, items with legal basis, partners, deadline."""
    partners = [inspectors[a.inspector_id].name for a in team
                if a.inspector_id != mine.inspector_id and a.status != "recused"]
    values = dict(task=task, batch=batch, obj=obj, items=items, partners=partners, lead=mine.position == 0)
    return Card(
        card_id=task_card_id(task.id, mine.id),
        title=say("notices", "task_title", **values),
        body=say("notices", "task_body", **values),
        fields=[(say("notices", "field", name=name), say("notices", "value", name=name, **values))
                for name in ("object", "address", "items", "role", "partners", "due")],
        buttons=[Button("confirm", say("notices", "confirm_button"), str(task.id)),
                 Button("recuse", say("notices", "recuse_button"), str(task.id), style="danger")],
    )


def _by_id(session: Session, model, column, ids: set) -> dict:
    found = {}
    ids = sorted(ids)
    for start in range(0, len(ids), 10_000):
        for row in session.exec(select(model).where(column.in_(ids[start:start + 10_000]))):
            found[getattr(row, column.key)] = row
    return found
