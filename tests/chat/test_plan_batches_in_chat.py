"""新建抽查 计划=… in chat (art. 11, issue 19 items 1, 3, 14): the plan's ratio is a floor, a
plan whose stored scope is malformed is answered (never "处理出错"), and the reply's pool
size is the one publication will freeze."""

from __future__ import annotations

from datetime import date

from sqlmodel import select

from bot.plans import import_plans
from storage.db import transaction
from storage.models import AnnualPlan
from tests.support.batch_district import PLANS
from tests.support.wecom_bot import ADMIN, Walk


async def test_new_batch_from_a_plan_in_chat(bot, wecom, engine, tmp_path):
    path = tmp_path / "plans.csv"
    path.write_text(PLANS, encoding="utf-8")  # plan 1: 10%, 行业=餐饮服务 (30 objects)
    assert import_plans(engine, path, actor="test", reason=None, today=date(2026, 1, 5)).ok
    walk = Walk(wecom, engine, bot)
    due = "截止=2099-12-31"
    answer = await walk.say(ADMIN, f"新建抽查 名称=低比例 计划=1 比例=5% 方式=大随机 {due}")
    assert "低于年度计划 1 的比例 10%" in answer and "第十一条" in answer
    answer = await walk.say(ADMIN, f"新建抽查 名称=沿用计划 计划=1 方式=大随机 {due}")
    assert "已新建批次" in answer and "检查对象池 30 个" in answer
    with transaction(engine) as session:
        plan = session.exec(select(AnnualPlan)).one()
        plan.scope = "风险=很高"  # as a plan imported before scopes were checked
        session.add(plan)
    answer = await walk.say(ADMIN, f"新建抽查 名称=坏范围 计划=1 方式=大随机 {due}")
    assert "风险=很高" in answer and "处理出错" not in answer
