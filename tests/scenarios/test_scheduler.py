"""The ticker itself (every other test runs the app with ``ticker=False`` and calls the
sweep by hand): the real APScheduler jobs, triggered now, with the bot's clock at a chosen
instant — the reminder sweep queues and sends digests, the daily summary goes out on
working days only (a make-up Saturday yes, a holiday or a Sunday no), the weekly one on
its day whatever the calendar, each once per period."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlmodel import Session, select

import bot.app as app_module
import bot.clock
from bot.app import METRICS, create_app, reminder_ticker
from bot.batches import commands
from bot.batches.confirmation import confirm
from bot.batches.inspection import mark_inspected, team_of
from bot.settings import Settings
from storage.calendar import load_calendar
from storage.db import transaction
from storage.models import ConsoleMessage, OutboxMessage, Reminder, Task
from storage.sealing import new_key
from tests.support.batch_district import seed_district
from tests.support.reminders import TZ, at
from tests.support.wecom_bot import eventually

ROLES = {"admins": ["console:admin"], "supervisors": ["console:boss"],
         "units": {"S-DC": {"approvers": ["approver-dc"]}, "S-XC": {"approvers": ["approver-xc"]},
                   "U-XY": {"leads": ["lead-xy"]}}}
SUMMARIES = {"daily_at": "17:30", "weekly_on": "fri", "weekly_at": "17:00"}


@pytest.fixture
def settings():
    return Settings(console={"enabled": True}, roles=ROLES, security={"keys": [new_key()]},
                    bureau={"default_lead": "U-XY"}, summaries=SUMMARIES)


@pytest.fixture
def inspected(engine, tmp_path, settings) -> str:
    """A batch whose three tasks were inspected on 2026-09-29 (due 2026-10-16)."""
    seed_district(engine, tmp_path)
    drawn_at = at(date(2026, 9, 25))
    with transaction(engine) as session:
        batch = commands.run(session, settings, "admin", "new",
                             "名称=定时抽查 事项=A01 数量=3 方式=交叉随机 截止=2026-10-16", drawn_at).batch_id
    for action in ("publish", "draw"):
        with transaction(engine) as session:
            commands.run(session, settings, "admin", action, f"批次={batch}", drawn_at)
    with transaction(engine) as session:
        for task in session.exec(select(Task).where(Task.batch_id == batch)).all():
            for a in team_of(session, task.id):
                confirm(session, "t", task.id, a.inspector_id, drawn_at)
            lead = team_of(session, task.id)[0].inspector_id
            mark_inspected(session, "t", task.id, lead, date(2026, 9, 29), date(2026, 9, 29), at(date(2026, 9, 29)))
    return batch


class Nudged:
    """The dispatcher as the ticker sees it: told when something was queued."""

    def __init__(self) -> None:
        self.times = 0

    def nudge(self) -> None:
        self.times += 1


def frozen(monkeypatch, moment: datetime) -> None:
    """The bot's clock (``bot.clock.now``, read by every job) at ``moment``; APScheduler keeps real time."""
    monkeypatch.setattr(bot.clock, "now", lambda: moment)


async def fire(scheduler, job_id: str, done) -> None:
    """Run the scheduled job now, through the scheduler, and wait until ``done()``."""
    scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
    scheduler.wakeup()
    await eventually(done, timeout=20)


def queued(engine, prefix: str) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like(f"{prefix}%"))
                                 .order_by(OutboxMessage.id)))


def test_the_jobs_and_their_triggers(engine, settings):
    scheduler = reminder_ticker(engine, settings, Nudged())  # type: ignore[arg-type]
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"retention", "reminders", "anchor", "daily", "weekly"}
    assert jobs["reminders"].trigger.interval.total_seconds() == settings.reminders.sweep_minutes * 60
    # the daily summary every day at 17:30 bureau time (the job itself skips days off), the weekly on Fridays 17:00
    after = datetime(2026, 10, 9, 18, 0, tzinfo=TZ)  # a Friday evening
    assert jobs["daily"].trigger.get_next_fire_time(None, after) == datetime(2026, 10, 10, 17, 30, tzinfo=TZ)
    assert jobs["weekly"].trigger.get_next_fire_time(None, after) == datetime(2026, 10, 16, 17, 0, tzinfo=TZ)
    off = Settings(summaries={"daily_at": "", "weekly_on": ""})
    assert {job.id for job in reminder_ticker(engine, off, Nudged()).get_jobs()} == {  # type: ignore[arg-type]
        "retention", "reminders", "anchor"}


async def test_the_ticker_sweeps_and_the_digests_go_out(engine, settings, inspected, aiohttp_client, monkeypatch):
    """The app started with its ticker: the scheduled sweep queues the day's digests and
    nudges the dispatcher, which sends them (here to the console)."""
    with Session(engine) as session:
        calendar = load_calendar(session)
    due = calendar.working_days_after(date(2026, 9, 29), 20).day
    overdue = calendar.next_working_day(date.fromordinal(due.toordinal() + 1)).day
    frozen(monkeypatch, at(overdue, 10))
    started = []
    monkeypatch.setattr(app_module, "reminder_ticker",
                        lambda *args: started.append(reminder_ticker(*args)) or started[-1])
    sweeps = []
    real = app_module._sweep_once
    monkeypatch.setattr(app_module, "_sweep_once", lambda *a: sweeps.append(real(*a)) or sweeps[-1])
    client = await aiohttp_client(create_app(settings, engine))  # the ticker on, as in production
    assert len(started) == 1 and started[0].running
    scheduler = started[0]

    def sent_to_lead() -> list[ConsoleMessage]:
        with Session(engine) as session:
            return list(session.exec(select(ConsoleMessage).where(ConsoleMessage.conversation == "lead-xy")))

    await fire(scheduler, "reminders", sent_to_lead)
    text = sent_to_lead()[0].payload["text"]
    assert "【期限提醒】" in text and "已逾期 1 个工作日（逾期事项，抄送牵头科室）" in text
    assert "已满 20 个工作日" in text  # art. 20's line passed unpublished: told on this day
    with Session(engine) as session:
        rungs = len(session.exec(select(Reminder)).all())
    assert rungs and client.app[METRICS].sweep_lag() is not None
    await fire(scheduler, "reminders", lambda: len(sweeps) == 2)  # the next tick, the same day: nothing again
    assert sweeps[1] == 0
    with Session(engine) as session:
        assert len(session.exec(select(Reminder)).all()) == rungs
    assert len(sent_to_lead()) == 1


@pytest.mark.parametrize(("day", "sent"), [
    (date(2026, 10, 9), True),  # a Friday
    (date(2026, 10, 10), True),  # the make-up Saturday after National Day: a working day
    (date(2026, 10, 11), False),  # a Sunday
    (date(2026, 10, 5), False),  # a Monday of the National Day holiday
])
async def test_the_daily_summary_only_on_working_days(engine, settings, inspected, monkeypatch, day, sent):
    frozen(monkeypatch, at(day, 17, 30))
    nudged = Nudged()
    scheduler = reminder_ticker(engine, settings, nudged)  # type: ignore[arg-type]
    scheduler.start(paused=False)
    try:
        ran = []
        real = app_module._summaries_once
        monkeypatch.setattr(app_module, "_summaries_once", lambda *a: ran.append(real(*a)) or ran[-1])
        await fire(scheduler, "daily", lambda: ran and (nudged.times == 1 or not sent))
    finally:
        scheduler.shutdown(wait=False)
    messages = [m for m in queued(engine, f"summary:daily:{day.isoformat()}:") if m.kind == "text"]
    if sent:
        assert {m.recipient for m in messages} == {"boss", "lead-xy", "default"} and nudged.times == 1
        assert f"双随机抽查日报（{day}）" in messages[0].payload["message"]["text"]
    else:
        assert messages == [] and ran == [0] and nudged.times == 0


async def test_the_weekly_summary_once_per_week(engine, settings, inspected, monkeypatch):
    sunday = date(2026, 10, 11)  # the weekly one does not look at the calendar
    frozen(monkeypatch, at(sunday, 17))
    nudged = Nudged()
    scheduler = reminder_ticker(engine, settings, nudged)  # type: ignore[arg-type]
    scheduler.start()
    try:
        await fire(scheduler, "weekly", lambda: nudged.times == 1)
        first = len(queued(engine, "summary:weekly:"))
        frozen(monkeypatch, at(sunday, 18))  # another instance, or a misfire run again: the same week
        await fire(scheduler, "weekly", lambda: nudged.times == 2)
    finally:
        scheduler.shutdown(wait=False)
    messages = [m for m in queued(engine, "summary:weekly:2026-W41:") if m.kind == "text"]
    assert {m.recipient for m in messages} == {"boss", "lead-xy", "default"}
    assert len(queued(engine, "summary:weekly:")) == first  # queued once for the week
    assert "双随机抽查周报（2026-W41）" in messages[0].payload["message"]["text"]
