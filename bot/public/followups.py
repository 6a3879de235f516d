"""The follow-ups an object's public page shows (art. 18, 21): a closed hand-over's outcome
and day where the rules make it public — listing in the abnormal-operations list and a
case filed (企业信息公示暂行条例) — never its remarks, its case number or who closed it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, col, select

from bot.batches.followups import HANDOVER, PUBLIC_OUTCOMES
from storage.models import Batch, FollowUp, Task


@dataclass(frozen=True)
class PublicOutcome:
    batch_id: str
    batch_name: str
    outcome: str  # listed | case
    on: date | None


def public_outcomes(session: Session, object_id: str) -> list[PublicOutcome]:
    rows = session.exec(select(Batch.id, Batch.name, col(FollowUp.outcome), col(FollowUp.outcome_on))
                        .join(Task, col(Task.id) == FollowUp.task_id).join(Batch, col(Batch.id) == Task.batch_id)
                        .where(Task.object_id == object_id, FollowUp.kind == HANDOVER, FollowUp.status == "done",
                               col(FollowUp.outcome).in_(sorted(PUBLIC_OUTCOMES)))
                        .order_by(col(FollowUp.outcome_on), col(FollowUp.id))).all()
    return [PublicOutcome(batch_id, name, outcome or "", on) for batch_id, name, outcome, on in rows]
