"""Deadlines and reminders with a frozen clock (art. 20, 25; issue 6): official working
days across the National Day holiday and a make-up Saturday, one digest per person,
the escalation ladder, the working-hours window, provisional years, and several
sweepers never sending a reminder twice."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.reminders.sweep import sweep
from bot.rules.deadlines import Policy, step_for
from bot.settings import Settings
from storage.calendar import load_calendar
from storage.db import transaction
from storage.models import AuditEntry, Deadline, OutboxMessage, Reminder, Task
from storage.sealing import new_key
from tests.support.batch_district import PLANS, seed_district
from tests.support.reminders import at, inspected_batch, reminder_settings


@pytest.fixture
def settings():
    return reminder_settings()


@pytest.fixture
def inspected(engine, tmp_path, settings):
    """A drawn batch (due 2026-10-16) whose three tasks were inspected on 2026-09-29."""
    return inspected_batch(engine, tmp_path, settings)


def run(engine, settings, moment: datetime):
    return sweep(engine, settings, moment)


def digests(engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("reminders:%"))
                                 .order_by(OutboxMessage.id)))


def test_the_ladder_on_the_official_calendar():
    from storage.calendar import calendar_from_rows

    calendar, policy = calendar_from_rows([]), Policy()
    # From Sep 29: Sep 30, then the National Day holiday Oct 1–7, then Oct 8, 9 and the
    # make-up Saturday Oct 10 count as working days 2, 3 and 4.
    assert calendar.working_days_after(date(2026, 9, 29), 4).day == date(2026, 10, 10)
    assert calendar.working_days_after(date(2026, 9, 29), 5).day == date(2026, 10, 12)
    assert step_for(date(2026, 10, 10), date(2026, 10, 14), calendar, policy).step == "before-3"  # Saturday counts
    assert step_for(date(2026, 9, 30), date(2026, 10, 10), calendar, policy).step == "before-3"  # holiday skipped
    assert step_for(date(2026, 10, 9), date(2026, 10, 13), calendar, policy).step == "before-3"  # 10, 12, 13
    assert step_for(date(2026, 10, 8), date(2026, 10, 14), calendar, policy) is None  # 5 left: not a rung
    assert step_for(date(2026, 10, 12), date(2026, 10, 13), calendar, policy).step == "before-1"
    assert step_for(date(2026, 10, 13), date(2026, 10, 13), calendar, policy).step == "due"
    overdue = step_for(date(2026, 10, 14), date(2026, 10, 9), calendar, policy)
    assert overdue.step == "overdue-4" and overdue.levels == ("owner", "lead", "accountability")  # Sat 10th too
    assert step_for(date(2026, 10, 12), date(2026, 10, 9), calendar, policy).levels == ("owner", "lead")


def working_day_before(calendar, due: date, left: int) -> date:
    day = due
    while calendar.working_days_between(day, due) < left or not calendar.is_working_day(day):
        day -= timedelta(days=1)
    return day


def test_result_deadlines_digests_and_the_window(engine, settings, inspected):
    with Session(engine) as session:
        calendar = load_calendar(session)
    due = calendar.working_days_after(date(2026, 9, 29), 20).day
    three_before = working_day_before(calendar, due, 3)
    assert run(engine, settings, at(three_before, 8, 59)) == []  # before working hours
    sent = run(engine, settings, at(three_before, 9, 0))
    assert sent and all(d.items >= 1 for d in sent)
    assert run(engine, settings, at(three_before, 15)) == []  # the same rung is never sent twice
    with Session(engine) as session:
        deadlines = session.exec(select(Deadline).where(Deadline.kind == "result")).all()
        assert {d.due for d in deadlines} == {due} and not any(d.provisional for d in deadlines)
        steps = {r.step for r in session.exec(select(Reminder))}
    assert steps == {"before-3"}
    # one digest per person, naming every task they owe
    messages = digests(engine)
    assert len({m.recipient for m in messages}) == len(messages)
    assert all("【期限提醒】" in m.payload["message"]["text"] for m in messages)
    sunday = date(2026, 10, 11)
    assert run(engine, settings, at(sunday, 10)) == []  # no reminders on a day off


def test_escalation_to_the_lead_office_then_the_accountability_contact(engine, settings, inspected):
    with Session(engine) as session:
        calendar = load_calendar(session)
    due = calendar.working_days_after(date(2026, 9, 29), 20).day
    day, seen = due, {}
    for _ in range(6):
        day = calendar.next_working_day(day + timedelta(days=1)).day
        for digest in run(engine, settings, at(day, 10)):
            seen.setdefault(digest.destination.address, []).append(day)
    assert "lead-xy" in seen  # overdue one working day: the lead office hears of it
    assert {"contact-dc", "contact-xc"} & set(seen)  # three: the accountability contact of the owing unit
    first_lead, first_contact = seen["lead-xy"][0], min(seen.get("contact-dc", []) + seen.get("contact-xc", []))
    assert calendar.working_days_between(due, first_lead) == 1
    assert calendar.working_days_between(due, first_contact) == 3
    with Session(engine) as session:
        texts = [m.payload["message"]["text"] for m in digests(engine) if m.recipient == "lead-xy"]
    assert "抄送牵头科室" in texts[0]


def test_a_deadline_in_a_year_without_official_data_is_provisional(engine, settings, tmp_path, inspected):
    from storage.importing import import_file

    with transaction(engine) as session:
        for task in session.exec(select(Task).where(Task.batch_id == inspected)):
            task.inspected_on = date(2026, 12, 20)  # 20 working days later is in 2027
            session.add(task)
    sent = run(engine, settings, at(date(2026, 12, 21), 10))
    # every message queued is reported (SPEC §3): digests, and the admins' calendar notice
    assert [(d.destination.address, d.items) for d in sent if not d.items] == [("admin", 0)]
    with Session(engine) as session:
        deadlines = session.exec(select(Deadline).where(Deadline.kind == "result")).all()
    assert deadlines and all(d.provisional for d in deadlines)
    first = deadlines[0].due
    with Session(engine) as session:  # the admins are told, once for the year
        told = session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("calendar-missing:%"))).all()
    assert [(m.recipient, "2027" in m.payload["message"]["text"]) for m in told] == [("admin", True)]
    # the official arrangement for 2027 arrives: the deadline is recomputed and no longer 暂定
    holidays = tmp_path / "holidays-2027.csv"
    holidays.write_text("date,kind\n2027-01-01,holiday\n2027-01-04,holiday\n", encoding="utf-8")
    assert import_file(engine, "holidays", holidays, actor="test").ok
    run(engine, settings, at(date(2026, 12, 22), 10))
    with Session(engine) as session:
        after = session.exec(select(Deadline).where(Deadline.kind == "result")).all()
    assert not any(d.provisional for d in after) and after[0].due > first


@pytest.mark.pg
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_sweeping_processes_never_send_a_reminder_twice(engine, db_url, settings, inspected):
    with Session(engine) as session:
        calendar = load_calendar(session)
    due = calendar.working_days_after(date(2026, 9, 29), 20).day
    env = {**os.environ, "SHUANGSUI__DATABASE__URL": db_url, "SHUANGSUI__CONSOLE__ENABLED": "true",
           "SHUANGSUI__ROLES__ADMINS": '["console:admin"]',
           "SHUANGSUI__ROLES__UNITS": '{"S-DC":{"accountability":["contact-dc"]},"S-XC":{"accountability":'
                                      '["contact-xc"]},"U-XY":{"leads":["lead-xy"]}}'}
    shuangsui = str(Path(sys.executable).parent / "shuangsui")
    day = due
    for _ in range(5):
        day = calendar.next_working_day(day + timedelta(days=1)).day
        moment = datetime.combine(day, time(10, 0)).isoformat()
        processes = [subprocess.Popen([shuangsui, "reminders", "run", "--now", moment], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in processes]
        assert all(p.returncode == 0 for p in processes), outputs
    with Session(engine) as session:
        rows = session.exec(select(Reminder)).all()
        keys = [(r.deadline_id, r.recipient, r.step) for r in rows]
        assert len(keys) == len(set(keys)) and rows
        messages = digests(engine)
        assert len({m.idempotency_key for m in messages}) == len(messages)
        # every rung is in exactly one digest: the digests' items add up to the rungs
        assert sum(m.payload["message"]["text"].count("任务 ") for m in messages) >= len(rows)


def test_the_operators_view_snooze_and_acknowledge(engine, settings, inspected, tmp_path, capsys, monkeypatch):
    from bot import cli

    with Session(engine) as session:
        calendar = load_calendar(session)
    due = calendar.working_days_after(date(2026, 9, 29), 20).day
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{engine.url.render_as_string(hide_password=False)}"\n'
                      '[console]\nenabled = true\n[bureau]\ndefault_lead = "U-XY"\n'
                      '[roles]\nadmins = ["console:admin"]\n[roles.units.U-XY]\nleads = ["lead-xy"]\n',
                      encoding="utf-8")
    one_day_over = calendar.next_working_day(due + timedelta(days=1)).day
    assert cli.main(["-c", str(config), "reminders", "list", "--now", f"{due.isoformat()}T08:00"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 3 and all(f"截止 {due}" in line and "下次提醒" in line for line in listed)
    assert cli.main(["-c", str(config), "reminders", "run", "--now", f"{one_day_over.isoformat()}T10:00"]) == 0
    ran = capsys.readouterr().out.splitlines()
    assert any(line.startswith("console:lead-xy") for line in ran)  # escalated to the lead office
    with Session(engine) as session:
        deadline = session.exec(select(Deadline).where(Deadline.kind == "result")).first()
    # acknowledged: the lead office hears no more; snoozed: nobody, until the day given
    assert cli.main(["-c", str(config), "reminders", "ack", str(deadline.id), "--reason", "已约谈"]) == 0
    assert cli.main(["-c", str(config), "reminders", "ack", str(deadline.id), "--reason", "x",
                     "--as", "console:lead-xy"]) == 1  # only an admin decides
    nxt = calendar.next_working_day(one_day_over + timedelta(days=1)).day
    assert cli.main(["-c", str(config), "reminders", "snooze", str(deadline.id), "--until",
                     (nxt + timedelta(days=1)).isoformat(), "--reason", "延期已批准"]) == 0
    capsys.readouterr()
    assert cli.main(["-c", str(config), "reminders", "run", "--now", f"{nxt.isoformat()}T10:00"]) == 0
    with Session(engine) as session:
        later = session.exec(select(Reminder).where(Reminder.deadline_id == deadline.id)).all()
        actions = [e.action for e in session.exec(select(AuditEntry))]
    assert all(r.step != f"overdue-{calendar.working_days_between(due, nxt)}" for r in later)
    assert "deadline.acknowledged" in actions and "deadline.snoozed" in actions and "refused" in actions


def test_plan_dates_of_art_11(engine, tmp_path):
    """Reported by the end of January, filed by the end of February, re-filed within 10
    working days of an adjustment — reminders to the planning office's leads."""
    from bot.plans import import_plans, record_filing

    seed_district(engine, tmp_path)
    settings = Settings(console={"enabled": True}, security={"keys": [new_key()]}, bureau={"default_lead": "U-XY"},
                        roles={"admins": ["console:admin"], "units": {"U-XY": {"leads": ["lead-xy"]}}})
    path = tmp_path / "plans.csv"
    path.write_text(PLANS, encoding="utf-8")
    assert import_plans(engine, path, actor="test", reason=None, today=date(2026, 1, 5)).ok
    # 2026-01-31 is a Saturday: Jan 27 is three working days before (28, 29, 30 … and the 31st itself is not)
    sent = run(engine, settings, at(date(2026, 1, 27)))
    with Session(engine) as session:
        kinds = {d.kind for d in session.exec(select(Deadline))}
        plan_id = session.exec(select(Deadline).where(Deadline.kind == "plan_report")).first().subject
    assert {"plan_report", "plan_filing"} <= kinds
    assert [(d.destination.address, d.items) for d in sent] == [("lead-xy", 1)]  # the filing is not due yet
    with transaction(engine) as session:
        record_filing(session, "test", int(plan_id.split(":")[1]), "reported", date(2026, 1, 28))
    run(engine, settings, at(date(2026, 1, 29)))
    with Session(engine) as session:
        report = session.exec(select(Deadline).where(Deadline.kind == "plan_report")).first()
    assert report.status == "met"
    # an adjustment: re-filed within 10 working days
    path.write_text(PLANS.replace(",10,1,", ",12.5,2,"), encoding="utf-8")
    assert import_plans(engine, path, actor="test", reason="调整比例", today=date(2026, 3, 2)).ok
    run(engine, settings, at(date(2026, 3, 3)))
    with Session(engine) as session:
        refile = session.exec(select(Deadline).where(Deadline.kind == "plan_refiling")).first()
        calendar = load_calendar(session)
    assert refile.due == calendar.working_days_after(date(2026, 3, 2), 10).day
