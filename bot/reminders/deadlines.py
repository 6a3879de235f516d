"""The deadlines of open work, kept in step with the tasks: each stored with what it
belongs to, who owes it and whether it rests on a provisional calendar (暂定).

- inspection: by the batch's 截止, owed by the task's inspectors;
- result: entered, approved and published within 20 working days of the inspection
  (art. 20), owed by the lead inspector (谁检查、谁录入);
- approval: within ``[reminders] approval_days`` working days of submission, owed by
  the approvers of the lead inspector's unit — but never after the 20th working day
  after the inspection (art. 20): a result submitted late is due for approval by that day;
- followup: a hand-over closed (处置) within ``[followups] days`` working days of the
  publication, owed by the receiving unit (``bot.batches.followups``).

``lines`` (the 20-day line of each unpublished result) lets the sweep tell the lead office,
once, when a result passes it unpublished (bot.reminders.sweep).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Table, Text, any_, bindparam, cast, func, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, col, select

from bot.clock import bureau_date
from bot.rules.deadlines import RESULT_DAYS
from bot.rules.workdays import Calendar, DueDate
from bot.settings import Settings
from storage.bulk import insert_rows
from storage.models import (
    AnnualPlan,
    Assignment,
    Batch,
    Deadline,
    Inspector,
    PlanAdjustment,
    Result,
    Task,
    table_of,
    utcnow,
)

OPEN_BATCHES = ("drawn", "in_progress")
CHUNK = 10_000  # bound values per statement on SQLite


def among(session: Session, column: Any, values: Iterable[Any]) -> list[ColumnElement[bool]]:
    """``column IN values`` as conditions to run one after the other: chunks of ``CHUNK``
    values on SQLite, one array parameter (``= ANY``) on PostgreSQL — 100,000 ids bound as
    one value rather than rendered as 100,000 parameters."""
    found = sorted(set(values))
    if not found:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return [column == any_(bindparam(None, found, type_=ARRAY(column.type)))]
    return [column.in_(found[start:start + CHUNK]) for start in range(0, len(found), CHUNK)]



class OpenTask(NamedTuple):
    """What a deadline needs to know of a task (loaded in bulk, computed without I/O; a
    named tuple: 100,000 of them are made on a full sweep)."""

    task_id: int
    batch_id: str
    status: str
    batch_due: date | None
    inspected_on: date | None
    submitted_on: date | None  # bureau date of the pending result's submission
    team: tuple[str, ...]  # inspector ids, the lead first
    lead_unit: str | None


def open_work(session: Session, settings: Settings, task_ids: Collection[int] | None = None) -> list[OpenTask]:
    """Every task of an open batch (or only those of ``task_ids``), with its team, in a few
    queries — Core statements on the tables: rows as plain tuples, without the ORM's
    per-row loading (a full sweep reads 100,000s)."""
    timezone = settings.bureau.timezone
    tasks_, assignments, results = table_of(Task), table_of(Assignment), table_of(Result)
    batches_, inspectors = table_of(Batch), table_of(Inspector)
    batches = dict(session.execute(select(batches_.c.id, batches_.c.due)
                                   .where(batches_.c.status.in_(OPEN_BATCHES))).all())
    if not batches:
        return []
    ids = list(batches)
    chunks: list[Any] = ([tasks_.c.batch_id.in_(ids)] if task_ids is None
                         else among(session, tasks_.c.id, task_ids))
    teams: dict[int, list[str]] = defaultdict(list)
    submitted: dict[int, date] = {}
    tasks: list[Any] = []
    # the teams: the assignments of the tasks by task id (``IN``, not a join: SQLite then walks
    # the assignments' (task_id, …) index in order instead of jumping about it per task)
    teamed = ([assignments.c.task_id.in_(select(tasks_.c.id).where(tasks_.c.batch_id.in_(ids)))]
              if task_ids is None else among(session, assignments.c.task_id, task_ids))
    for which in teamed:
        for task_id, inspector_id in session.execute(
                select(assignments.c.task_id, assignments.c.inspector_id)
                .where(which, assignments.c.status != "recused").order_by(assignments.c.position)):
            teams[task_id].append(inspector_id)
    for which in chunks:
        submitted.update({task_id: bureau_date(at, timezone) for task_id, at in session.execute(
            select(results.c.task_id, results.c.submitted_at).join(tasks_, results.c.task_id == tasks_.c.id)
            .where(which, results.c.status == "submitted"))})
        tasks += session.execute(select(tasks_.c.id, tasks_.c.batch_id, tasks_.c.status, tasks_.c.inspected_on)
                                 .where(which, tasks_.c.batch_id.in_(ids))).all()
    units: dict[str, str] = {}
    leads = [team[0] for team in teams.values() if team]
    for which in ([true()] if task_ids is None else among(session, inspectors.c.id, leads)):
        units.update({inspector: unit for inspector, unit in
                      session.execute(select(inspectors.c.id, inspectors.c.unit_id).where(which))})
    return [OpenTask(task_id, batch_id, status, batches[batch_id], inspected_on, submitted.get(task_id),
                     tuple(teams[task_id]), units.get(teams[task_id][0]) if teams[task_id] else None)
            for task_id, batch_id, status, inspected_on in tasks]


def deadlines_for(work: list[OpenTask], calendar: Calendar, approval_days: int,
                  lines: dict[int, date] | None = None) -> dict[tuple[str, str], dict]:
    """The deadlines the open work calls for, by (kind, subject) — no I/O. ``lines``, if
    given, receives the 20-day line (art. 20) of each inspected, unpublished task."""
    after: dict[tuple[date, int], DueDate] = {}  # working days after a date, computed once per date

    def due_after(start: date, days: int) -> DueDate:
        if (start, days) not in after:
            after[(start, days)] = calendar.working_days_after(start, days)
        return after[(start, days)]

    found: dict[tuple[str, str], dict] = {}
    for task in work:
        if not task.team:
            continue
        task_id, batch_id, unit_id = task.task_id, task.batch_id, task.lead_unit  # each deadline's own dict, no merge
        subject = f"task:{task_id}"
        if task.status in ("drawn", "accepted") and task.batch_due is not None:
            found[("inspection", subject)] = {"task_id": task_id, "batch_id": batch_id, "unit_id": unit_id,
                                              "owed_by": [f"inspector:{i}" for i in task.team],
                                              "due": task.batch_due,
                                              "provisional": calendar.is_provisional(task.batch_due),
                                              "line_on": None}
        elif task.status == "inspected" and task.inspected_on is not None:
            due = due_after(task.inspected_on, RESULT_DAYS)
            found[("result", subject)] = {"task_id": task_id, "batch_id": batch_id, "unit_id": unit_id,
                                          "owed_by": [f"inspector:{task.team[0]}"], "due": due.day,
                                          "provisional": due.provisional, "line_on": due.day}
            if lines is not None:
                lines[task.task_id] = due.day
        elif task.status == "submitted" and task.submitted_on is not None:
            due = due_after(task.submitted_on, approval_days)
            line_on = None
            if task.inspected_on is not None:  # art. 20: published within 20 working days of the inspection
                line = due_after(task.inspected_on, RESULT_DAYS)
                due = min(due, line, key=lambda d: d.day)
                line_on = line.day
                if lines is not None:
                    lines[task.task_id] = line.day
            found[("approval", subject)] = {"task_id": task_id, "batch_id": batch_id, "unit_id": unit_id,
                                            "owed_by": [f"approvers:{unit_id}"], "due": due.day,
                                            "provisional": due.provisional, "line_on": line_on}
    return found


def wanted(session: Session, settings: Settings, calendar: Calendar,
           lines: dict[int, date] | None = None) -> dict[tuple[str, str], dict]:
    found = deadlines_for(open_work(session, settings), calendar, settings.reminders.approval_days, lines)
    found.update(other_deadlines(session, settings, calendar))
    return found


def other_deadlines(session: Session, settings: Settings, calendar: Calendar) -> dict[tuple[str, str], dict]:
    """The deadlines that are not a task's (few: recomputed on every sweep): the plans' and
    the follow-ups'."""
    from bot.batches.followups import followup_deadlines  # art. 18: follow-ups, whatever the batch's state

    found = plan_deadlines(session, calendar)
    found.update(followup_deadlines(session, settings, calendar))
    for values in found.values():
        values.setdefault("line_on", None)
    return found


REFILE_DAYS = 10  # art. 11: an adjusted plan is re-filed within 10 working days


def plan_deadlines(session: Session, calendar: Calendar) -> dict[tuple[str, str], dict]:
    """Art. 11: annual plans reported by the end of January, filed by the end of February,
    adjustments re-filed within 10 working days — owed by the planning office's leads."""
    found: dict[tuple[str, str], dict] = {}
    for plan in session.exec(select(AnnualPlan).where(AnnualPlan.listed)):
        base = {"task_id": None, "batch_id": None, "unit_id": plan.office_id, "owed_by": [f"leads:{plan.office_id}"]}
        for kind, done, due in (("plan_report", plan.reported_on, date(plan.year, 1, 31)),
                                ("plan_filing", plan.filed_on, date(plan.year, 3, 1) - timedelta(days=1))):
            if done is None:
                found[(kind, f"plan:{plan.id}")] = {**base, "due": due, "provisional": calendar.is_provisional(due)}
    offices = dict(session.execute(select(AnnualPlan.id, AnnualPlan.office_id)).all())
    for adjustment in session.exec(select(PlanAdjustment).where(col(PlanAdjustment.refiled_on).is_(None))):
        office = offices.get(adjustment.plan_id)
        refile = calendar.working_days_after(adjustment.adjusted_on, REFILE_DAYS)
        found[("plan_refiling", f"adjustment:{adjustment.id}")] = {
            "task_id": None, "batch_id": None, "unit_id": office, "owed_by": [f"leads:{office}"],
            "due": refile.day, "provisional": refile.provisional}
    return found


TASK_KINDS = ("inspection", "result", "approval")  # a task's deadlines, subject ``task:<id>``
OTHER_KINDS = ("plan_report", "plan_filing", "plan_refiling", "followup")  # ``other_deadlines``
DUE_NOW = date(2000, 1, 1)  # a deadline's ``next_rung_on`` when the next sweep must look at it


@dataclass
class Changes:
    """How the stored deadlines differ from what the open work calls for."""

    met: list[int]  # open deadlines no longer wanted
    changed: list[dict]  # by row_id: new values
    new: list[dict]  # rows to insert: kind, subject and values (open, neither snoozed nor acknowledged)
    # every deadline the sweep looks at, as it will stand (``id`` None if new; ``next_rung_on``
    # as stored): on a full sweep every wanted one, else the recomputed and those falling due
    view: dict[tuple[str, str], dict]
    next_on: dict[tuple[str, str], date | None] = field(default_factory=dict)  # set by the sweep


def _columns() -> tuple[Table, list[Any]]:
    table = table_of(Deadline)
    # ``owed_by`` is compared as the JSON text it was stored as: decoding 100,000 lists each
    # sweep would cost more than the rest of the comparison.
    return table, [c for c in table.c if c.name != "owed_by"] + [cast(table.c.owed_by, Text).label("owed_by_text")]


def compare(session: Session, settings: Settings, calendar: Calendar) -> Changes:
    """Read all the work and the stored deadlines; decide what to change (no writes)."""
    target = wanted(session, settings, calendar)
    table, columns = _columns()
    existing = {(row.kind, row.subject): row for row in session.execute(
        select(*columns).where(table.c.status == "open"))}
    _reopened(session, target, existing)
    return _diff(target, existing)


def compare_some(session: Session, settings: Settings, calendar: Calendar, task_ids: Collection[int],
                 today: date) -> Changes:
    """``compare`` for the tasks of ``task_ids`` and the deadlines that are not a task's; the
    view also holds the stored deadlines whose next rung falls by ``today``."""
    target = deadlines_for(open_work(session, settings, task_ids), calendar, settings.reminders.approval_days)
    target.update(other_deadlines(session, settings, calendar))
    table, columns = _columns()
    existing = {}
    for which in among(session, table.c.subject, (f"task:{task_id}" for task_id in task_ids)):
        existing.update({(row.kind, row.subject): row for row in session.execute(
            select(*columns).where(table.c.kind.in_(TASK_KINDS), which))})
    existing.update({(row.kind, row.subject): row for row in session.execute(  # by the (kind, subject) key
        select(*columns).where(table.c.kind.in_(OTHER_KINDS), table.c.status == "open"))})
    _reopened(session, target, existing)
    changes = _diff(target, existing)
    for row in session.execute(select(*columns).where(table.c.status == "open", table.c.next_rung_on <= today)):
        key = (row.kind, row.subject)
        if key not in existing:  # not recomputed: as stored
            values = {c: getattr(row, c) for c in row._fields if c != "owed_by_text"}
            changes.view[key] = {**values, "owed_by": json.loads(row.owed_by_text)}
    return changes


def _reopened(session: Session, target: dict[tuple[str, str], dict], existing: dict[tuple[str, str], Any]) -> None:
    """Met once, open again (a returned result): the stored row, whatever its status (looked
    up by the (kind, subject) key)."""
    table, columns = _columns()
    missing = [key for key in target if key not in existing]
    if not missing or not session.execute(select(table.c.id).limit(1)).first():
        return  # nothing to look for (the first sweep: no deadline stored yet)
    missing.sort()
    kinds = sorted({kind for kind, _ in missing})
    for which in among(session, table.c.subject, (subject for _, subject in missing)):
        for again in session.execute(select(*columns).where(table.c.kind.in_(kinds), which)):
            existing.setdefault((again.kind, again.subject), again)


def _diff(target: dict[tuple[str, str], dict], existing: dict[tuple[str, str], Any]) -> Changes:
    now = utcnow()
    met = [row.id for key, row in existing.items() if row.status == "open" and key not in target]
    changed, new, view = [], [], {}
    getters: dict[tuple[str, ...], tuple[Callable, Callable]] = {}  # each set of values compared in one go
    dumped: dict[tuple[str, ...], str] = {}  # ``owed_by`` as stored, per distinct list
    for (kind, subject), values in target.items():
        row = existing.get((kind, subject))
        if row is None:
            new.append({"kind": kind, "subject": subject, **values})
            # (``apply`` relies on status, updated_at and the flags being the same in every new row)
            values.update(id=None, kind=kind, subject=subject, snoozed_until=None, escalation_acknowledged=False,
                          next_rung_on=None)
            view[(kind, subject)] = values  # ``target``'s own dict, completed: 100,000s on a first sweep
            continue
        flags = {"snoozed_until": row.snoozed_until, "escalation_acknowledged": row.escalation_acknowledged}
        names = tuple(values)
        if names not in getters:
            compared = [name for name in names if name != "owed_by"]
            getters[names] = attrgetter(*compared), itemgetter(*compared)
        stored, wanted_now = getters[names]
        owed = tuple(values["owed_by"])
        if owed not in dumped:
            dumped[owed] = json.dumps(values["owed_by"])
        if row.status != "open" or row.owed_by_text != dumped[owed] or stored(row) != wanted_now(values):
            # a later date after an import of the official calendar, too
            changed.append({"row_id": row.id, "status": "open", "updated_at": now, **values})
        view[(kind, subject)] = {"id": row.id, "kind": kind, "subject": subject, **flags, **values,
                                 "next_rung_on": row.next_rung_on if row.status == "open" else None}
    return Changes(met, changed, new, view)


def apply(session: Session, changes: Changes) -> dict[tuple[str, str], int]:
    """Write the changes and each looked-at deadline's next rung day (safe if another
    instance wrote the same); the ids of the looked-at deadlines by (kind, subject)."""
    table = table_of(Deadline)
    now = utcnow()
    nexts = changes.next_on
    if changes.met:
        session.execute(update(table).where(table.c.id == bindparam("row_id"))
                        .values(status="met", updated_at=now, next_rung_on=None),
                        [{"row_id": i} for i in changes.met])
    if changes.changed:
        names = [k for k in changes.changed[0] if k != "row_id"] + ["next_rung_on"]
        statement = update(table).where(table.c.id == bindparam("row_id")).values(
            {name: bindparam(f"v_{name}") for name in names})
        by_id = {d["id"]: key for key, d in changes.view.items() if d["id"] is not None}
        session.execute(statement, [{"row_id": row["row_id"], **{f"v_{k}": v for k, v in row.items() if k != "row_id"},
                                     "v_next_rung_on": nexts.get(by_id[row["row_id"]])} for row in changes.changed])
    changed_ids = {row["row_id"] for row in changes.changed}
    moved = [{"row_id": d["id"], "v_next": nexts.get(key)} for key, d in changes.view.items()
             if d["id"] is not None and d["id"] not in changed_ids and d.get("next_rung_on") != nexts.get(key)]
    if moved:
        session.execute(update(table).where(table.c.id == bindparam("row_id"))
                        .values(next_rung_on=bindparam("v_next")), moved)
    ids = {key: d["id"] for key, d in changes.view.items() if d["id"] is not None}
    if changes.new:  # the sweep row is claimed: no other sweep writes deadlines meanwhile
        before = session.execute(select(func.max(table.c.id))).scalar() or 0
        for row in changes.new:
            row["next_rung_on"] = nexts.get((row["kind"], row["subject"]))
            # a tuple of strings is stored as the same JSON list, converted once per distinct team
            row["owed_by"] = tuple(row["owed_by"])
        # what every new row shares is given once; neither snoozed nor acknowledged: the
        # columns left out take their defaults (NULL; the model's False, converted once)
        insert_rows(session.connection(), table, changes.new, {"status": "open", "updated_at": now})
        ids.update(_new_ids(session, table, before, changes.new))
    return ids


def _new_ids(session: Session, table: Table, before: int, new: list[dict]) -> dict[tuple[str, str], int]:
    """The ids the rows of ``new`` were given (all stored past ``before``). One statement
    stores them in order, each taking the next id (SQLite's rowid; PostgreSQL's sequence):
    when the ids past ``before`` are exactly ``before + 1 …`` as many as rows, the n-th row
    has ``before + n`` — else (a sequence advanced by a sweep rolled back, say) they are read."""
    if _numbered_in_order(session, table, before, len(new)):
        return {(row["kind"], row["subject"]): before + n for n, row in enumerate(new, 1)}
    return {(kind, subject): i for i, kind, subject in session.execute(
        select(table.c.id, table.c.kind, table.c.subject).where(table.c.id > before))}


def _numbered_in_order(session: Session, table: Table, before: int, rows: int) -> bool:
    """Whether the ids past ``before`` are exactly ``before + 1 … before + rows``."""
    count, first, last = session.execute(select(func.count(), func.min(table.c.id), func.max(table.c.id))
                                         .where(table.c.id > before)).one()
    return bool(count == rows and first == before + 1 and last == before + rows)
