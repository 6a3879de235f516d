"""Creating a batch and adding strata to it (SPEC §2 step 3, §5 新建抽查 / 追加分层).

A batch is created from a plan or ad hoc, with its first stratum ``main``; more strata
make a combined draw (art. 10). Items of several strata on one object merge into one
task at the draw (art. 13).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.batches import options
from bot.batches.frequency import frequency_cap
from bot.batches.records import find_batch, strata_of
from bot.refusal import Refusal
from bot.rules import ssr1
from bot.rules.arguments import ArgumentError, Arguments
from bot.rules.scope import Scope, ScopeError, describe, parse_scope
from bot.settings import Settings
from bot.texts import say
from storage import audit
from storage.models import AnnualPlan, Batch, Stratum
from storage.pools import FrequencyCap, pool_size

NEW_KEYS = frozenset({"name", "items", "ratio", "count", "mode", "size", "due", "lead", "plan",
                      "industry", "region", "kind", "unit", "risk"})
STRATUM_KEYS = frozenset({"batch", "name", "items", "ratio", "count", "industry", "region", "kind", "unit", "risk"})
FIRST_STRATUM = "main"


@dataclass(frozen=True)
class Created:
    batch: Batch
    stratum: Stratum
    pool_size: int  # as the directory stands now, less the frequency cap, as publication will count it
    capped: int = 0  # objects of the scope the frequency cap leaves out now


def new_batch(session: Session, settings: Settings, actor: str, args: Arguments, today: date,
              now: datetime | None = None) -> Created:
    """Create a draft batch with its first stratum, ``main``. From a plan, the plan's ratio
    is a floor (art. 11): a lower 比例 is refused."""
    plan = _plan(session, args.get("plan"))
    name = options.required(args, "name")
    item_codes = options.items(session, args.get("items") or ",".join(plan.items if plan else []))
    ratio, count = options.quota(args, plan.ratio_percent if plan else None)
    scope = options.scope(args)
    if scope.is_empty and plan is not None and plan.scope:
        scope = _plan_scope(plan)
    lead = args.get("lead") or (plan.office_id if plan else None) or settings.bureau.default_lead
    if not lead:
        raise Refusal("missing_lead")
    due = options.due(args, today)
    batch = Batch(id=_next_batch_id(session, today), name=name, plan_id=plan.id if plan else None,
                  lead_unit_id=options.unit(session, lead, "lead"), mode=options.mode(args),
                  team_size=options.team_size(args, settings.draw.team_size), slack=settings.draw.slack,
                  due=due, created_by=actor)
    cap = _frequency_cap(settings, now, today)
    size, capped = _pool(session, scope, cap)
    if plan is not None:
        _at_least_the_plan(plan, ratio)
    session.add(batch)
    stratum = _stratum(batch, FIRST_STRATUM, 0, scope, item_codes, ratio, count)
    session.add(stratum)
    session.flush()
    audit.record(session, actor, "batch.created", batch.id, name=name, mode=batch.mode, team_size=batch.team_size,
                 due=due.isoformat(), lead=batch.lead_unit_id, plan=batch.plan_id,
                 stratum=_stratum_detail(stratum))
    return Created(batch, stratum, size, capped)


def add_stratum(session: Session, actor: str, args: Arguments, settings: Settings | None = None,
                now: datetime | None = None) -> Created:
    """Add a stratum to a draft batch (a combined draw, art. 10); in a batch made from a
    plan, its ratio is not below the plan's (art. 11)."""
    batch = draft_batch(session, options.required(args, "batch"))
    name = options.required(args, "name")
    try:
        ssr1.check_stratum_name(name)
    except ValueError:
        raise Refusal("bad_stratum_name", value=name) from None
    existing = strata_of(session, batch.id)
    if name.casefold() in {s.name.casefold() for s in existing}:
        raise Refusal("repeated_stratum", batch=batch.id, value=name)
    item_codes = options.items(session, args.get("items") or ",".join(existing[0].items))
    ratio, count = options.quota(args)
    scope = options.scope(args)
    cap = _frequency_cap(settings, now, None) if settings is not None else FrequencyCap()
    size, capped = _pool(session, scope, cap)
    plan = session.get(AnnualPlan, batch.plan_id) if batch.plan_id is not None else None
    if plan is not None:
        _at_least_the_plan(plan, ratio)
    stratum = _stratum(batch, name, len(existing), scope, item_codes, ratio, count)
    session.add(stratum)
    session.flush()
    audit.record(session, actor, "batch.stratum_added", batch.id, stratum=_stratum_detail(stratum))
    return Created(batch, stratum, size, capped)


def draft_batch(session: Session, batch_id: str) -> Batch:
    return find_batch(session, batch_id, ("draft",), "not_draft")


def _stratum(batch: Batch, name: str, position: int, scope: Scope, item_codes: list[str], ratio: str | None,
             count: int | None) -> Stratum:
    return Stratum(batch_id=batch.id, position=position, name=name, filter=scope.to_json(),
                   filter_description=describe(scope), items=item_codes, ratio_percent=ratio, count=count)


def _stratum_detail(stratum: Stratum) -> dict:
    return {"name": stratum.name, "filter": stratum.filter_description, "items": stratum.items,
            "ratio_percent": stratum.ratio_percent, "count": stratum.count}


def _frequency_cap(settings: Settings, now: datetime | None, today: date | None) -> FrequencyCap:
    """The cap publication will apply (SPEC §5: the reply's pool size counts it)."""
    if now is None:
        zone = ZoneInfo(settings.bureau.timezone)
        now = datetime.combine(today, time(), zone) if today is not None else datetime.now(zone)
    return frequency_cap(settings, now)


def _pool(session: Session, scope: Scope, cap: FrequencyCap) -> tuple[int, int]:
    """The pool's size now, less the frequency cap, and how many the cap leaves out."""
    size = pool_size(session.connection(), scope, cap)
    return size, (pool_size(session.connection(), scope) - size if cap.cap > 0 else 0)


def _at_least_the_plan(plan: AnnualPlan, ratio: str | None) -> None:
    """Art. 11: the plan's ratio is a floor for the batches made from it. A 数量= is a
    number the command states outright (a special check of a few objects), not a ratio."""
    if ratio is not None and Decimal(ratio) < Decimal(plan.ratio_percent):
        raise Refusal("below_plan_ratio", plan=plan.id, ratio=ratio, floor=plan.ratio_percent)


def _plan_scope(plan: AnnualPlan) -> Scope:
    """The plan's scope; one stored before import checked it may be malformed (a refusal, not a crash)."""
    try:
        return parse_scope(plan.scope)
    except ArgumentError as exc:
        reason = say("plans", "bad_scope_syntax", problem=exc.problem, subject=exc.subject)
    except ScopeError as exc:
        reason = str(exc)
    raise Refusal("bad_plan_scope", plan=plan.id, scope=plan.scope, reason=reason)


def _plan(session: Session, plan_id: str | None) -> AnnualPlan | None:
    if not plan_id:
        return None
    plan = session.get(AnnualPlan, int(plan_id)) if plan_id.isdecimal() else None
    if plan is None or not plan.listed:
        raise Refusal("unknown_plan", value=plan_id)
    return plan


def _next_batch_id(session: Session, today: date) -> str:
    """``2026-DS-001``: the year and a running number (双随 = DS)."""
    prefix = f"{today.year}-DS-"
    count = session.exec(select(func.count()).select_from(Batch).where(col(Batch.id).startswith(prefix))).one()
    return f"{prefix}{count + 1:03d}"
