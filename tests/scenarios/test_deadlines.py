"""The ``inspection`` and ``approval`` deadlines by content — who is reminded, of which
task, by which date, told to do what — and art. 20's 20-day line: an approval deadline
never later than the 20th working day after the inspection, and the lead office told
once when a result passes that line unpublished."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from bot.batches import commands
from bot.batches.confirmation import confirm
from bot.batches.inspection import mark_inspected, team_of
from bot.batches.results import Entry, return_result, submit
from bot.chat.identity import ADMIN, Identity
from bot.reminders.deadlines import OpenTask, deadlines_for
from bot.reminders.sweep import PAST_LINE, sweep
from bot.roles import Actor
from bot.settings import Settings
from storage.calendar import calendar_from_rows, load_calendar
from storage.db import transaction
from storage.models import Deadline, InspectionObject, Inspector, OutboxMessage, Reminder, Result, Task
from storage.sealing import new_key
from tests.support.batch_district import seed_district

TZ = ZoneInfo("Asia/Shanghai")
ROLES = {"admins": ["console:admin"],
         "units": {"S-DC": {"approvers": ["approver-dc"], "accountability": ["contact-dc"]},
                   "S-XC": {"approvers": ["approver-xc"], "accountability": ["contact-xc"]},
                   "U-XY": {"leads": ["lead-xy"]}}}
INSPECTED = date(2026, 9, 29)
DRAWN = datetime.combine(date(2026, 9, 25), time(10), TZ).astimezone(UTC)


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), TZ).astimezone(UTC)


@pytest.fixture
def settings():
    return Settings(console={"enabled": True}, roles=ROLES, security={"keys": [new_key()]},
                    bureau={"default_lead": "U-XY"})


@pytest.fixture
def accepted(engine, tmp_path, settings) -> list[int]:
    """A batch drawn on 2026-09-25, due 2026-10-16, every member confirmed: its task ids."""
    seed_district(engine, tmp_path)
    with transaction(engine) as session:
        batch = commands.run(session, settings, "admin", "new",
                             "名称=期限抽查 事项=A01 数量=3 方式=交叉随机 截止=2026-10-16", DRAWN).batch_id
    for action in ("publish", "draw"):
        with transaction(engine) as session:
            commands.run(session, settings, "admin", action, f"批次={batch}", DRAWN)
    with transaction(engine) as session:
        tasks = session.exec(select(Task).where(Task.batch_id == batch).order_by(Task.id)).all()
        for task in tasks:
            for a in team_of(session, task.id):
                confirm(session, "t", task.id, a.inspector_id, DRAWN)
        return [t.id for t in tasks]


def inspect(engine, task_ids: list[int], on: date = INSPECTED) -> None:
    with transaction(engine) as session:
        for task_id in task_ids:
            lead = team_of(session, task_id)[0].inspector_id
            mark_inspected(session, "t", task_id, lead, on, on, at(on))


def submit_on(engine, task_id: int, day: date) -> None:
    with transaction(engine) as session:
        lead = team_of(session, task_id)[0].inspector_id
        submit(session, "t", task_id, lead, Entry(1, "未发现问题", True), at(day))


def texts_to(engine, address: str) -> list[str]:
    with Session(engine) as session:
        return [m.payload["message"]["text"] for m in session.exec(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.like("reminders:%"),
                                        OutboxMessage.recipient == address).order_by(OutboxMessage.id))]


def deadline(engine, kind: str, task_id: int) -> Deadline:
    with Session(engine) as session:
        return session.exec(select(Deadline).where(Deadline.kind == kind, Deadline.task_id == task_id)).one()


def test_the_inspection_deadline_reminds_every_member_of_the_batch_due_date(engine, settings, accepted):
    with Session(engine) as session:
        teams = {t: [a.inspector_id for a in team_of(session, t)] for t in accepted}
        names = {t: session.get(InspectionObject, session.get(Task, t).object_id).name for t in accepted}
    # Oct 16 is a Friday; three working days before: Oct 13 (14, 15, 16 left)
    sent = sweep(engine, settings, at(date(2026, 10, 13)))
    members = {i for team in teams.values() for i in team}
    assert {d.destination.address for d in sent} == members  # the inspectors, nobody else
    for task_id, team in teams.items():
        row = deadline(engine, "inspection", task_id)
        assert row.due == date(2026, 10, 16) and sorted(row.owed_by) == sorted(f"inspector:{i}" for i in team)
        for member in team:
            text = "\n".join(texts_to(engine, member))
            entry = f"【期限 {row.id}】任务 {task_id}（{names[task_id]}）：开展检查，截止 2026-10-16，还剩 3 个工作日"
            assert entry in text
            assert f"检查完成后发送：完成 任务={task_id}" in text
    assert sweep(engine, settings, at(date(2026, 10, 13), 15)) == []  # the rung once
    # a task inspected is no longer owed: its inspection deadline is met, a result one opens
    inspect(engine, accepted[:1], date(2026, 10, 14))
    sweep(engine, settings, at(date(2026, 10, 15)))
    assert deadline(engine, "inspection", accepted[0]).status == "met"
    assert deadline(engine, "result", accepted[0]).status == "open"
    # overdue: the lead office hears of the other two on the first working day after
    sweep(engine, settings, at(date(2026, 10, 19)))
    lead = "\n".join(texts_to(engine, "lead-xy"))
    assert f"任务 {accepted[1]}" in lead and f"任务 {accepted[0]}" not in lead
    assert "已逾期 1 个工作日（逾期事项，抄送牵头科室）" in lead and "暂停提醒 期限=" in lead


def test_the_approval_deadline_reminds_the_approvers_of_the_lead_inspectors_unit(engine, settings, accepted):
    inspect(engine, accepted)
    submit_on(engine, accepted[0], date(2026, 10, 8))
    with Session(engine) as session:
        calendar = load_calendar(session)
        # the lead inspector's (主办) unit decides
        approver_unit = session.get(Inspector, team_of(session, accepted[0])[0].inspector_id).unit_id
    due = calendar.working_days_after(date(2026, 10, 8), settings.reminders.approval_days).day
    assert due == date(2026, 10, 14)  # Oct 9, the make-up Saturday 10, 12, 13, 14
    sweep(engine, settings, at(date(2026, 10, 10)))  # the make-up Saturday: 12, 13, 14 left
    row = deadline(engine, "approval", accepted[0])
    assert row.due == due and row.owed_by == [f"approvers:{approver_unit}"]
    approver = {"S-DC": "approver-dc", "S-XC": "approver-xc"}[approver_unit]
    text = "\n".join(texts_to(engine, approver))
    assert f"【期限 {row.id}】任务 {accepted[0]}" in text and f"审批检查结果，截止 {due}，还剩 3 个工作日" in text
    assert f"发送：批准 任务={accepted[0]}（或 退回 任务={accepted[0]} 原因=…）" in text
    other = {"approver-dc", "approver-xc"} - {approver}
    assert not any("审批检查结果" in t and f"任务 {accepted[0]}" in t for a in other for t in texts_to(engine, a))


def test_a_late_submission_is_due_for_approval_by_the_20th_working_day(engine, settings, accepted):
    """Art. 20: entered, approved and published within 20 working days of the inspection."""
    inspect(engine, accepted)
    with Session(engine) as session:
        calendar = load_calendar(session)
    line = calendar.working_days_after(INSPECTED, 20).day
    two_before = calendar.working_days_after(INSPECTED, 18).day
    submit_on(engine, accepted[0], two_before)  # on time: 5 working days would run past the line
    sweep(engine, settings, at(two_before, 11))
    assert deadline(engine, "approval", accepted[0]).due == line
    assert calendar.working_days_after(two_before, settings.reminders.approval_days).day > line
    early = calendar.working_days_after(INSPECTED, 2).day
    submit_on(engine, accepted[1], early)  # early: the approval days fall well inside the line
    sweep(engine, settings, at(early, 11))
    assert deadline(engine, "approval", accepted[1]).due == calendar.working_days_after(early, 5).day


def test_the_pure_rule_caps_the_approval_deadline():
    calendar = calendar_from_rows([])
    line = calendar.working_days_after(INSPECTED, 20).day
    late = OpenTask(1, "B", "submitted", date(2026, 12, 31), INSPECTED, line + timedelta(days=7), ("I01",), "S-DC")
    lines: dict[int, date] = {}
    found = deadlines_for([late], calendar, 5, lines)
    assert found[("approval", "task:1")]["due"] == line and lines == {1: line}
    fresh = OpenTask(2, "B", "submitted", date(2026, 12, 31), INSPECTED, INSPECTED, ("I01",), "S-DC")
    assert deadlines_for([fresh], calendar, 5)[("approval", "task:2")]["due"] == calendar.working_days_after(
        INSPECTED, 5).day


def test_the_lead_office_is_told_once_when_a_result_passes_the_line_unpublished(engine, settings, accepted):
    inspect(engine, accepted)
    with Session(engine) as session:
        calendar = load_calendar(session)
        objects = {t: session.get(InspectionObject, session.get(Task, t).object_id).name for t in accepted}
    line = calendar.working_days_after(INSPECTED, 20).day
    after = calendar.next_working_day(line + timedelta(days=1)).day
    submit_on(engine, accepted[0], after)  # submitted a day late: due for approval by the line, already past
    assert deadline_after_sweep(engine, settings, at(line, 11), "result", accepted[1]).due == line
    assert not [t for t in texts_to(engine, "lead-xy") if "已满 20 个工作日" in t]  # not on the day itself
    sweep(engine, settings, at(after, 10))
    assert deadline(engine, "approval", accepted[0]).due == line  # capped, not 5 days after submission
    told = [t for t in texts_to(engine, "lead-xy") if "已满 20 个工作日" in t]
    assert len(told) == 1  # one digest, naming all three tasks
    for task_id in accepted:
        assert f"任务 {task_id}（{objects[task_id]}）：检查后已满 20 个工作日（{line}）仍未公示检查结果" in told[0]
    assert "细则第二十条" in told[0] and "（告知牵头科室）" in told[0]
    # never again: later that day, the next days, nor when a returned result changes the deadline's kind
    sweep(engine, settings, at(after, 15))
    with transaction(engine) as session:
        result = session.exec(select(Result).where(Result.task_id == accepted[0])).one()
        return_result(session, Identity(Actor("console", "admin"), frozenset({ADMIN})), result.id, "补充说明",
                      at(after, 16))
    for _ in range(3):
        after = calendar.next_working_day(after + timedelta(days=1)).day
        sweep(engine, settings, at(after, 10))
    assert len([t for t in texts_to(engine, "lead-xy") if "已满 20 个工作日" in t]) == 1
    with Session(engine) as session:
        rungs = session.exec(select(Reminder).where(Reminder.step == PAST_LINE)).all()
    assert len(rungs) == 3 and {r.recipient for r in rungs} == {"console:lead-xy"}


def deadline_after_sweep(engine, settings, moment, kind, task_id) -> Deadline:
    sweep(engine, settings, moment)
    return deadline(engine, kind, task_id)


def test_a_line_passed_long_ago_is_left_to_the_ladder(engine, settings, accepted):
    """The notice is news of the day (caught up within ``PAST_LINE_WINDOW`` days): a result
    past its line for weeks is escalated by the ladder, not announced as new."""
    from bot.reminders.sweep import PAST_LINE_WINDOW

    inspect(engine, accepted)
    with Session(engine) as session:
        calendar = load_calendar(session)
    line = calendar.working_days_after(INSPECTED, 20).day
    late = calendar.next_working_day(line + timedelta(days=PAST_LINE_WINDOW + 1)).day
    sweep(engine, settings, at(late))
    lead = "\n".join(texts_to(engine, "lead-xy"))
    assert "抄送牵头科室" in lead and "已满 20 个工作日" not in lead
