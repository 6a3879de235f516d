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

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from bot import outbox_keys, plan_frequency
from bot.chat import recipients
from bot.clock import bureau_time
from bot.outbound import USER, Destination, Text
from bot.reminders.deadlines import Changes, apply, compare
from bot.rules.deadlines import ACCOUNTABILITY, LEAD, OWNER, Policy, Step, in_working_hours, step_for
from bot.rules.workdays import Calendar
from bot.settings import Settings
from bot.texts import say
from storage import outbox
from storage.calendar import load_calendar
from storage.db import reading, transaction
from storage.models import Batch, Deadline, InspectionObject, Inspector, Reminder, Task, table_of

_PG_SWEEP_LOCK = 0x5353_5257  # "SSRW"
PAST_LINE = "past-20-days"  # the rung telling the lead office a result passed art. 20's line unpublished
PAST_LINE_WINDOW = 14  # days after the line within which the lead office is still told (a catch-up)


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


def sweep(engine: Engine, settings: Settings, now: datetime) -> list[Digest]:
    """Queue today's reminders as of ``now``, and in December those of the annual plans
    behind their frequency (art. 11, ``bot.plan_frequency``); nothing outside working hours."""
    return _deadlines(engine, settings, now) + _plans_behind(engine, settings, now)


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


def _deadlines(engine: Engine, settings: Settings, now: datetime) -> list[Digest]:
    """Queue today's deadline reminders as of ``now``; nothing outside working hours.

    Everything is read and decided in a reading transaction (no write lock); only the
    changes — new and changed deadlines, the rungs not yet sent, the digests — are
    written, in a short transaction.
    """
    local = bureau_time(now, settings.bureau.timezone)
    with reading(engine) as session:
        calendar, policy = load_calendar(session), policy_of(settings)
        if not in_working_hours(local, calendar, policy):
            return []
        changes = compare(session, settings, calendar)
        today = local.date()
        cache: dict[tuple[date, date], int] = {}  # step_for's working days left, by (today, due)
        due_now = [(key, d, _decided(d, step)) for key, d in changes.view.items()
                   if not (d["snoozed_until"] and today < d["snoozed_until"])
                   and (step := step_for(today, d["due"], calendar, policy, cache))]
        due_now += _past_the_line(session, changes, calendar, today)
        people = _People(session, settings, {d["batch_id"] for _, d, _ in due_now})
        rungs = [(key, level, f"{destination.platform}:{destination.address}", step.step)
                 for key, d, step in due_now for level in step.levels for destination in people.of(d, level)]
        table = table_of(Reminder)
        sent = {(r.deadline_id, r.recipient, r.step) for r in session.execute(
            select(table.c.deadline_id, table.c.recipient, table.c.step)
            .where(table.c.sent_at >= _day_start(now, local)))}
    rungs = [r for r in rungs if (changes.view[r[0]]["id"], r[2], r[3]) not in sent]
    if not (changes.met or changes.changed or changes.new or rungs):
        return []  # a routine tick: nothing to write
    with transaction(engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_PG_SWEEP_LOCK))
        ids = apply(session, changes)
        notices = _tell_admins_of_provisional_years(session, settings, changes)
        fresh = _insert_new(session, [{"deadline_id": ids[key], "recipient": recipient, "step": step,
                                       "level": level, "sent_at": now} for key, level, recipient, step in rungs])
        steps = {(ids[key], step.step): ({**d, "id": ids[key]}, step) for key, d, step in due_now}
        return notices + _queue_digests(session, fresh, steps, today)


def _past_the_line(session: Session, changes: Changes, calendar: Calendar,
                   today: date) -> list[tuple[tuple[str, str], dict[str, Any], Step]]:
    """Art. 20: the results past their 20-day line, unpublished, whose lead office was never
    told (a snoozed deadline or an acknowledged escalation is not told either). Lines
    passed within ``PAST_LINE_WINDOW`` days only: the notice is news of the day (an instance
    down for a while still catches up), and the ladder goes on escalating the rest."""
    late = {task_id: line for task_id, line in changes.lines.items()
            if line < today and (today - line).days <= PAST_LINE_WINDOW}
    if not late:
        return []
    subjects = sorted(f"task:{task_id}" for task_id in late)
    told: set[str] = set()
    for start in range(0, len(subjects), 10_000):
        told.update(session.scalars(
            select(Deadline.subject).join(Reminder, col(Reminder.deadline_id) == Deadline.id)
            .where(col(Deadline.kind).in_(("result", "approval")),
                   col(Deadline.subject).in_(subjects[start:start + 10_000]), Reminder.step == PAST_LINE)))
    found = []
    for key, d in changes.view.items():
        line = late.get(d["task_id"]) if d["kind"] in ("result", "approval") else None
        if (line is None or d["subject"] in told or d["escalation_acknowledged"]
                or (d["snoozed_until"] and today < d["snoozed_until"])):
            continue
        found.append((key, {**d, "line": line}, Step(PAST_LINE, (LEAD,), -calendar.working_days_between(line, today))))
    return found


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


def _queue_digests(session: Session, fresh: list[dict[str, Any]],
                   steps: dict[tuple[int, str], tuple[dict[str, Any], Step]], today: date) -> list[Digest]:
    """One digest per person, naming every rung newly sent to them."""
    by_person: defaultdict[str, list[tuple[tuple[dict[str, Any], Step], str, int]]] = defaultdict(list)
    for row in fresh:
        by_person[row["recipient"]].append((steps[(row["deadline_id"], row["step"])], row["level"], row["id"]))
    objects = _objects(session, [steps[(row["deadline_id"], row["step"])][0] for row in fresh])  # those in a digest
    digests = []
    for recipient, entries in sorted(by_person.items()):
        platform, _, user = recipient.partition(":")
        destination = Destination(platform, USER, user)
        lines = [dict(deadline=d, step=s, level=level, obj=objects.get(d["task_id"])) for (d, s), level, _ in
                 sorted(entries, key=lambda e: (e[0][0]["due"], e[0][0]["id"]))]
        message = Text(say("reminders", "digest", entries=lines, today=today))
        first = min(i for _, _, i in entries)
        outbox.queue(session, destination, message, outbox_keys.reminder_digest(recipient, first))
        digests.append(Digest(destination, len(entries)))
    return digests


def _day_start(now: datetime, local: datetime) -> datetime:
    """The start of the bureau's day of ``local``, as an instant (rungs are daily at most;
    a rung sent earlier is still refused by the unique key)."""
    return (local.replace(hour=0, minute=0, second=0, microsecond=0)).astimezone(now.tzinfo or local.tzinfo)


def _decided(deadline: dict, step: Step) -> Step:
    """An acknowledged escalation goes on reminding the owner only."""
    if deadline["escalation_acknowledged"]:
        return Step(step.step, (OWNER,), step.days_left)
    return step


def _insert_new(session: Session, rows: list[dict]) -> list[dict]:
    """Insert the rungs not yet sent; returns those inserted now."""
    if not rows:
        return []
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = table_of(Reminder)
    statement = (insert_(table).on_conflict_do_nothing(index_elements=["deadline_id", "recipient", "step"])
                 .returning(table.c.id, table.c.deadline_id, table.c.recipient, table.c.level, table.c.step))
    return [dict(r._mapping) for r in session.execute(statement, rows)]


def _objects(session: Session, deadlines: list[dict]) -> dict[int, InspectionObject]:
    task_ids = sorted({d["task_id"] for d in deadlines if d["task_id"]})
    found: dict[int, InspectionObject] = {}
    for start in range(0, len(task_ids), 10_000):
        chunk = task_ids[start:start + 10_000]
        query = (select(col(Task.id), InspectionObject)
                 .join(InspectionObject, col(InspectionObject.id) == Task.object_id).where(col(Task.id).in_(chunk)))
        for task_id, obj in session.exec(query):
            assert task_id is not None  # a stored task
            found[task_id] = obj
    return found


class _People:
    """Who each level of a deadline reaches, on every enabled platform."""

    def __init__(self, session: Session, settings: Settings, batch_ids: set[str]) -> None:
        self.session, self.settings = session, settings
        rows = session.execute(select(Batch.id, Batch.lead_unit_id).where(col(Batch.id).in_(list(batch_ids)))).all()
        self.leads_of = {batch_id: lead for batch_id, lead in rows}
        self._inspectors: dict[str, list[Destination]] = {}

    def of(self, deadline: dict, level: str) -> list[Destination]:
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
            elif kind == "approvers":
                entries = (recipients.unit_people(self.settings, ident, "approvers")
                           or recipients.unit_people(self.settings, self.leads_of.get(deadline["batch_id"]), "leads")
                           or list(self.settings.roles.admins))
                found += recipients.people(self.settings, entries)
            elif kind == "receivers":  # a follow-up's receiving unit (art. 18)
                from bot.batches.followups import receivers

                found += receivers(self.settings, ident)
        return found

    def _inspector(self, inspector_id: str) -> list[Destination]:
        if not self._inspectors:  # every inspector at once: one query, not one per person
            for person in self.session.exec(select(Inspector)):
                self._inspectors[person.id] = recipients.inspector(self.settings, person)
        return self._inspectors.get(inspector_id, [])
