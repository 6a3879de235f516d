"""进度: where each batch stands (SPEC §2 step 12) — tasks by state, overdue work,
recusals, result categories. Art. 20: a result is due within 20 working days of the
inspection, and a task inspected but not published is not complete."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlmodel import Session, col, select

from bot.refusal import Refusal
from bot.rules.deadlines import RESULT_DAYS
from bot.rules.workdays import Calendar
from storage.models import Assignment, Batch, FollowUp, Inspector, Result, Task


@dataclass(frozen=True)
class BatchProgress:
    batch: Batch
    states: Counter  # task status → count
    overdue_inspections: int
    overdue_results: int
    recusals: int
    categories: Counter  # published results by category
    follow_ups: int
    provisional: bool = False  # a deadline counted on a provisional calendar (暂定)
    tasks: int = field(default=0)
    follow_ups_closed: int = 0  # of ``follow_ups`` (hand-overs), those closed with an outcome (处置)
    # Tasks whose team lacks a required speciality (art. 12), with the specialist assisting, if any.
    experts: list[tuple[int, str | None]] = field(default_factory=list)


def progress(session: Session, calendar: Calendar, today: date, batch_id: str | None = None) -> list[BatchProgress]:
    """Progress of one batch, or of every batch that is drawn and not yet completed."""
    if batch_id:
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise Refusal("unknown_batch", batch=batch_id)
        batches = [batch]
    else:
        batches = list(session.exec(select(Batch).where(col(Batch.status).in_(("drawn", "in_progress")))
                                    .order_by(col(Batch.id))))
    return [_one(session, calendar, today, batch) for batch in batches]


def _one(session: Session, calendar: Calendar, today: date, batch: Batch) -> BatchProgress:
    tasks = session.exec(select(Task).where(Task.batch_id == batch.id)).all()
    ids = [t.id for t in tasks]
    results = session.exec(select(Result).where(col(Result.task_id).in_(ids), Result.status == "approved")).all() \
        if ids else []
    published = {r.task_id for r in results}
    recusals = len(session.exec(select(Assignment.id).where(col(Assignment.task_id).in_(ids),
                                                           Assignment.status == "recused")).all()) if ids else 0
    handed = session.exec(select(FollowUp.status).where(col(FollowUp.task_id).in_(ids),
                                                         FollowUp.kind == "handover")).all() if ids else []
    standing = [s for s in handed if s != "superseded"]  # a corrected result's hand-over is withdrawn
    follow_ups, closed = len(standing), standing.count("done")  # art. 18: closed by 处置
    overdue_inspections = sum(1 for t in tasks if t.inspected_on is None
                              and t.status not in ("unstaffed", "not_inspected")  # nobody to inspect, or closed
                              and batch.due is not None and today > batch.due)
    overdue_results, provisional = 0, False
    for task in tasks:
        if task.inspected_on is None or task.id in published:
            continue
        due = calendar.working_days_after(task.inspected_on, RESULT_DAYS)
        provisional |= due.provisional
        overdue_results += today > due.day
    states = Counter(t.status for t in tasks)
    experts = [(t.id, session.get_one(Inspector, t.expert_id).name if t.expert_id else None)
               for t in sorted(tasks, key=lambda t: t.position) if t.needs_expert and t.id is not None
               and t.status not in ("approved", "not_inspected")]
    return BatchProgress(batch, states, overdue_inspections, overdue_results, recusals,
                         Counter(r.category for r in results), follow_ups, provisional, len(tasks),
                         follow_ups_closed=closed, experts=experts)
