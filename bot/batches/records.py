"""Looking up a batch and its strata, with the refusal a person reads when it is wrong."""

from __future__ import annotations

from sqlmodel import Session, col, select

from bot.refusal import Refusal
from storage.models import Batch, Stratum

STATUSES = ("draft", "published", "drawn", "in_progress", "completed", "cancelled")


def find_batch(session: Session, batch_id: str, allowed: tuple[str, ...] = STATUSES,
               refusal: str = "wrong_status") -> Batch:
    """The batch ``batch_id``, refused unless it exists and its status is ``allowed``."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise Refusal("unknown_batch", batch=batch_id)
    if batch.status not in allowed:
        raise Refusal(refusal, batch=batch_id, status=batch.status)
    return batch


def strata_of(session: Session, batch_id: str) -> list[Stratum]:
    """A batch's strata in declared order."""
    query = select(Stratum).where(Stratum.batch_id == batch_id).order_by(col(Stratum.position))
    return list(session.exec(query))
