"""Reminders are incremental (issue 20, item 5): a tick recomputes only the work marked
changed since the last sweep and looks only at the deadlines falling due, yet stands
exactly where a full recompute would — after every tick of a scenario (tasks confirmed,
inspected, results submitted, approved and returned, a deadline snoozed and acknowledged,
settings changed, a calendar imported, a bulk change, days passing), a full sweep as of
the same instant finds nothing to store, change or send. Nothing is sent twice, and a
sweep that another instance overtook writes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from bot.batches import commands
from bot.batches.confirmation import confirm
from bot.batches.inspection import mark_inspected, team_of
from bot.batches.results import Entry, approve, return_result, submit
from bot.chat.identity import ADMIN, Identity
from bot.reminders import sweep as sweeping
from bot.reminders.operations import acknowledge, snooze
from bot.reminders.sweep import sweep
from bot.roles import Actor
from bot.settings import Settings
from storage.db import transaction
from storage.deadline_marks import ALL
from storage.importing import import_file
from storage.models import Batch, Deadline, DeadlineMark, OutboxMessage, Reminder, ReminderSweep, Result, Task
from storage.sealing import new_key
from tests.support.batch_district import seed_district

TZ = ZoneInfo("Asia/Shanghai")
ROLES = {"admins": ["console:admin"],
         "units": {"S-DC": {"approvers": ["approver-dc"], "accountability": ["contact-dc"]},
                   "S-XC": {"accountability": ["contact-xc"]},  # no approvers: the lead office's leads
                   "U-XY": {"leads": ["lead-xy"]}}}
DRAWN = datetime.combine(date(2026, 9, 25), time(10), TZ).astimezone(UTC)
ADMIN_ID = Identity(Actor("console", "admin"), frozenset({ADMIN}))


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), TZ).astimezone(UTC)


def settings_with(**reminders) -> Settings:
    return Settings(console={"enabled": True}, roles=ROLES, security={"keys": [new_key()]},
                    bureau={"default_lead": "U-XY"}, reminders=reminders)


@pytest.fixture
def drawn(engine, tmp_path) -> list[int]:
    """A batch of six tasks drawn on 2026-09-25, due 2026-10-16: its task ids."""
    seed_district(engine, tmp_path)
    settings = settings_with()
    with transaction(engine) as session:
        batch = commands.run(session, settings, "admin", "new",
                             "名称=增量提醒 事项=A01 数量=6 方式=交叉随机 截止=2026-10-16", DRAWN).batch_id
    for action in ("publish", "draw"):
        with transaction(engine) as session:
            commands.run(session, settings, "admin", action, f"批次={batch}", DRAWN)
    with Session(engine) as session:
        return [t.id for t in session.exec(select(Task).where(Task.batch_id == batch).order_by(Task.id))]


class Ticks:
    """Sweeps as the ticker runs them, each checked against a full recompute."""

    def __init__(self, engine, monkeypatch) -> None:
        self.engine, self.paths = engine, []
        full, some = sweeping.compare, sweeping.compare_some

        def compare(*args, **kwargs):
            self.paths.append("full")
            return full(*args, **kwargs)

        def compare_some(*args, **kwargs):
            self.paths.append("incremental")
            return some(*args, **kwargs)
        monkeypatch.setattr(sweeping, "compare", compare)
        monkeypatch.setattr(sweeping, "compare_some", compare_some)

    def __call__(self, settings: Settings, moment: datetime, expect: str | None = None) -> list:
        self.paths.clear()
        sent = sweep(self.engine, settings, moment)
        taken = self.paths[:1]
        stored, version = self.state()
        assert sweep(self.engine, settings, moment, full=True) == [], "a full sweep found rungs the tick missed"
        assert self.state() == (stored, version), "a full sweep changed what the tick stored"
        if expect:
            assert taken == [expect], (taken, expect)
        return sent

    def state(self):
        with Session(self.engine) as session:
            deadlines = sorted((d.kind, d.subject, d.status, d.due, d.provisional, d.line_on, d.next_rung_on,
                                tuple(d.owed_by), d.unit_id, d.snoozed_until, d.escalation_acknowledged)
                               for d in session.exec(select(Deadline)))
            version = session.exec(select(ReminderSweep.version)).first()
        return deadlines, version


def check_sent_once(engine) -> int:
    """Each rung is one row and named in exactly one digest; digests are never queued twice."""
    with Session(engine) as session:
        rows = session.exec(select(Reminder)).all()
        digests = session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("reminders:%"))).all()
    assert len({(r.deadline_id, r.recipient, r.step) for r in rows}) == len(rows)
    assert len({m.idempotency_key for m in digests}) == len(digests)
    assert sum(m.payload["message"]["text"].count("【期限 ") for m in digests) == len(rows)
    return len(rows)


def working_days(engine, start: date, count: int) -> list[date]:
    from storage.calendar import load_calendar

    with Session(engine) as session:
        calendar = load_calendar(session)
    days, day = [], start
    while len(days) < count:
        day = calendar.next_working_day(day + timedelta(days=1)).day
        days.append(day)
    return days


def test_the_incremental_tick_equals_a_full_sweep_across_a_scenario(engine, drawn, tmp_path, monkeypatch):
    tick, settings = Ticks(engine, monkeypatch), settings_with()
    a, b, c, d, e, f = drawn
    tick(settings, at(date(2026, 9, 28)), expect="full")  # the first sweep stores every deadline
    tick(settings, at(date(2026, 9, 28), 15), expect="incremental")  # nothing changed
    with transaction(engine) as session:  # some confirm; some inspect
        for task_id in (a, b, c, d):
            for member in team_of(session, task_id):
                confirm(session, "t", task_id, member.inspector_id, DRAWN)
    tick(settings, at(date(2026, 9, 29)), expect="incremental")
    with transaction(engine) as session:  # the batch's 截止 moves: its inspection deadlines with it
        batch = session.get_one(Batch, session.get_one(Task, a).batch_id)
        batch.due = date(2026, 10, 20)
        session.add(batch)
    tick(settings, at(date(2026, 9, 29), 11), expect="incremental")
    with Session(engine) as session:
        assert {d.due for d in session.exec(select(Deadline).where(Deadline.kind == "inspection"))} == {
            date(2026, 10, 20)}
    with transaction(engine) as session:
        for task_id in (a, b, c):
            lead = team_of(session, task_id)[0].inspector_id
            mark_inspected(session, "t", task_id, lead, date(2026, 9, 29), date(2026, 9, 29), at(date(2026, 9, 29)))
    tick(settings, at(date(2026, 9, 29), 16), expect="incremental")
    days = working_days(engine, date(2026, 9, 29), 40)
    for day in days[:7]:  # the inspection deadline's ladder on the way to 2026-10-20
        tick(settings, at(day), expect="incremental")
        tick(settings, at(day, 17), expect="incremental")
    with transaction(engine) as session:
        for task_id in (a, b):
            lead = team_of(session, task_id)[0].inspector_id
            submit(session, "t", task_id, lead, Entry(1, "未发现问题", True), at(days[7]))
    tick(settings, at(days[7], 11), expect="incremental")
    with transaction(engine) as session:
        result = session.exec(select(Result).where(Result.task_id == a)).one()
        approve(session, ADMIN_ID, result.id, at(days[7], 12))
        result = session.exec(select(Result).where(Result.task_id == b)).one()
        return_result(session, ADMIN_ID, result.id, "补充说明", at(days[7], 12))
    tick(settings, at(days[7], 13), expect="incremental")
    with transaction(engine) as session:  # an admin snoozes one overdue deadline and acknowledges another
        rows = {row.subject: row for row in session.exec(select(Deadline).where(Deadline.status == "open"))}
        snooze(session, "admin", rows[f"task:{e}"].id, days[12], "延期已批准")
        acknowledge(session, "admin", rows[f"task:{f}"].id, "已知悉")
    tick(settings, at(days[8]), expect="incremental")
    for day in days[9:26]:  # overdue: escalations, art. 20's line, the snooze running out
        tick(settings, at(day), expect="incremental")
    changed = settings_with(before=[5, 2, 1], lead_after=2, accountability_after=4, approval_days=3)
    tick(changed, at(days[26]), expect="full")  # the policy changed: everything is recomputed
    tick(changed, at(days[26], 15), expect="incremental")
    with transaction(engine) as session:  # a bulk change, rows unknown: everything again
        session.execute(text("UPDATE tasks SET inspected_on = :d WHERE id = :t"), {"d": days[12], "t": c})
        assert session.exec(select(DeadlineMark.subject)).all()[-1] == ALL
    tick(changed, at(days[27]), expect="full")
    with transaction(engine) as session:  # late December: a result whose 20 days run into 2027 (暂定)
        task = session.get_one(Task, c)
        task.inspected_on = date(2026, 12, 20)
        session.add(task)
    tick(changed, at(date(2026, 12, 21)), expect="incremental")
    with Session(engine) as session:
        assert session.exec(select(Deadline).where(Deadline.subject == f"task:{c}", Deadline.kind == "result")
                            ).one().provisional
    holidays = tmp_path / "holidays-2027.csv"  # the official arrangement arrives
    holidays.write_text("date,kind\n2027-01-01,holiday\n2027-01-04,holiday\n", encoding="utf-8")
    assert import_file(engine, "holidays", holidays, actor="test").ok
    tick(changed, at(date(2026, 12, 22)), expect="full")
    with Session(engine) as session:
        assert not session.exec(select(Deadline).where(Deadline.subject == f"task:{c}", Deadline.kind == "result")
                                ).one().provisional
    for day in working_days(engine, date(2026, 12, 22), 3):
        tick(changed, at(day), expect="incremental")
    assert check_sent_once(engine) > 0
    with Session(engine) as session:
        steps = {r.step for r in session.exec(select(Reminder))}
        assert not session.exec(select(DeadlineMark)).all()  # every mark read was forgotten
    assert {"before-3", "due", "overdue-1", "past-20-days"} <= steps


def test_a_routine_tick_reads_only_the_deadlines_falling_due(engine, drawn, monkeypatch):
    """After a day's first sweep, a tick without changes looks at no deadline; the next
    working day it looks at those with a rung that day, not the others."""
    settings = settings_with()
    for task_id in drawn:
        with transaction(engine) as session:
            for member in team_of(session, task_id):
                confirm(session, "t", task_id, member.inspector_id, DRAWN)
    sweep(engine, settings, at(date(2026, 10, 12)))
    looked: list[int] = []
    some = sweeping.compare_some

    def compare_some(*args, **kwargs):
        changes = some(*args, **kwargs)
        looked.append(sum(1 for key in changes.view if key[0] == "inspection"))
        return changes
    monkeypatch.setattr(sweeping, "compare_some", compare_some)
    assert sweep(engine, settings, at(date(2026, 10, 12), 15)) == []
    days = working_days(engine, date(2026, 10, 12), 3)
    assert sweep(engine, settings, at(days[0]))  # 2026-10-13: three working days before the 16th
    assert looked == [0, len(drawn)]
    with Session(engine) as session:
        nexts = {d.next_rung_on for d in session.exec(select(Deadline).where(Deadline.kind == "inspection"))}
    assert nexts == {days[2]} == {date(2026, 10, 15)}  # before-1 (before=[3, 1]), not the 14th


def test_a_sweep_overtaken_by_another_instance_writes_nothing(engine, drawn, monkeypatch):
    """Two instances read at once; the one that writes second finds the sweep row moved on
    and writes nothing: every rung and digest is queued once."""
    settings = settings_with()
    with transaction(engine) as session:
        for task_id in drawn:
            for member in team_of(session, task_id):
                confirm(session, "t", task_id, member.inspector_id, DRAWN)
    sweep(engine, settings, at(date(2026, 10, 12)))
    moment = at(date(2026, 10, 13))
    other: list = []
    full = sweeping.compare_some

    def overtaken(*args, **kwargs):
        changes = full(*args, **kwargs)
        if not other:  # while this sweep reads, another instance sweeps to the end
            monkeypatch.setattr(sweeping, "compare_some", full)
            other.append(sweep(engine, settings, moment))
        return changes
    monkeypatch.setattr(sweeping, "compare_some", overtaken)
    assert sweep(engine, settings, moment) == []
    assert other[0] and sum(d.items for d in other[0]) == check_sent_once(engine)
    assert sweep(engine, settings, moment, full=True) == []
