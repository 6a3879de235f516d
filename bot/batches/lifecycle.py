"""A batch after its draw: in progress, completed — or cancelled. Nothing is deleted
or redrawn: a cancelled batch stays in the record with its reason, and its tasks no
longer count as inspections."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from bot.batches import options
from bot.batches.records import STATUSES, find_batch
from bot.rules.arguments import Arguments
from storage import audit
from storage.models import Batch, Task

CANCEL_KEYS = frozenset({"batch", "reason"})
FINAL = ("completed", "cancelled")


def cancel(session: Session, actor: str, args: Arguments, now: datetime) -> Batch:
    batch_id = options.required(args, "batch")
    reason = options.required(args, "reason")
    batch = find_batch(session, batch_id, tuple(s for s in STATUSES if s not in FINAL), "already_final")
    before = batch.status
    batch.status, batch.cancelled_at, batch.cancel_reason = "cancelled", now, reason
    session.add(batch)
    session.flush()
    audit.record(session, actor, "batch.cancelled", batch.id, reason=reason, was=before)
    return batch


STARTED = ("accepted", "inspected", "submitted", "approved")  # task statuses past the draw
DONE = "approved"  # approved results are published (art. 20); only then is a task complete
CLOSED_UNINSPECTED = "not_inspected"  # 结束任务: closed as not inspectable, reason recorded (issue 18 §2)


def advance(session: Session, actor: str, batch_id: str, now: datetime) -> Batch:
    """Move a drawn batch on as its tasks progress: in progress once any task has
    started, completed once every task's result is published (art. 20: a task
    inspected but not published is not complete) or the task was closed uninspected. Called after each task change."""
    batch = find_batch(session, batch_id)
    statuses = set(session.exec(select(Task.status).where(Task.batch_id == batch.id)))
    before = batch.status
    if batch.status in ("drawn", "in_progress") and statuses and statuses <= {DONE, CLOSED_UNINSPECTED}:
        batch.status, batch.completed_at = "completed", now
    elif batch.status == "drawn" and statuses & set(STARTED):
        batch.status = "in_progress"
    if batch.status != before:
        session.add(batch)
        session.flush()
        audit.record(session, actor, f"batch.{batch.status}", batch.id, was=before)
    return batch
