"""Cancelling a batch. Nothing is deleted or redrawn: a cancelled batch stays in the
record with its reason, and its tasks no longer count as inspections."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.batches import options
from bot.batches.errors import Refusal
from bot.rules.arguments import Arguments
from storage import audit
from storage.models import Batch

CANCEL_KEYS = frozenset({"batch", "reason"})
FINAL = ("completed", "cancelled")


def cancel(session: Session, actor: str, args: Arguments, now: datetime) -> Batch:
    batch_id = options.required(args, "batch")
    reason = options.required(args, "reason")
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise Refusal("unknown_batch", batch=batch_id)
    if batch.status in FINAL:
        raise Refusal("already_final", batch=batch_id, status=batch.status)
    before = batch.status
    batch.status, batch.cancelled_at, batch.cancel_reason = "cancelled", now, reason
    session.add(batch)
    session.flush()
    audit.record(session, actor, "batch.cancelled", batch.id, reason=reason, was=before)
    return batch
