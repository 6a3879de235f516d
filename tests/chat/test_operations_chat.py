"""The bureau's duties in chat (SPEC §5, issue 18 §4) on WeCom, DingTalk (HTTP and
Stream) and the console: 计划报送 by the planning office, 暂停提醒 and 知悉 by admins on the
deadline ids the digests name, 汇总 for supervisors, lead offices and admins — each the
CLI's use case, role-checked before its arguments, idempotent and audited."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from bot.app import SETTINGS, create_app
from bot.batches import commands
from bot.clock import bureau_today
from bot.clock import now as clock_now
from bot.plans import import_plans
from bot.reports.chart import cjk_font
from bot.settings import Settings
from storage.db import transaction
from storage.models import AnnualPlan, AuditEntry, Deadline, OutboxMessage
from storage.sealing import new_key
from tests.support.batch_district import PLANS, seed_district
from tests.support.console_bot import CONSOLE_TOKEN as TOKEN
from tests.support.console_bot import console_say as say
from tests.support.wecom_bot import ADMIN, APPROVER, INSPECTOR_IDS, LEAD

INSPECTOR = INSPECTOR_IDS["I01"]


def plan_of(engine, tmp_path) -> int:
    path = tmp_path / "plans.csv"
    path.write_text(PLANS, encoding="utf-8")
    assert import_plans(engine, path, actor="test", reason=None, today=date(2026, 1, 5)).ok
    with Session(engine) as session:
        return session.exec(select(AnnualPlan)).one().id


def a_deadline(engine, plan_id: int) -> int:
    """An open deadline of the plan (as a sweep stores it)."""
    with transaction(engine) as session:
        row = Deadline(kind="plan_filing", subject=f"plan:{plan_id}", unit_id="U-XY", owed_by=["leads:U-XY"],
                       due=date(2027, 2, 28))
        session.add(row)
        session.flush()
        return row.id


def audit_actions(engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(e.action, e.subject) for e in session.exec(select(AuditEntry).order_by(AuditEntry.seq))]


async def test_plan_dates_recorded_by_the_planning_office(walk, engine, tmp_path):
    plan_id = await asyncio.to_thread(plan_of, engine, tmp_path)
    refused = await walk.say(APPROVER, f"计划报送 计划={plan_id} 状态=reported")  # roles before arguments
    assert "需要牵头科室负责人的身份" in refused and "已记录：" not in refused
    answer = await walk.say(LEAD, f"计划报送 计划={plan_id} 状态=reported 日期=2026-01-20")
    assert f"已记录：计划 {plan_id}「餐饮企业年度抽查」已报送，日期 2026-01-20" in answer
    again = await walk.say(LEAD, f"计划报送 计划={plan_id} 状态=reported 日期=2026-01-20")
    assert "此前已记录，未作改动" in again
    answer = await walk.say(ADMIN, f"plan_record plan={plan_id} status=filed")  # alias, English keys, today
    today = bureau_today()
    assert f"已备案，日期 {today}" in answer
    with Session(engine) as session:
        plan = session.get(AnnualPlan, plan_id)
    assert (plan.reported_on, plan.filed_on) == (date(2026, 1, 20), today)
    assert "状态「done」无效" in await walk.say(LEAD, f"计划报送 计划={plan_id} 状态=done")
    assert "没有待重新备案的调整" in await walk.say(LEAD, f"计划报送 计划={plan_id} 状态=refiled")
    future = (today + timedelta(days=3)).isoformat()
    assert "请写已经发生的日期" in await walk.say(LEAD, f"计划报送 计划={plan_id} 状态=filed 日期={future}")
    assert "缺少参数 状态=" in await walk.say(LEAD, f"计划报送 计划={plan_id}")
    actions = audit_actions(engine)
    assert actions.count(("plan.reported", str(plan_id))) == 1 and ("plan.filed", str(plan_id)) in actions


async def test_admins_snooze_and_acknowledge_a_deadline_by_its_id(walk, engine, tmp_path):
    plan_id = await asyncio.to_thread(plan_of, engine, tmp_path)
    deadline_id = await asyncio.to_thread(a_deadline, engine, plan_id)
    until = (bureau_today() + timedelta(days=10)).isoformat()
    refused = await walk.say(LEAD, f"暂停提醒 期限={deadline_id} 至={until} 原因=x")
    assert "「暂停提醒」需要" in refused and "已暂停期限" not in refused
    answer = await walk.say(ADMIN, f"暂停提醒 期限={deadline_id} 至={until} 原因=延期已批准")
    assert f"已暂停期限 {deadline_id}：计划 {plan_id}「年度抽查工作计划备案（2月底前）」" in answer
    assert f"{until} 前不再提醒任何人" in answer
    assert "此前已暂停提醒" in await walk.say(ADMIN, f"snooze deadline={deadline_id} until={until} reason=again")
    assert "原因=" in await walk.say(ADMIN, f"暂停提醒 期限={deadline_id} 至={until}")  # the reason is required
    assert "不在今天之后" in await walk.say(ADMIN, f"暂停提醒 期限={deadline_id} 至=2026-01-01 原因=x")
    assert "没有编号为 999 的未办结期限" in await walk.say(ADMIN, "暂停提醒 期限=999 至=2099-01-01 原因=x")
    assert "「知悉」需要" in await walk.say(INSPECTOR, f"知悉 期限={deadline_id} 原因=x")  # not an admin
    answer = await walk.say(ADMIN, f"知悉 期限={deadline_id} 原因=已约谈承办人")
    assert f"已确认知悉期限 {deadline_id}" in answer and "只提醒承办人" in answer
    assert "此前已确认知悉" in await walk.say(ADMIN, f"ack deadline={deadline_id} reason=again")
    with Session(engine) as session:
        row = session.get(Deadline, deadline_id)
        entries = session.exec(select(AuditEntry).where(AuditEntry.action.like("deadline.%"))).all()
    assert row.snoozed_until.isoformat() == until and row.escalation_acknowledged
    assert [(e.action, e.detail["reason"]) for e in entries] == [("deadline.snoozed", "延期已批准"),
                                                                   ("deadline.acknowledged", "已约谈承办人")]


def drawn_batch(engine, settings) -> str:
    now = clock_now()
    due = (bureau_today() + timedelta(days=60)).isoformat()
    with transaction(engine) as session:
        batch = commands.run(session, settings, "admin", "new",
                             f"名称=汇总演示 事项=A01 数量=2 方式=交叉随机 截止={due}", now).batch_id
    for action in ("publish", "draw"):
        with transaction(engine) as session:
            commands.run(session, settings, "admin", action, f"批次={batch}", now)
    return batch


async def test_a_summary_now_for_lead_offices_and_admins(walk, engine):
    batch = await asyncio.to_thread(drawn_batch, engine, walk.app[SETTINGS])
    await walk.quiet()
    refused = await walk.say(APPROVER, "汇总")
    assert "「汇总」需要" in refused and "日报" not in refused
    daily = await walk.say(LEAD, "汇总")
    assert f"双随机抽查日报（{bureau_today()}）" in daily and f"{batch}「汇总演示」2 项" in daily
    weekly = await walk.say(ADMIN, "summary 周报")
    assert "双随机抽查周报（" in weekly
    assert "不是汇总的种类" in await walk.say(LEAD, "汇总 月报")
    with Session(engine) as session:
        charts = session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("%summary-chart"))).all()
        asked = session.exec(select(AuditEntry).where(AuditEntry.action == "summary.requested")).all()
    assert [(e.subject, e.actor.endswith(LEAD)) for e in asked] == [("daily", True), ("weekly", False)]
    # the chart goes to the asker in private, where a CJK font exists; never to anyone else
    assert len(charts) == (2 if cjk_font() else 0)
    assert {m.recipient for m in charts} <= {LEAD, ADMIN} and all(m.status == "sent" for m in charts)


ROLES = {"admins": ["console:admin"], "supervisors": ["console:boss"],
         "units": {"U-XY": {"leads": ["console:lead-xy"]}, "S-DC": {"leads": ["console:lead-dc"],
                                                                   "approvers": ["console:approver"]}}}


@pytest.fixture
async def console(engine, tmp_path, aiohttp_client):
    seed_district(engine, tmp_path)
    settings = Settings(console={"enabled": True}, roles=ROLES, security={"keys": [new_key()]},
                        bureau={"default_lead": "U-XY"})
    client = await aiohttp_client(create_app(settings, engine, ticker=False, console_token=TOKEN))
    assert (await client.get(f"/console/?token={TOKEN}")).status == 200
    return client


async def test_on_the_console_supervisors_ask_and_only_the_planning_office_records(console, engine, tmp_path):
    plan_id = await asyncio.to_thread(plan_of, engine, tmp_path)
    assert "双随机抽查周报" in await say(console, engine, "boss", "汇总 周报")
    assert "双随机抽查日报" in await say(console, engine, "admin", "汇总", chat="group")
    other = await say(console, engine, "lead-dc", f"计划报送 计划={plan_id} 状态=reported")
    assert "属于 U-XY" in other and "此次尝试已记录" in other
    assert "「计划报送」需要" in await say(console, engine, "boss", f"计划报送 计划={plan_id} 状态=reported")
    assert "已报送" in await say(console, engine, "lead-xy", f"计划报送 计划={plan_id} 状态=reported")
    with Session(engine) as session:
        refused = session.exec(select(AuditEntry).where(AuditEntry.action == "refused")).all()
    assert any(e.detail.get("reason") == "not_planning_office" for e in refused)
    assert any(e.detail.get("reason") == "role" for e in refused)  # the supervisor, no planning role


async def test_help_lists_the_new_commands_for_the_roles_that_may_use_them(walk, engine):
    lead, admin = await walk.say(LEAD, "帮助"), await walk.say(ADMIN, "帮助")
    inspector, approver = await walk.say(INSPECTOR, "帮助"), await walk.say(APPROVER, "帮助")
    for name in ("计划报送", "暂停提醒", "知悉", "汇总"):
        assert f"· {name}" in admin
    assert "· 计划报送（plan_record）" in lead and "· 汇总（summary）" in lead and "例：汇总 周报" in lead
    assert "· 暂停提醒" not in lead and "· 知悉" not in lead
    assert not any(f"· {name}" in text for name in ("计划报送", "暂停提醒", "知悉", "汇总")
                   for text in (inspector, approver))
    assert "双随机抽查周报" in await walk.group(ADMIN, "@双随 汇总 周报")  # in a group too
