"""Creating a batch and adding strata to it (SPEC §2 step 3, §5 新建抽查 / 追加分层).

A batch is created from a plan or ad hoc, with its first stratum ``main``; more strata
make a combined draw (art. 10). Items of several strata on one object merge into one
task at the draw (art. 13).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.batches import options
from bot.batches.records import find_batch, strata_of
from bot.refusal import Refusal
from bot.rules import ssr1
from bot.rules.arguments import Arguments
from bot.rules.scope import Scope, describe, parse_scope
from bot.settings import Settings
from storage import audit
from storage.models import AnnualPlan, Batch, Stratum
from storage.pools import pool_size

NEW_KEYS = frozenset({"name", "items", "ratio", "count", "mode", "size", "due", "lead", "plan",
                      "industry", "region", "kind", "unit", "risk"})
STRATUM_KEYS = frozenset({"batch", "name", "items", "ratio", "count", "industry", "region", "kind", "unit", "risk"})
FIRST_STRATUM = "main"


@dataclass(frozen=True)
class Created:
    batch: Batch
    stratum: Stratum
    pool_size: int  # as the directory stands now; frozen at publication


def new_batch(session: Session, settings: Settings, actor: str, args: Arguments, today: date) -> Created:
    """Create a draft batch with its first stratum, ``main``."""
    plan = _plan(session, args.get("plan"))
    name = options.required(args, "name")
    item_codes = options.items(session, args.get("items") or ",".join(plan.items if plan else []))
    ratio, count = options.quota(args, plan.ratio_percent if plan else None)
    scope = options.scope(args, parse_scope(plan.scope) if plan and plan.scope else None)
    lead = args.get("lead") or (plan.office_id if plan else None) or settings.bureau.default_lead
    if not lead:
        raise Refusal("missing_lead")
    due = options.due(args, today)
    batch = Batch(id=_next_batch_id(session, today), name=name, plan_id=plan.id if plan else None,
                  lead_unit_id=options.unit(session, lead, "lead"), mode=options.mode(args),
                  team_size=options.team_size(args, settings.draw.team_size), slack=settings.draw.slack,
                  due=due, created_by=actor)
    session.add(batch)
    stratum = _stratum(batch, FIRST_STRATUM, 0, scope, item_codes, ratio, count)
    session.add(stratum)
    session.flush()
    size = pool_size(session.connection(), scope)
    audit.record(session, actor, "batch.created", batch.id, name=name, mode=batch.mode, team_size=batch.team_size,
                 due=due.isoformat(), lead=batch.lead_unit_id, plan=batch.plan_id,
                 stratum=_stratum_detail(stratum))
    return Created(batch, stratum, size)


def add_stratum(session: Session, actor: str, args: Arguments) -> Created:
    """Add a stratum to a draft batch (a combined draw, art. 10)."""
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
    stratum = _stratum(batch, name, len(existing), options.scope(args), item_codes, ratio, count)
    session.add(stratum)
    session.flush()
    size = pool_size(session.connection(), Scope.from_json(stratum.filter))
    audit.record(session, actor, "batch.stratum_added", batch.id, stratum=_stratum_detail(stratum))
    return Created(batch, stratum, size)


def draft_batch(session: Session, batch_id: str) -> Batch:
    return find_batch(session, batch_id, ("draft",), "not_draft")


def _stratum(batch: Batch, name: str, position: int, scope: Scope, item_codes: list[str], ratio: str | None,
             count: int | None) -> Stratum:
    return Stratum(batch_id=batch.id, position=position, name=name, filter=scope.to_json(),
                   filter_description=describe(scope), items=item_codes, ratio_percent=ratio, count=count)


def _stratum_detail(stratum: Stratum) -> dict:
    return {"name": stratum.name, "filter": stratum.filter_description, "items": stratum.items,
            "ratio_percent": stratum.ratio_percent, "count": stratum.count}


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
