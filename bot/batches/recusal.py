"""Recusal (回避, art. 12; DRAW.md §6): an inspector with a conflict of interest steps
off a task, the conflict is recorded for every later draw, and one replacement is
drawn at once by the same passes over the object's walk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, select

from bot.batches import staffing
from bot.batches.inspection import DONE_OR_LATER, open_team_locked
from bot.refusal import Refusal
from bot.rules import matching
from storage import audit
from storage.models import Assignment, Batch, Conflict, Task, utcnow
from storage.sealing import sealer_of


@dataclass(frozen=True)
class Recused:
    task: Task
    replacement: str | None  # None: nobody left, the task is unstaffed
    already: bool = False  # the same recusal was recorded before; nothing changed


def recuse(session: Session, actor: str, task_id: int, inspector_id: str | None, reason: str, on: date,
           now: datetime | None = None) -> Recused:
    """Take ``inspector_id`` off task ``task_id`` for ``reason`` and draw a replacement."""
    task, batch, assignments, mine = open_team_locked(session, task_id, inspector_id)
    if mine.status == "recused":
        replacement = next((a.inspector_id for a in assignments if a.position > mine.position
                            and a.origin == "replacement"), None)
        return Recused(task, replacement, already=True)
    not_yet_inspected(task)
    now = now or utcnow()
    mine.status, mine.recusal_reason, mine.answered_at = "recused", reason, now
    _record_conflict(session, mine.inspector_id, task.object_id, reason, now)
    session.flush()
    # Eligibility is the directory's on the day (DRAW.md §6, §8), but a conflict frozen with
    # the roster stays in force for this batch even if the directory has dropped it since.
    found = staffing.directory(session, batch, task)
    replacement = _replacement(batch, found, assignments, on)
    if replacement is None:
        task.status = "unstaffed"
    else:
        session.add(Assignment(task_id=task_id, inspector_id=replacement, position=assignments[-1].position + 1,
                               origin="replacement", assigned_at=now))
        if task.status == "accepted":  # the newcomer has not declared yet
            task.status = "drawn"
    session.add_all([mine, task])
    session.flush()
    members = session.exec(select(Assignment.inspector_id).where(Assignment.task_id == task.id,
                                                                 Assignment.status != "recused")).all()
    staffing.refresh_needs_expert(session, task, found, list(members))  # issue 18 §2, art. 12
    session.flush()
    audit.record(session, actor, "task.recused", f"{batch.id}/{task.id}", inspector=inspector_id,
                 object=task.object_id, reason=sealer_of(session).seal_text(reason), replacement=replacement,
                 needs_expert=task.needs_expert)
    return Recused(task, replacement)


def not_yet_inspected(task: Task) -> None:
    """Recusal is for work not yet done (art. 12: 回避 adjusts who inspects, before the
    inspection). A conflict found after it is a correction of the result (更正, audited)."""
    if task.status in DONE_OR_LATER:
        raise Refusal("recusal_too_late", task=task.id, status=task.status)


def _record_conflict(session: Session, inspector_id: str, object_id: str, reason: str, now: datetime) -> None:
    """The declared conflict stays on record for every later draw (imports never touch it)."""
    existing = session.exec(select(Conflict).where(Conflict.inspector_id == inspector_id,
                                                  Conflict.object_id == object_id,
                                                  Conflict.origin == "recusal")).first()
    if existing is None:
        session.add(Conflict(inspector_id=inspector_id, object_id=object_id, reason=reason, origin="recusal",
                             declared_at=now))
    elif not existing.listed:
        existing.listed, existing.delisted_at, existing.reason = True, None, reason
        session.add(existing)


def _replacement(batch: Batch, found: staffing.Directory, assignments: list[Assignment], on: date) -> str | None:
    assert batch.seed is not None  # stored by the draw
    members = [a.inspector_id for a in assignments if a.status != "recused"]
    recused = {a.inspector_id for a in assignments if a.status == "recused"}
    return matching.replacement(batch.seed, found.obj, found.inspectors, mode=batch.mode, members=members,
                                loads=found.loads, tasks=found.tasks, conflicts=found.conflicts, recused=recused,
                                on=on, team_size=batch.team_size, slack=batch.slack)
