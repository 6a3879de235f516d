"""完成: the inspection of a task is done (art. 14); its date starts the 20-working-day
clock for entering, approving and publishing the result (art. 20)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import bindparam
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from bot.batches.lifecycle import advance
from bot.chat.events import LOCATION, Media
from bot.refusal import Refusal
from storage import audit
from storage.models import Assignment, Batch, Evidence, Task

OPEN = ("drawn", "in_progress")
DONE_OR_LATER = ("inspected", "submitted", "approved")

#: A batch's large columns, which a task's handler never reads: the roster frozen at
#: publication, the matching inputs of the draw (the whole directory as it stood: megabytes
#: in a province) and the sealed secret. Loaded only if something reads them (a deferred
#: attribute loads on first access, in the same transaction).
_BATCH_BULK = tuple(defer(getattr(Batch, name)) for name in ("roster", "matching_inputs", "secret_encrypted"))


# Built once (every confirmation and click runs them): a statement object keeps its cache key.
_TASK_AND_BATCH = (select(Task, Batch).join(Batch, col(Batch.id) == col(Task.batch_id))
                   .where(col(Task.id) == bindparam("task")).options(*_BATCH_BULK))
_TEAM_LOCKED = (select(Assignment).where(col(Assignment.task_id) == bindparam("task"))
                .order_by(col(Assignment.position)).with_for_update())


def batch_of(session: Session, task: Task) -> Batch:
    """The task's batch, without its large columns (``_BATCH_BULK``)."""
    return session.get_one(Batch, task.batch_id, options=_BATCH_BULK)


@dataclass(frozen=True)
class Inspected:
    task: Task
    already: bool = False


def team_of(session: Session, task_id: int) -> list[Assignment]:
    """The task's inspectors in the order accepted, recused ones included."""
    return list(session.exec(select(Assignment).where(Assignment.task_id == task_id)
                             .order_by(col(Assignment.position))))


def own_task(session: Session, task_id: int, inspector_id: str | None, *,
             recused_too: bool = False) -> tuple[Task, Batch, Assignment]:
    """The task, its batch and the caller's place on it (谁检查、谁录入: only their own);
    ``recused_too`` also finds someone who stepped off it (to say they already did)."""
    task = session.get(Task, task_id)
    if task is None:
        raise Refusal("unknown_task", task=task_id)
    batch = batch_of(session, task)
    mine = next((a for a in team_of(session, task_id) if a.inspector_id == inspector_id), None)
    if mine is None or (mine.status == "recused" and not recused_too):
        raise Refusal("not_on_task", task=task_id, inspector=inspector_id or "")
    return task, batch, mine


def open_team_locked(session: Session, task_id: int,
                     inspector_id: str | None) -> tuple[Task, Batch, list[Assignment], Assignment]:
    """The task of an open batch, its whole team in order, locked, and the caller's place
    on it (recused or not). Locked (PostgreSQL): a click and a typed answer handled at once
    on two instances must not both find the caller's place unanswered."""
    found = session.exec(_TASK_AND_BATCH, params={"task": task_id}).first()
    if found is None:
        raise Refusal("unknown_task", task=task_id)
    task, batch = found  # one statement, not two lookups: every confirmation, recusal and click asks
    if batch.status not in OPEN:
        raise Refusal("task_closed", task=task_id, status=batch.status)
    team = list(session.exec(_TEAM_LOCKED, params={"task": task_id}))
    mine = next((a for a in team if a.inspector_id == inspector_id), None)
    if mine is None:
        raise Refusal("not_on_task", task=task_id, inspector=inspector_id)
    return task, batch, team, mine


def mark_inspected(session: Session, actor: str, task_id: int, inspector_id: str | None, on: date, today: date,
                   now: datetime) -> Inspected:
    """Record the inspection date; only once, only after the team confirmed (art. 12)."""
    task, batch, _ = own_task(session, task_id, inspector_id)
    if task.status in DONE_OR_LATER:
        return Inspected(task, already=True)
    if batch.status not in OPEN:
        raise Refusal("task_closed", task=task_id, status=batch.status)
    if task.status != "accepted":
        raise Refusal("not_accepted", task=task_id)
    if on > today or (batch.draw_date and on < batch.draw_date):
        raise Refusal("bad_inspection_date", value=on.isoformat(), drawn=batch.draw_date, today=today)
    task.inspected_on, task.status = on, "inspected"
    session.add(task)
    session.flush()
    audit.record(session, actor, "task.inspected", str(task.id), on=on.isoformat())
    advance(session, actor, batch.id, now)
    return Inspected(task)


@dataclass(frozen=True)
class Kept:
    evidence: Evidence
    already: bool = False


def keep_evidence(session: Session, actor: str, task_id: int, inspector_id: str | None, media: Media,
                  sent_at: datetime, now: datetime) -> Kept:
    """A photo, video, file or location for the caller's own task (art. 14: 监管数据可保留，
    监管痕迹可查询): linked once, audited. A location keeps its coordinates, label and the
    time it was sent on the row as well as in its stored record."""
    own_task(session, task_id, inspector_id)
    known = session.exec(select(Evidence).where(Evidence.task_id == task_id, Evidence.sha256 == media.sha256)).first()
    if known is not None:
        return Kept(known, already=True)
    located = media.kind == LOCATION
    row = Evidence(task_id=task_id, sha256=media.sha256, media_type=media.kind, file_name=media.file_name,
                   size=media.size, added_by=actor, added_at=now,
                   latitude=media.latitude if located else None, longitude=media.longitude if located else None,
                   label=media.label if located else None, located_at=sent_at if located else None)
    session.add(row)
    session.flush()
    where = {"latitude": media.latitude, "longitude": media.longitude, "label": media.label,
             "at": sent_at.isoformat()} if located else {}
    audit.record(session, actor, "evidence.added", str(task_id), sha256=media.sha256, kind=media.kind,
                 size=media.size, **where)
    return Kept(row)
