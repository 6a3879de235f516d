"""What the bureau makes public (一公开, SPEC §7, DRAW.md §7), read from the database.

This module is the privacy boundary: every public page, export and feed gets its data
here, and nothing here reads an inspector, an assignment, a conflict, a result's
remarks or a result that is not published — but for two counts the rules make public:
how many tasks of a batch were staffed by hand (指派), and which tasks were closed as
not inspected (结束任务, never why; issue 18 §2). A sampling plan is public from its
publication, a draw record from the draw, a result from its approval (art. 21).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import overload

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.batches.export import pool_file, record
from bot.batches.records import strata_of
from bot.batches.results import lead_unit
from bot.clock import bureau_date
from bot.plan_frequency import drawn_counts
from storage.models import (
    AnnualPlan,
    Assignment,
    Batch,
    InspectionObject,
    Item,
    PlanAdjustment,
    Result,
    Stratum,
    Task,
    Unit,
)
from storage.models.directory import page_key

SEARCH_LIMIT = 50


@dataclass(frozen=True)
class PublishedResult:
    """One published result: what the public and the national system see (art. 21)."""

    object_id: str
    object_name: str
    batch_id: str
    batch_name: str
    items: list[str]
    category: int
    inspected_on: date | None
    published_on: date
    unit: str  # the inspecting unit's name
    corrected: bool = False  # it replaced an earlier published result


@dataclass(frozen=True)
class SamplingPlan:
    """A batch from its publication: the plan, and after the draw its record."""

    batch: Batch
    plan: AnnualPlan | None
    lead_unit: str
    strata: list[Stratum]
    items: list[Item]
    published_on: date | None
    drawn_on: date | None
    record: dict | None = None  # record.json (SPEC §6), once drawn
    selected: list[tuple[str, str, str, str]] = field(default_factory=list)  # stratum, id, name, score
    results: list[PublishedResult] = field(default_factory=list)
    tasks: int = 0
    pending: int = 0  # tasks without a published result yet (nor closed uninspected)
    by_hand: int = 0  # tasks a member was assigned to by hand (指派), counted publicly
    not_inspected: list[tuple[str, str, list[str]]] = field(default_factory=list)  # object id, name, items


def object_page(object_id: str) -> str:
    """The file name (without ``.html``) of an object's page: its id where that is safe
    as a file name, else a digest of it (``objects.page_key``)."""
    return page_key(object_id)


def items(session: Session) -> list[Item]:
    return list(session.exec(select(Item).where(Item.listed).order_by(col(Item.code))))


def plans(session: Session) -> list[tuple[AnnualPlan, str, list[PlanAdjustment], list[Batch], int]]:
    """Annual plans (newest year first), each with its office, adjustments, published batches
    and how many of its batches were drawn (against its frequency, art. 11)."""
    rows = session.exec(select(AnnualPlan).where(AnnualPlan.listed)
                        .order_by(col(AnnualPlan.year).desc(), col(AnnualPlan.id))).all()
    found = []
    drawn = drawn_counts(session, [plan.id for plan in rows])
    for plan in rows:
        adjustments = session.exec(select(PlanAdjustment).where(PlanAdjustment.plan_id == plan.id)
                                   .order_by(col(PlanAdjustment.adjusted_on), col(PlanAdjustment.id))).all()
        batches = [b for b in _public_batches(session) if b.plan_id == plan.id]
        found.append((plan, _unit_name(session, plan.office_id), list(adjustments), batches,
                      drawn.get(plan.id or 0, 0)))
    return found


def batches(session: Session) -> list[Batch]:
    """Batches whose sampling plan is published, newest first."""
    return _public_batches(session)


def sampling_plan(session: Session, batch_id: str, timezone: str) -> SamplingPlan | None:
    """A published batch's plan, draw record and published results; None if not public."""
    batch = session.get(Batch, batch_id)
    if batch is None or batch.published_at is None:
        return None
    strata = strata_of(session, batch.id)
    codes = list(dict.fromkeys(code for s in strata for code in s.items))
    known = {i.code: i for i in session.exec(select(Item).where(col(Item.code).in_(codes)))}
    plan = session.get(AnnualPlan, batch.plan_id) if batch.plan_id else None
    found = SamplingPlan(batch, plan, _unit_name(session, batch.lead_unit_id), strata,
                         [known[c] for c in codes if c in known], local_day(batch.published_at, timezone),
                         local_day(batch.drawn_at, timezone))
    if batch.drawn_at is None:
        return found
    names = _object_names(session, [i for s in strata for i, _ in (s.selected or [])])
    selected = [(s.name, i, names.get(i, ""), score) for s in strata for i, score in (s.selected or [])]
    results = published_results(session, timezone, batch_id=batch.id)
    tasks = session.execute(select(func.count()).select_from(Task).where(Task.batch_id == batch.id)).scalar_one()
    by_hand = session.execute(select(func.count(func.distinct(Assignment.task_id))).join(
        Task, col(Task.id) == Assignment.task_id).where(Task.batch_id == batch.id, Assignment.origin == "hand")
    ).scalar_one()
    closed = session.execute(select(Task.object_id, Task.items).where(  # never the (sealed) reason
        Task.batch_id == batch.id, Task.status == "not_inspected").order_by(col(Task.position))).all()
    closed_names = _object_names(session, [object_id for object_id, _ in closed])
    not_inspected = [(object_id, closed_names.get(object_id, ""), list(items)) for object_id, items in closed]
    return replace(found, record=record(session, batch), selected=selected, results=results, tasks=tasks,
                   pending=tasks - len(results) - len(not_inspected), by_hand=by_hand, not_inspected=not_inspected)


def pool_files(session: Session, batch_id: str) -> dict[str, bytes]:
    """A drawn batch's pool files (name → the exact ``id|w`` lines hashed into its digest)."""
    batch = session.get(Batch, batch_id)
    if batch is None or batch.drawn_at is None:
        return {}
    return {pool_file(s.name): zlib.decompress(s.pool) for s in strata_of(session, batch.id) if s.pool}


def published_results(session: Session, timezone: str, *, batch_id: str | None = None,
                      object_id: str | None = None) -> list[PublishedResult]:
    """Published results (status approved), in batch and task order."""
    query = (select(Result, Task, Batch, InspectionObject)
             .join(Task, col(Task.id) == Result.task_id).join(Batch, col(Batch.id) == Task.batch_id)
             .join(InspectionObject, col(InspectionObject.id) == Task.object_id)
             .where(Result.status == "approved", col(Result.published_at).is_not(None)))
    if batch_id is not None:
        query = query.where(Task.batch_id == batch_id)
    if object_id is not None:
        query = query.where(Task.object_id == object_id)
    rows = session.exec(query.order_by(col(Batch.drawn_at), col(Batch.id), col(Task.position))).all()
    units: dict[str | None, str] = {}
    found = []
    for result, task, batch, obj in rows:
        assert result.published_at is not None  # the query keeps published results only
        unit = result.inspecting_unit_name  # as published (stored at approval), whatever the directory is now
        if unit is None:  # published without a unit on record: read from the directory
            unit_id = result.inspecting_unit if result.inspecting_unit is not None else lead_unit(session,
                                                                                                   result.task_id)
            if unit_id not in units:
                units[unit_id] = _unit_name(session, unit_id)
            unit = units[unit_id]
        found.append(PublishedResult(obj.id, obj.name, batch.id, batch.name, list(task.items), result.category,
                                     task.inspected_on, local_day(result.published_at, timezone), unit,
                                     corrected=result.supersedes is not None))
    return found


def credit_record(session: Session, object_id: str, timezone: str
                  ) -> tuple[InspectionObject, list[PublishedResult], list[tuple[str, str]]] | None:
    """An object's public record (art. 21): its published results, and the drawn batches
    that selected it (batch id, name). None for an unknown object."""
    obj = session.get(InspectionObject, object_id)
    if obj is None:
        return None
    drawn = session.exec(select(Batch.drawn_at, Batch.id, Batch.name).join(Task, col(Task.batch_id) == Batch.id)
                         .where(Task.object_id == object_id, col(Batch.drawn_at).is_not(None))
                         .order_by(col(Batch.drawn_at), col(Batch.id)).distinct()).all()
    return obj, published_results(session, timezone, object_id=object_id), [(b, n) for _, b, n in drawn]


def drawn_objects(session: Session) -> list[tuple[str, str]]:
    """Every object some draw selected (id, name), by name: the pages of a static export."""
    rows = session.exec(select(InspectionObject.id, InspectionObject.name)
                        .join(Task, col(Task.object_id) == InspectionObject.id)
                        .join(Batch, col(Batch.id) == Task.batch_id)
                        .where(col(Batch.drawn_at).is_not(None)).distinct()).all()
    return sorted(((i, n) for i, n in rows), key=lambda pair: (pair[1], pair[0]))


def search(session: Session, text: str) -> list[tuple[str, str]]:
    """Objects whose name or credit code contains ``text``, ignoring case (id, name), at most
    SEARCH_LIMIT (bot.public.search; the server keeps the index between changes)."""
    from bot.public.search import SearchIndex

    return SearchIndex.load(session).find(text, SEARCH_LIMIT)


def _public_batches(session: Session) -> list[Batch]:
    return list(session.exec(select(Batch).where(col(Batch.published_at).is_not(None))
                             .order_by(col(Batch.published_at).desc(), col(Batch.id).desc())))


def _object_names(session: Session, ids: list[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        names |= dict(session.exec(select(InspectionObject.id, InspectionObject.name)
                                   .where(col(InspectionObject.id).in_(chunk))).all())
    return names


def _unit_name(session: Session, unit_id: str | None) -> str:
    unit = session.get(Unit, unit_id) if unit_id else None
    return unit.name if unit else ""


@overload
def local_day(instant: datetime, timezone: str) -> date: ...
@overload
def local_day(instant: datetime | None, timezone: str) -> date | None: ...
def local_day(instant: datetime | None, timezone: str) -> date | None:
    if instant is None:
        return None
    return bureau_date(instant, timezone)
