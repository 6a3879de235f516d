"""Annual plans (年度抽查工作计划, art. 11): import with adjustments, list, show.

A plan names an office's items, ratio and frequency, scope and timing for a year. A
re-import that changes a plan is an adjustment: it is recorded with its date and reason,
and must be re-filed and re-published within 10 working days (art. 11).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.chat.identity import ADMIN, LEAD, Identity
from bot.plan_frequency import drawn_counts
from bot.refusal import Refusal
from bot.texts import say
from storage import audit
from storage.importing import Outcome, import_file
from storage.importing.apply import Progress
from storage.importing.values import BadValue
from storage.models import AnnualPlan, Batch, PlanAdjustment


def import_plans(engine: Engine, path: Path, *, actor: str, reason: str | None, today: date,
                 dry_run: bool = False, partial: bool = False, progress: Progress | None = None,
                 min_ratio: Decimal | None = None) -> Outcome:
    """Import a plans file; a change to an existing plan needs a reason (an adjustment).
    With ``min_ratio`` (``[plans] min_ratio``, the region's minimum, art. 11) a plan whose
    ratio is below it is a bad row."""

    def at_least_the_minimum(row: dict) -> None:
        if min_ratio is not None and Decimal(row["ratio_percent"]) < min_ratio:
            raise BadValue(say("plans", "below_min_ratio", ratio=row["ratio_percent"],
                               minimum=format(min_ratio.normalize(), "f")))

    def record_adjustments(session: Session, outcome: Outcome) -> None:
        changed = [c for c in outcome.changes if c.action in ("updated", "relisted")]
        if not changed:
            return
        if not reason:
            raise Refusal("adjustment_needs_reason", plans=["/".join(map(str, c.key)) for c in changed])
        for change in changed:
            year, office, name = change.key
            plan = session.exec(select(AnnualPlan).where(AnnualPlan.year == year, AnnualPlan.office_id == office,
                                                         AnnualPlan.name == name)).one()
            assert plan.id is not None  # a stored row
            fields = {f: [_plain(before), _plain(after)] for f, (before, after) in change.fields.items()}
            session.add(PlanAdjustment(plan_id=plan.id, adjusted_on=today, reason=reason, actor=actor,
                                       changes=fields))
            audit.record(session, actor, "plan.adjusted", str(plan.id), reason=reason, changes=fields)

    return import_file(engine, "plans", path, dry_run=dry_run, partial=partial, actor=actor, progress=progress,
                       after_write=record_adjustments, check=at_least_the_minimum)


@dataclass(frozen=True)
class PlanView:
    plan: AnnualPlan
    adjustments: list[PlanAdjustment]
    batches: list[Batch]
    drawn: int = 0  # batches made from it that were drawn, against its frequency (bot.plan_frequency)


def list_plans(session: Session, year: int | None = None) -> list[tuple[AnnualPlan, int]]:
    """Listed plans (of ``year``), each with how many batches were created from it."""
    query = (select(AnnualPlan).where(AnnualPlan.listed)
             .order_by(col(AnnualPlan.year), col(AnnualPlan.office_id), col(AnnualPlan.id)))
    if year is not None:
        query = query.where(AnnualPlan.year == year)
    plans = list(session.exec(query))
    counts = Counter(session.exec(select(col(Batch.plan_id)).where(col(Batch.plan_id).is_not(None))))
    return [(plan, counts.get(plan.id, 0)) for plan in plans]


def show_plan(session: Session, plan_id: int) -> PlanView:
    plan = session.get(AnnualPlan, plan_id)
    if plan is None:
        raise Refusal("unknown_plan", value=str(plan_id))
    adjustments = session.exec(select(PlanAdjustment).where(PlanAdjustment.plan_id == plan_id)
                               .order_by(col(PlanAdjustment.id)))
    batches = session.exec(select(Batch).where(Batch.plan_id == plan_id).order_by(col(Batch.created_at)))
    return PlanView(plan, list(adjustments), list(batches), drawn_counts(session, [plan_id])[plan_id])


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


FILING_STEPS = ("reported", "filed", "refiled")  # art. 11: by end of January, end of February, 10 working days


@dataclass(frozen=True)
class Filing:
    """A date of art. 11 recorded; ``already`` if it stood as recorded (nothing changed)."""

    plan: AnnualPlan
    step: str
    on: date
    already: bool = False


def record_filing(session: Session, actor: str, plan_id: int, step: str, on: date) -> Filing:
    """Record that a plan was reported, filed, or (after an adjustment) re-filed (art. 11)
    — ``shuangsui plan record`` and 计划报送 (SPEC §5). The same date again changes nothing;
    a re-filing needs an adjustment not yet re-filed."""
    plan = session.get(AnnualPlan, plan_id)
    if plan is None:
        raise Refusal("unknown_plan", value=str(plan_id))
    if step not in FILING_STEPS:
        raise Refusal("bad_filing_status", value=step)
    if step == "reported":
        if plan.reported_on == on:
            return Filing(plan, step, on, already=True)
        plan.reported_on = on
    elif step == "filed":
        if plan.filed_on == on:
            return Filing(plan, step, on, already=True)
        plan.filed_on = on
    else:
        adjustments = list(session.exec(select(PlanAdjustment).where(PlanAdjustment.plan_id == plan_id)))
        open_ = [a for a in adjustments if a.refiled_on is None]
        if not open_:
            if any(a.refiled_on == on for a in adjustments):
                return Filing(plan, step, on, already=True)
            raise Refusal("nothing_to_refile", plan=plan_id)
        for adjustment in open_:
            adjustment.refiled_on = on
            session.add(adjustment)
    session.add(plan)
    session.flush()
    audit.record(session, actor, f"plan.{step}", str(plan_id), on=on.isoformat())
    return Filing(plan, step, on)


def record_filing_as(session: Session, identity: Identity, plan_id: int, step: str, on: date) -> Filing:
    """计划报送 in chat: the planning office — the leads of the plan's office — or an admin."""
    plan = session.get(AnnualPlan, plan_id)
    if plan is None:
        raise Refusal("unknown_plan", value=str(plan_id))
    if ADMIN not in identity.roles and plan.office_id not in identity.units.get(LEAD, frozenset()):
        raise Refusal("not_planning_office", plan=plan_id, office=plan.office_id)
    return record_filing(session, identity.actor.label, plan_id, step, on)
