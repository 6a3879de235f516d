"""无利害关系: an inspector confirms having no conflict of interest with the task's object
(art. 12). A task whose whole team has confirmed is accepted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot.batches.inspection import open_team_locked
from bot.batches.lifecycle import advance
from bot.refusal import Refusal
from storage import audit
from storage.models import Assignment, Task


@dataclass(frozen=True)
class Confirmed:
    task: Task
    accepted: bool  # the whole team has now confirmed
    assignment: Assignment  # the confirming inspector's place on the team
    already: bool = False  # confirmed before: nothing changed


def confirm(session: Session, actor: str, task_id: int, inspector_id: str | None, now: datetime) -> Confirmed:
    """Record ``inspector_id``'s declaration of no conflict on ``task_id`` (谁检查: only their own)."""
    task, batch, team, mine = open_team_locked(session, task_id, inspector_id)
    if mine.status == "recused":
        raise Refusal("already_recused", task=task_id)
    if mine.status == "confirmed":
        return Confirmed(task, task.status not in ("drawn", "unstaffed"), already=True, assignment=mine)
    mine.status, mine.answered_at = "confirmed", now
    session.add(mine)
    # An unstaffed task (nobody left to replace a recusal) is not accepted, whoever confirms.
    accepted = task.status != "unstaffed" and all(a.status == "confirmed" for a in team if a.status != "recused")
    if accepted and task.status == "drawn":
        task.status = "accepted"
        session.add(task)
    session.flush()
    audit.record(session, actor, "task.confirmed", str(task_id), inspector=inspector_id, accepted=accepted)
    advance(session, actor, batch.id, now)
    return Confirmed(task, accepted, assignment=mine)
