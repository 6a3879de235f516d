"""The first sweep's fast paths (issue 20, item 5) store and send exactly what the work
calls for: new deadlines through the bulk insert with their ids counted rather than read
back (read back when a sequence skipped), SQLite's page cache enlarged while they are
written and set back after, digests rendered from attribute records as from dicts. And
the marks that pile up while nobody sweeps (outside working hours) are pruned to one
``all`` without losing a change, even while a sweep reads."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from bot.batches.inspection import team_of
from bot.batches.results import Entry, submit
from bot.reminders import deadlines
from bot.reminders import sweep as sweeping
from bot.reminders.sweep import sweep
from bot.rules.deadlines import ACCOUNTABILITY, LEAD, OWNER, Step
from bot.texts import say
from storage import deadline_marks
from storage.calendar import load_calendar
from storage.db import transaction
from storage.deadline_marks import ALL
from storage.models import Deadline, DeadlineMark, OutboxMessage, Reminder, Task, table_of
from tests.support.reminders import at, inspected_batch, reminder_settings

PAST_THE_LINE = date(2026, 11, 3)  # the batch's results (inspected 2026-09-29) passed art. 20's line
FIELDS = ("task_id", "batch_id", "unit_id", "owed_by", "due", "provisional", "line_on")


def stands_as_the_work_calls_for(engine, settings, wanted_before) -> None:
    """Every deadline stored as wanted, open, neither snoozed nor acknowledged; every rung's
    digest names its own deadline (the id counted is the id stored) and that deadline's task;
    nothing sent twice; a full recompute finds nothing to do."""
    with Session(engine) as session:
        stored = session.exec(select(Deadline)).all()
        rungs = session.exec(select(Reminder)).all()
        digests = session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("reminders:%"))).all()
    assert {(d.kind, d.subject): {f: getattr(d, f) for f in FIELDS} for d in stored} == {
        key: {f: values.get(f) for f in FIELDS} for key, values in wanted_before.items()}
    assert all(d.status == "open" and d.snoozed_until is None and not d.escalation_acknowledged for d in stored)
    by_id = {d.id: d for d in stored}
    texts: dict[str, list[str]] = {}
    for message in digests:
        texts.setdefault(f"{message.platform}:{message.recipient}", []).append(message.payload["message"]["text"])
    assert rungs
    for rung in rungs:
        deadline = by_id[rung.deadline_id]
        named = [t for t in texts[rung.recipient] if f"【期限 {rung.deadline_id}】任务 {deadline.task_id}（" in t]
        assert len(named) == 1, (rung.recipient, rung.deadline_id)
    assert sum(t.count("【期限 ") for ts in texts.values() for t in ts) == len(rungs)
    assert len({(r.deadline_id, r.recipient, r.step) for r in rungs}) == len(rungs)
    assert sweep(engine, settings, at(PAST_THE_LINE, 11), full=True) == []


def wanted_now(engine, settings) -> dict:
    with Session(engine) as session:
        return deadlines.wanted(session, settings, load_calendar(session))


@pytest.mark.parametrize("ids", ["counted", "read"])
def test_the_first_sweep_stores_and_sends_what_the_work_calls_for(engine, tmp_path, monkeypatch, ids):
    settings = reminder_settings()
    inspected_batch(engine, tmp_path, settings)
    monkeypatch.setattr(sweeping, "ROOMY_ROWS", 1)  # the enlarged page cache, for these few rows too
    if ids == "read":
        monkeypatch.setattr(deadlines, "_numbered_in_order", lambda *args: False)
    wanted_before = wanted_now(engine, settings)
    digests = sweep(engine, settings, at(PAST_THE_LINE))
    assert "lead-xy" in {d.destination.address for d in digests}  # the lead office told too (overdue, art. 20)
    stands_as_the_work_calls_for(engine, settings, wanted_before)


def test_ids_are_read_back_when_the_sequence_skipped(engine, tmp_path, monkeypatch):
    """A sweep rolled back after storing deadlines leaves PostgreSQL's sequence ahead of the
    table: the next sweep's ids do not follow the last one, so they are read back (SQLite
    numbers past the last row again: counted)."""
    settings = reminder_settings()
    inspected_batch(engine, tmp_path, settings)
    with pytest.raises(RuntimeError), transaction(engine) as session:
        session.execute(table_of(Deadline).insert(), [
            {"kind": "inspection", "subject": f"task:{n}", "owed_by": [], "due": date(2026, 1, 1),
             "provisional": False, "status": "met"} for n in range(900_000, 900_005)])
        raise RuntimeError("the sweep fails before it commits")
    counted: list[bool] = []
    numbered = deadlines._numbered_in_order

    def spied(*args):
        counted.append(numbered(*args))
        return counted[-1]
    monkeypatch.setattr(deadlines, "_numbered_in_order", spied)
    wanted_before = wanted_now(engine, settings)
    sweep(engine, settings, at(PAST_THE_LINE))
    assert counted == [engine.dialect.name == "sqlite"]
    stands_as_the_work_calls_for(engine, settings, wanted_before)


def test_sqlite_page_cache_is_enlarged_while_the_deadlines_are_written_then_set_back(engine, tmp_path, monkeypatch):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's page cache")
    settings = reminder_settings()
    inspected_batch(engine, tmp_path, settings)
    seen: list = []
    apply = sweeping.apply

    def spied(session, changes):
        connection = session.connection()
        seen.append((connection.connection.dbapi_connection, connection.exec_driver_sql("PRAGMA cache_size").scalar()))
        return apply(session, changes)
    monkeypatch.setattr(sweeping, "apply", spied)
    monkeypatch.setattr(sweeping, "ROOMY_ROWS", 1)
    sweep(engine, settings, at(PAST_THE_LINE))
    (dbapi, during), = seen
    assert during == -sweeping.ROOMY_CACHE_KIB
    assert dbapi.execute("PRAGMA cache_size").fetchone()[0] == -2000  # SQLite's default, as before


def test_a_digest_renders_from_records_as_from_dicts():
    """The sweep hands the digest template attribute records (``_Entry``/``_Shown``): the
    text is the one the same entries give as dicts, and the one the template gave before —
    a task's and a plan's deadline, every level, the art. 20 notice beside the same
    deadline's overdue rung, a provisional date, days left and due today."""
    task = {"id": 7, "task_id": 12, "subject": "task:12", "kind": "result", "due": date(2026, 11, 2),
            "provisional": False}
    late = {**task, "line": date(2026, 11, 2)}
    plan = {"id": 8, "task_id": None, "subject": "plan:P-2027", "kind": "plan_report", "due": date(2027, 1, 29),
            "provisional": True}
    overdue, past = Step("overdue-3", (OWNER, LEAD, ACCOUNTABILITY), -3), Step("past-20-days", (LEAD,), -1)
    before = Step("before-3", (OWNER,), 3)
    obj = sweeping._Named("某某有限公司")
    entries = [(task, overdue, level, obj) for level in (OWNER, LEAD, ACCOUNTABILITY)]
    entries += [(late, past, LEAD, obj), (plan, before, OWNER, None), (plan, Step("due", (OWNER,), 0), OWNER, None)]
    as_dicts = say("reminders", "digest", today=date(2026, 11, 5),
                   entries=[dict(deadline=d, step=s, level=level, obj=o) for d, s, level, o in entries])
    shown: dict = {}
    as_records = say("reminders", "digest", today=date(2026, 11, 5),
                     entries=[sweeping._Entry(sweeping._shown(d, shown), s, level, o) for d, s, level, o in entries])
    assert as_records == as_dicts == DIGEST  # word for word what the template gave before


DIGEST = (  # rendered by templates/reminders.j2 as of 57d89b6, before its loop read each entry once
    "【期限提醒】2026-11-05，您有 6 项事项需要关注：\n"
    "1. 【期限 7】任务 12（某某有限公司）：录入并公示检查结果，截止 2026-11-02，已逾期 3 个工作日\n"
    "发送：结果 任务=12 类别=… 签字=…\n"
    "2. 【期限 7】任务 12（某某有限公司）：录入并公示检查结果，截止 2026-11-02，已逾期 3 个工作日"
    "（逾期事项，抄送牵头科室）\n"
    "请督促承办人员办理（细则第二十五条：不执行或者拖延执行抽查任务的，应当承担行政责任）。\n"
    "3. 【期限 7】任务 12（某某有限公司）：录入并公示检查结果，截止 2026-11-02，已逾期 3 个工作日"
    "（逾期事项，报问责联系人）\n"
    "请督促承办人员办理（细则第二十五条：不执行或者拖延执行抽查任务的，应当承担行政责任）。\n"
    "4. 【期限 7】任务 12（某某有限公司）：检查后已满 20 个工作日（2026-11-02）仍未公示检查结果，"
    "超过细则第二十条的时限（录入并公示检查结果，截止 2026-11-02）（告知牵头科室）\n"
    "请督促承办人员办理（细则第二十五条：不执行或者拖延执行抽查任务的，应当承担行政责任）。\n"
    "5. 【期限 8】计划 P-2027：报送年度抽查工作计划（1月底前），截止 2027-01-29（暂定），还剩 3 个工作日\n"
    "报送后发送：计划报送 计划=P-2027 状态=reported\n"
    "6. 【期限 8】计划 P-2027：报送年度抽查工作计划（1月底前），截止 2027-01-29（暂定），今天到期\n"
    "报送后发送：计划报送 计划=P-2027 状态=reported\n"
    "管理员可暂停提醒：暂停提醒 期限=编号 至=YYYY-MM-DD 原因=…，或确认知悉：知悉 期限=编号 原因=…"
    "（之后只提醒承办人）。\n"
    "标注“暂定”的期限按尚未公布正式安排的年度暂定计算，正式安排导入后会重新计算。")


def marks(engine) -> list[str]:
    with Session(engine) as session:
        return [m.subject for m in session.exec(select(DeadlineMark).order_by(DeadlineMark.id))]


def test_marks_piled_up_outside_working_hours_become_one_all(engine, tmp_path, monkeypatch):
    """Nobody sweeps at night: the marks written meanwhile are pruned to one ``all`` past
    ``PRUNE_OVER`` (not below it, and never in working hours: the sweep reads them then);
    the morning's tick recomputes everything and stands where a full recompute would."""
    settings = reminder_settings()
    batch = inspected_batch(engine, tmp_path, settings)
    sweep(engine, settings, at(date(2026, 10, 9)))  # the deadlines stored
    monkeypatch.setattr(deadline_marks, "PRUNE_OVER", 3)
    night = at(date(2026, 10, 9), 22)
    with transaction(engine) as session:
        deadline_marks.mark(session, ["task:1", "task:2"])
    assert sweep(engine, settings, night) == [] and marks(engine) == ["task:1", "task:2"]  # not over: kept
    with transaction(engine) as session:  # the evening's work: results submitted (marks through the ORM)
        tasks = session.exec(select(Task).where(Task.batch_id == batch)).all()
        for task in tasks:
            submit(session, "t", task.id, team_of(session, task.id)[0].inspector_id,
                   Entry(1, "未发现问题", True), night)
    assert len(marks(engine)) > 3
    assert sweep(engine, settings, night) == [] and marks(engine) == [ALL]
    paths: list[str] = []
    full = sweeping.compare

    def spied(*args, **kwargs):
        paths.append("full")
        return full(*args, **kwargs)
    monkeypatch.setattr(sweeping, "compare", spied)
    morning = at(date(2026, 10, 12))
    sweep(engine, settings, morning)
    assert paths == ["full"] and marks(engine) == []
    with Session(engine) as session:
        assert {d.kind for d in session.exec(select(Deadline).where(Deadline.status == "open"))} == {"approval"}
    assert sweep(engine, settings, morning, full=True) == []


def test_a_prune_while_a_sweep_reads_loses_no_change(engine, tmp_path, monkeypatch):
    """A sweep reads the marks; meanwhile a change is committed and the marks are pruned.
    The sweep deletes only what it read: the ``all`` stays, and the next tick takes the
    change in (as a full recompute of the same instant would)."""
    settings = reminder_settings()
    batch = inspected_batch(engine, tmp_path, settings)
    sweep(engine, settings, at(date(2026, 10, 9)))
    with transaction(engine) as session:
        deadline_marks.mark(session, ["task:1"])
    moment = at(date(2026, 10, 9), 11)
    some = sweeping.compare_some
    done: list[bool] = []

    def reading(*args, **kwargs):
        changes = some(*args, **kwargs)
        if not done:
            with transaction(engine) as session:  # another process: a result submitted, marks pruned
                task = session.exec(select(Task).where(Task.batch_id == batch).order_by(Task.id)).first()
                submit(session, "t", task.id, team_of(session, task.id)[0].inspector_id,
                       Entry(1, "未发现问题", True), moment)
                done.append(deadline_marks.prune(session, over=0))
        return changes
    monkeypatch.setattr(sweeping, "compare_some", reading)
    sweep(engine, settings, moment)
    assert done == [True] and marks(engine) == [ALL]
    monkeypatch.setattr(sweeping, "compare_some", some)
    sweep(engine, settings, at(date(2026, 10, 9), 12))
    assert marks(engine) == []
    with Session(engine) as session:
        kinds = sorted(d.kind for d in session.exec(select(Deadline).where(Deadline.status == "open")))
    assert kinds == ["approval", "result", "result"]
    assert sweep(engine, settings, at(date(2026, 10, 9), 12), full=True) == []


def test_the_rungs_in_a_digest_are_its_entries(engine, tmp_path):
    """The bench's check, at test size: each rung stored is named once, in its person's digest."""
    settings = reminder_settings()
    inspected_batch(engine, tmp_path, settings)
    sweep(engine, settings, at(PAST_THE_LINE))
    with Session(engine) as session:
        count = session.execute(text("SELECT count(*) FROM reminders")).scalar()
        texts = [m.payload["message"]["text"] for m in session.exec(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.like("reminders:%")))]
    assert count == sum(len(re.findall(r"^\d+\. 【期限 ", t, re.M)) for t in texts)
