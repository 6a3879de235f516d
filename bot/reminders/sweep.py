"""One reminder sweep: what is due now, to whom, as one digest per person (WeCom drops
messages past 30 a minute, so never one per task).

Several instances may sweep at once: the writing part runs under a lock (PostgreSQL
advisory lock; SQLite's write lock), deadlines are unique per (kind, subject) and each
rung sent to a person is a unique row, so a reminder is never sent twice — and a sweep
that dies rolls back and is done by the next one.

Art. 20: a result still unpublished after the 20th working day from its inspection is
reported to the batch's lead office on the first working day past that line (or the
first sweep within ``PAST_LINE_WINDOW`` days) — once per task (a rung ``past-20-days``,
whichever deadline of the task it is stored under), in that person's digest.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Engine, delete, func, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from bot import outbox_keys, plan_frequency
from bot.bulkwork import without_collections
from bot.chat import platforms, recipients
from bot.clock import bureau_time
from bot.outbound import USER, Destination, Text
from bot.reminders.deadlines import Changes, among, apply, compare, compare_some
from bot.rules.deadlines import ACCOUNTABILITY, LEAD, OWNER, Policy, Step, in_working_hours, step_for
from bot.rules.workdays import ONE_DAY, Calendar
from bot.settings import Settings
from bot.texts import environment, say
from storage import deadline_marks, outbox
from storage.calendar import load_calendar
from storage.db import reading, transaction
from storage.deadline_marks import ALL
from storage.models import (
    Assignment,
    Batch,
    Deadline,
    DeadlineMark,
    Holiday,
    ImportRun,
    InspectionObject,
    Inspector,
    Reminder,
    ReminderSweep,
    Task,
    table_of,
)

_PG_SWEEP_LOCK = 0x5353_5257  # "SSRW"
PAST_LINE = "past-20-days"  # the rung telling the lead office a result passed art. 20's line unpublished
PAST_LINE_WINDOW = 14  # days after the line within which the lead office is still told (a catch-up)
_NEXT_HORIZON = 400  # days looked ahead for a deadline's next rung


@dataclass(frozen=True)
class Digest:
    """A message a sweep queued: a reminder digest of ``items`` rungs, or (``items`` 0)
    the admins' notice that a year's official calendar is missing."""

    destination: Destination
    items: int


def policy_of(settings: Settings) -> Policy:
    start, end = settings.reminders.window()
    r = settings.reminders
    return Policy(before=tuple(r.before), lead_after=r.lead_after, accountability_after=r.accountability_after,
                  start=start, end=end)


def sweep(engine: Engine, settings: Settings, now: datetime, full: bool = False) -> list[Digest]:
    """Queue today's reminders as of ``now``, and in December those of the annual plans
    behind their frequency (art. 11, ``bot.plan_frequency``); nothing outside working hours.
    ``full``: recompute every deadline even if nothing changed (what an incremental tick
    must always equal)."""
    _prune_marks(engine, settings, now)
    return _deadlines(engine, settings, now, full) + _plans_behind(engine, settings, now)


def _prune_marks(engine: Engine, settings: Settings, now: datetime) -> None:
    """Outside working hours (no sweep reads the marks: nights, weekends, a holiday week),
    more than ``deadline_marks.PRUNE_OVER`` marks are replaced by one ``all``."""
    with reading(engine) as session:
        if in_working_hours(bureau_time(now, settings.bureau.timezone), load_calendar(session), policy_of(settings)):
            return
        if not deadline_marks.piled_up(session):
            return
    with transaction(engine) as session:
        deadline_marks.prune(session)


def _plans_behind(engine: Engine, settings: Settings, now: datetime) -> list[Digest]:
    local = bureau_time(now, settings.bureau.timezone)
    if local.month != plan_frequency.REMIND_MONTH:
        return []
    with reading(engine) as session:
        if not in_working_hours(local, load_calendar(session), policy_of(settings)):
            return []
        if not any(item.behind for item in plan_frequency.progress(session, local.year)):
            return []
    with transaction(engine) as session:
        return [Digest(d, 1) for d in plan_frequency.remind_behind(session, settings, local.date())]


@without_collections  # 100,000s of small dicts and rows, no cycles: a full sweep without the collector's walks
def _deadlines(engine: Engine, settings: Settings, now: datetime, full: bool = False) -> list[Digest]:
    """Queue today's deadline reminders as of ``now``; nothing outside working hours.

    Incremental: a tick recomputes the deadlines of the work marked changed since the last
    sweep (``storage.deadline_marks``) and of the plans and follow-ups, and looks at the
    stored deadlines whose next rung falls by today (``Deadline.next_rung_on``); the whole
    work is recomputed when the calendar, the policy, the roles or the directory changed
    (the fingerprint of the ``ReminderSweep`` row), or for a bulk change.

    Everything is read and decided in a reading transaction (no write lock); only the
    changes — new and changed deadlines, their next rung days, the rungs not yet sent, the
    digests — are written, in a short transaction that first claims the sweep row's
    version: if another instance swept meanwhile, this one writes nothing (the marks it
    read are gone or still there for the next tick).
    """
    local = bureau_time(now, settings.bureau.timezone)
    with reading(engine) as session:
        calendar, policy = load_calendar(session), policy_of(settings)
        if not in_working_hours(local, calendar, policy):
            return []
        today = local.date()
        state = session.execute(select(ReminderSweep.version, ReminderSweep.fingerprint)
                                .where(ReminderSweep.id == 1)).first()
        marks = session.execute(select(col(DeadlineMark.id), DeadlineMark.subject)).all()  # before the work
        fingerprint = fingerprint_of(session, settings)
        full = full or state is None or state.fingerprint != fingerprint or any(s == ALL for _, s in marks)
        if full:
            changes = compare(session, settings, calendar)
        else:
            changes = compare_some(session, settings, calendar, _marked_tasks(session, marks), today)
        cache: dict[tuple[date, date], int] = {}  # step_for's working days left, by (today, due)
        nexts: dict[tuple[date, date | None], date] = {}
        # today's rung and the next rung day depend on the due day, the snooze and the
        # acknowledgement only: decided once per distinct three (a few hundred for 100,000s)
        decided: dict[tuple[date, date | None, bool], tuple[Step | None, date]] = {}
        due_now = []
        for key, d in changes.view.items():
            facts = (d["due"], d["snoozed_until"], d["escalation_acknowledged"])
            if facts not in decided:
                decided[facts] = _decide(today, d, calendar, policy, cache, nexts)
            step, changes.next_on[key] = decided[facts]
            if step:
                due_now.append((key, d, step))
        due_now += _past_the_line(session, changes, calendar, today)
        sent = _sent(session, [d["id"] for _, d, _ in due_now if d["id"] is not None], _day_start(now, local))
        people = _People(session, settings, {d["batch_id"] for _, d, _ in due_now})
        rungs = [(key, level, recipient, step.step) for key, d, step in due_now for level in step.levels
                 for recipient in people.of(d, level) if (d["id"], recipient, step.step) not in sent]
    moved = any(d["id"] is None or d["next_rung_on"] != changes.next_on[key] for key, d in changes.view.items())
    if not (changes.met or changes.changed or changes.new or rungs or marks or moved
            or state is None or state.fingerprint != fingerprint):
        return []  # a routine tick: nothing to write
    with transaction(engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_PG_SWEEP_LOCK))
        if not _claim(session, state, fingerprint):
            return []  # another instance swept since this one read: it did the work
        with _roomy(session, len(changes.new) + len(changes.changed)):
            ids = apply(session, changes)
        _forget(session, [i for i, _ in marks])
        notices = _tell_admins_of_provisional_years(session, settings, changes)
        fresh = _insert_new(session, [{"deadline_id": ids[key], "recipient": recipient, "step": step,
                                       "level": level, "sent_at": now} for key, level, recipient, step in rungs])
        for key, d, _ in due_now:
            d["id"] = ids[key]
        steps = {(d["id"], step.step): (d, step) for _, d, step in due_now}
        return notices + _queue_digests(session, fresh, steps, today)


def fingerprint_of(session: Session, settings: Settings) -> str:
    """What every stored deadline and rung was computed with, besides the work: the
    calendar's imported rows, the reminder policy and the follow-ups' days, the roles and
    platforms that name the recipients, and the directory's last import. A change of any
    makes the next sweep recompute everything."""
    holidays = session.execute(select(col(Holiday.day), col(Holiday.kind), col(Holiday.year))
                               .order_by(col(Holiday.day), col(Holiday.kind))).all()
    last_import = session.execute(select(func.max(ImportRun.id))).scalar()
    reminders = settings.reminders.model_dump(mode="json", exclude={"sweep_minutes"})
    facts = {"calendar": [[str(day), kind, year] for day, kind, year in holidays], "import": last_import,
             "reminders": reminders, "followups": settings.followups.model_dump(mode="json"),
             "roles": settings.roles.model_dump(mode="json"), "platforms": platforms.enabled(settings),
             "timezone": str(settings.bureau.timezone), "lead": settings.bureau.default_lead}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def _marked_tasks(session: Session, marks: Sequence[Any]) -> set[int]:
    """The tasks whose deadlines the marks call for recomputing."""
    tasks: set[int] = set()
    batches, inspectors = [], []
    for _, subject in marks:
        kind, _, ident = subject.partition(":")
        if kind == "task" and ident.isdigit():
            tasks.add(int(ident))
        elif kind == "batch":
            batches.append(ident)
        elif kind == "inspector":
            inspectors.append(ident)
    if batches:
        tasks.update(session.scalars(select(col(Task.id)).where(col(Task.batch_id).in_(sorted(set(batches))))))
    for which in among(session, col(Assignment.inspector_id), inspectors):
        tasks.update(session.scalars(select(Assignment.task_id).where(which)))
    return tasks


def _next_rung(today: date, due: date, snoozed: date | None, calendar: Calendar, policy: Policy,
               cache: dict[tuple[date, date], int], found: dict[tuple[date, date | None], date]) -> date:
    """The first working day after ``today`` on which the deadline has a rung (not before
    ``snoozed``): the next sweep to look at it. A rung past the art. 20 line falls on a day
    the deadline is overdue, so on a day of a rung too. Looked up to ``_NEXT_HORIZON`` days
    ahead, else that day (a day too early only means a look that finds nothing)."""
    if (due, snoozed) not in found:
        day = today + ONE_DAY
        if snoozed and snoozed > day:
            day = snoozed
        last = today + timedelta(days=_NEXT_HORIZON)
        while day < last and not (calendar.is_working_day(day) and step_for(day, due, calendar, policy, cache)):
            day += ONE_DAY
        found[(due, snoozed)] = day
    return found[(due, snoozed)]


def _decide(today: date, d: dict[str, Any], calendar: Calendar, policy: Policy, cache: dict[tuple[date, date], int],
            nexts: dict[tuple[date, date | None], date]) -> tuple[Step | None, date]:
    """A deadline's rung today, if any (as decided for it), and its next rung day."""
    snoozed = d["snoozed_until"] and today < d["snoozed_until"]
    step = None if snoozed else step_for(today, d["due"], calendar, policy, cache)
    return (_decided(d, step) if step else None,
            _next_rung(today, d["due"], d["snoozed_until"], calendar, policy, cache, nexts))


ROOMY_ROWS = 10_000  # deadlines written at once from which SQLite's page cache is enlarged meanwhile
ROOMY_CACHE_KIB = 65_536


@contextmanager
def _roomy(session: Session, rows: int) -> Iterator[None]:
    """On SQLite, for ``rows`` ≥ ``ROOMY_ROWS``: the connection's page cache enlarged while
    they are written (the default 2 MiB spills the deadline indexes' pages to the WAL and
    reads the tasks' back for each row's foreign key check), then set back."""
    connection = session.connection()
    if rows < ROOMY_ROWS or connection.dialect.name != "sqlite":
        yield
        return
    before = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size=-{ROOMY_CACHE_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")


def _claim(session: Session, state: Any, fingerprint: str) -> bool:
    """Whether the sweep row still stands as this sweep read it (then it is bumped)."""
    table = table_of(ReminderSweep)
    if state is None:
        insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        return session.execute(insert_(table).values(id=1, fingerprint=fingerprint, version=1)
                               .on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)).first() is not None
    done = session.execute(update(table).where(table.c.id == 1, table.c.version == state.version)
                           .values(version=state.version + 1, fingerprint=fingerprint).returning(table.c.id))
    return done.first() is not None


def _forget(session: Session, mark_ids: list[int]) -> None:
    """Delete the marks this sweep read (those written meanwhile stay for the next)."""
    table = table_of(DeadlineMark)
    for which in among(session, table.c.id, mark_ids):
        session.execute(delete(table).where(which))


def _sent(session: Session, deadline_ids: list[int], since: datetime) -> set[tuple[int, str, str]]:
    """The rungs of these deadlines sent today."""
    table = table_of(Reminder)
    sent: set[tuple[int, str, str]] = set()
    for which in among(session, table.c.deadline_id, deadline_ids):
        sent.update((deadline, recipient, step) for deadline, recipient, step in session.execute(
            select(table.c.deadline_id, table.c.recipient, table.c.step).where(which, table.c.sent_at >= since)))
    return sent


def _past_the_line(session: Session, changes: Changes, calendar: Calendar,
                   today: date) -> list[tuple[tuple[str, str], dict[str, Any], Step]]:
    """Art. 20: the results past their 20-day line, unpublished, whose lead office was never
    told (a snoozed deadline or an acknowledged escalation is not told either). Lines
    passed within ``PAST_LINE_WINDOW`` days only: the notice is news of the day (an instance
    down for a while still catches up), and the ladder goes on escalating the rest."""
    earliest = today - timedelta(days=PAST_LINE_WINDOW)
    steps: dict[date, Step] = {}
    late = [(key, d) for key, d in changes.view.items()
            if (line := d.get("line_on")) is not None and earliest <= line < today
            and d["kind"] in ("result", "approval")]
    if not late:
        return []
    told: set[str] = set()
    deadlines, reminders = table_of(Deadline), table_of(Reminder)
    stored = session.execute(select(deadlines.c.id).limit(1)).first()  # else (a first sweep) nobody was told
    for which in among(session, deadlines.c.subject, (d["subject"] for _, d in late)) if stored else []:
        told.update(session.scalars(
            select(deadlines.c.subject).join(reminders, reminders.c.deadline_id == deadlines.c.id)
            .where(deadlines.c.kind.in_(("result", "approval")), which, reminders.c.step == PAST_LINE)))
    return [(key, {**d, "line": d["line_on"]}, step) for key, d in late
            if d["subject"] not in told and (step := _told_today(d, calendar, today, steps))]


def _told_today(d: dict[str, Any], calendar: Calendar, today: date, steps: dict[date, Step]) -> Step | None:
    """The ``past-20-days`` rung of a deadline past its line whose lead office was never
    told — unless it is snoozed or its escalation acknowledged (one rung per line: the
    working days since it counted once)."""
    if d["escalation_acknowledged"] or (d["snoozed_until"] and today < d["snoozed_until"]):
        return None
    line = d["line_on"]
    if line not in steps:
        steps[line] = Step(PAST_LINE, (LEAD,), -calendar.working_days_between(line, today))
    return steps[line]


def _tell_admins_of_provisional_years(session: Session, settings: Settings, changes: Changes) -> list[Digest]:
    """Deadlines counted on a provisional calendar: the admins are told, once per year,
    to import the official arrangement (the deadlines are recomputed after it)."""
    years = sorted({d["due"].year for d in changes.view.values() if d["provisional"]})
    told = []
    for year in years:
        text = Text(say("calendar", "arrangement_missing", years=[year]))
        for admin in recipients.people(settings, list(settings.roles.admins)):
            if outbox.queue(session, admin, text, outbox_keys.calendar_missing(year, admin.platform, admin.address)):
                told.append(Digest(admin, 0))
    return told


def _queue_digests(session: Session, fresh: list[_Sent],
                   steps: dict[tuple[int, str], tuple[dict[str, Any], Step]], today: date) -> list[Digest]:
    """One digest per person, naming every rung newly sent to them."""
    by_person: defaultdict[str, list[tuple[tuple[dict[str, Any], Step], str, int]]] = defaultdict(list)
    for row in fresh:
        by_person[row.recipient].append((steps[(row.deadline_id, row.step)], row.level, row.id))
    objects = _objects(session, [steps[(row.deadline_id, row.step)][0] for row in fresh])  # those in a digest
    shown: dict[tuple[int, date | None], _Shown] = {}
    digest = getattr(environment().get_template("reminders.j2").module, "digest")  # once, not per person
    digests, messages = [], []
    for recipient, entries in sorted(by_person.items()):
        platform, _, user = recipient.partition(":")
        destination = Destination(platform, USER, user)
        lines = [_Entry(_shown(d, shown), s, level, objects.get(d["task_id"])) for (d, s), level, _ in
                 sorted(entries, key=lambda e: (e[0][0]["due"], e[0][0]["id"]))]
        message = Text(str(digest(entries=lines, today=today)).strip())  # as say("reminders", "digest", …)
        first = min(i for _, _, i in entries)
        messages.append((destination, message, outbox_keys.reminder_digest(recipient, first)))
        digests.append(Digest(destination, len(entries)))
    outbox.queue_many(session, messages)
    return digests


class _Shown(NamedTuple):
    """What a digest shows of a deadline. The template reads attributes: Jinja finds an
    attribute at once, a dict's key only after a failed attribute lookup (an exception per
    field, 30 per entry)."""

    id: int
    task_id: int | None
    subject: str
    kind: str
    due: date
    provisional: bool
    line: date | None  # art. 20's line, on a ``past-20-days`` rung


class _Entry(NamedTuple):
    """One rung in a digest."""

    deadline: _Shown
    step: Step
    level: str
    obj: _Named | None


def _shown(d: dict[str, Any], shown: dict[tuple[int, date | None], _Shown]) -> _Shown:
    """``d`` as a digest shows it, made once per deadline (and line: a deadline past art.
    20's line is shown with it on its ``past-20-days`` rung, without it on its other rung)."""
    key = (d["id"], d.get("line"))
    found = shown.get(key)
    if found is None:
        found = shown[key] = _Shown(d["id"], d["task_id"], d["subject"], d["kind"], d["due"], d["provisional"],
                                        d.get("line"))
    return found


def _day_start(now: datetime, local: datetime) -> datetime:
    """The start of the bureau's day of ``local``, as an instant (rungs are daily at most;
    a rung sent earlier is still refused by the unique key)."""
    return (local.replace(hour=0, minute=0, second=0, microsecond=0)).astimezone(now.tzinfo or local.tzinfo)


def _decided(deadline: dict, step: Step) -> Step:
    """An acknowledged escalation goes on reminding the owner only."""
    if deadline["escalation_acknowledged"]:
        return Step(step.step, (OWNER,), step.days_left)
    return step


class _Sent(NamedTuple):
    """A rung stored now (a ``reminders`` row)."""

    id: int
    deadline_id: int
    recipient: str
    level: str
    step: str


def _insert_new(session: Session, rows: list[dict]) -> list[_Sent]:
    """Insert the rungs not yet sent; returns those inserted now."""
    if not rows:
        return []
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = table_of(Reminder)
    statement = (insert_(table).on_conflict_do_nothing(index_elements=["deadline_id", "recipient", "step"])
                 .returning(table.c.id, table.c.deadline_id, table.c.recipient, table.c.level, table.c.step))
    return [_Sent(*row) for row in session.execute(statement, rows)]


@dataclass(frozen=True)
class _Named:
    name: str  # what a digest shows of an object


def _objects(session: Session, deadlines: list[dict]) -> dict[int, _Named]:
    found: dict[int, _Named] = {}
    tasks, objects = table_of(Task), table_of(InspectionObject)  # Core: rows as tuples, not ORM-loaded
    for which in among(session, tasks.c.id, (d["task_id"] for d in deadlines if d["task_id"])):
        query = select(tasks.c.id, objects.c.name).join(objects, objects.c.id == tasks.c.object_id).where(which)
        for task_id, name in session.execute(query):
            found[task_id] = _Named(name)
    return found


class _People:
    """Who each level of a deadline reaches, on every enabled platform, as ``platform:user``
    (resolved once per distinct owner, batch and unit)."""

    def __init__(self, session: Session, settings: Settings, batch_ids: set[str]) -> None:
        self.session, self.settings = session, settings
        rows = session.execute(select(Batch.id, Batch.lead_unit_id).where(col(Batch.id).in_(list(batch_ids)))).all()
        self.leads_of = {batch_id: lead for batch_id, lead in rows}
        self._inspectors: dict[str, list[Destination]] = {}
        self._found: dict[tuple, list[str]] = {}

    def of(self, deadline: dict, level: str) -> list[str]:
        key: tuple = ((level, deadline["batch_id"], *deadline["owed_by"]) if level == OWNER
                      else (level, deadline["batch_id"]) if level == LEAD else (level, deadline["unit_id"]))
        if key not in self._found:
            self._found[key] = [f"{d.platform}:{d.address}" for d in self._of(deadline, level)]
        return self._found[key]

    def _of(self, deadline: dict, level: str) -> list[Destination]:
        if level == LEAD:
            if deadline["batch_id"] is None:  # a plan's date: the credit office (the admins) oversees plans
                return recipients.people(self.settings, list(self.settings.roles.admins))
            return recipients.people(self.settings, recipients.unit_people(
                self.settings, self.leads_of.get(deadline["batch_id"]), "leads"))
        if level == ACCOUNTABILITY:
            return recipients.people(self.settings, recipients.unit_people(
                self.settings, deadline["unit_id"], "accountability"))
        assert level == OWNER
        found = []
        for owner in deadline["owed_by"]:
            kind, _, ident = owner.partition(":")
            if kind == "inspector":
                found += self._inspector(ident)
            elif kind == "leads":
                found += recipients.people(self.settings, recipients.unit_people(self.settings, ident, "leads"))
            elif kind == "approvers":  # the unit's approvers, else the lead office's leads, else the admins
                found += recipients.first_reachable(self.settings, [
                    recipients.unit_people(self.settings, ident, "approvers"),
                    recipients.unit_people(self.settings, self.leads_of.get(deadline["batch_id"]), "leads"),
                    list(self.settings.roles.admins)])
            elif kind == "receivers":  # a follow-up's receiving unit (art. 18)
                from bot.batches.followups import receivers

                found += receivers(self.settings, ident)
        return found

    def _inspector(self, inspector_id: str) -> list[Destination]:
        if not self._inspectors:  # every inspector at once: one query, not one per person
            for row in self.session.execute(select(Inspector.id, Inspector.wecom_userid, Inspector.dingtalk_userid)):
                # the accounts only, as attributes (building 100,000s of model instances costs seconds)
                self._inspectors[row.id] = recipients.inspector(self.settings, cast(Inspector, row))
        return self._inspectors.get(inspector_id, [])
