"""Cancelling a batch. Nothing is deleted or redrawn: a cancelled batch stays in the
record with its reason, and its tasks no longer count as inspections."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.batches import options
from bot.batches.records import STATUSES, find_batch
from bot.rules.arguments import Arguments
from storage import audit
from storage.models import Batch

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
