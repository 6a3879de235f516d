"""Annual plans (art. 11): import, adjustments with a reason, batches created from a plan."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session

from bot.cli import main
from bot.public.site import Site
from bot.settings import Settings
from storage.db import transaction
from storage.models import AnnualPlan, PlanAdjustment
from tests.support.batch_district import PLANS, seed_district


@pytest.fixture
def cli(engine, db_url, tmp_path, monkeypatch, capsys):
    seed_district(engine, tmp_path)
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", db_url)
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", '["' + __import__("storage.sealing").sealing.new_key() + '"]')

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_plan_import_adjust_list_show_and_batches_from_a_plan(cli, engine, tmp_path):
    plans = tmp_path / "plans.csv"
    plans.write_text(PLANS, encoding="utf-8")
    assert cli("plan", "import", plans)[0] == 0
    plans.write_text(PLANS.replace(",10,1,", ",12.5,2,"), encoding="utf-8")
    code, _, err = cli("plan", "import", plans)
    assert code == 1 and "--reason" in err
    assert cli("import", "plans", plans)[0] == 1  # the contract's import path needs the reason too
    assert cli("plan", "import", plans, "--reason", "上级部署增加抽查比例")[0] == 0
    with transaction(engine) as session:
        adjustment = session.exec(select(PlanAdjustment)).scalar_one()
    assert adjustment.reason == "上级部署增加抽查比例"
    assert adjustment.changes == {"ratio_percent": ["10", "12.5"], "frequency": [1, 2]}

    code, out, _ = cli("batch", "new", "名称=一季度", "计划=1", "方式=大随机", "截止=2026-12-31")
    assert code == 0 and out.splitlines()[-1] == "2026-DS-001"
    code, out, _ = cli("plan", "show", 1)
    assert code == 0 and "2026-DS-001" in out and "上级部署增加抽查比例" in out and "A01、A02" in out
    code, out, _ = cli("plan", "list", "--year", 2026)
    assert code == 0 and "已建批次 1" in out
    code, out, _ = cli("batch", "publish", "批次=2026-DS-001")
    assert "池 30 个，抽取 4 个" in out  # the plan scope (餐饮服务: 30 of 60), ceil(30 × 12.5%) = 4


def test_import_plans_takes_the_reason_like_plan_import(cli, engine, tmp_path):
    """SPEC §3: ``import plans FILE --reason …`` adjusts an existing plan (art. 11); the
    reason is for plans only."""
    plans = tmp_path / "plans.csv"
    plans.write_text(PLANS, encoding="utf-8")
    assert cli("import", "plans", plans)[0] == 0
    plans.write_text(PLANS.replace(",10,1,", ",15,1,"), encoding="utf-8")
    assert cli("import", "plans", plans)[0] == 1
    assert cli("import", "plans", plans, "--reason", "区局部署提高比例")[0] == 0
    with transaction(engine) as session:
        adjustment = session.exec(select(PlanAdjustment)).scalar_one()
    assert adjustment.reason == "区局部署提高比例" and adjustment.changes == {"ratio_percent": ["10", "15"]}
    code, _, err = cli("import", "units", tmp_path / "units.csv", "--reason", "x")
    assert code == 2 and "--reason" in err


HEADER = "year,office,name,items,ratio,frequency,scope,start,end"


def test_a_bad_scope_is_a_bad_row_and_nothing_is_written(cli, engine, tmp_path):
    """Art. 11 / SPEC §3: a plan's scope is checked at import like a chat filter; every bad
    cell is a ``第 N 行：原因`` line and the file is refused whole."""
    plans = tmp_path / "plans.csv"
    plans.write_text("\n".join([
        HEADER,
        "2026,U-XY,好计划,A01,10,1,行业=餐饮服务,2026-03-01,2026-12-31",
        "2026,U-XY,坏键,A01,10,1,颜色=红,2026-03-01,2026-12-31",
        "2026,U-XY,坏类型,A01,10,1,类型=小卖部,2026-03-01,2026-12-31",
        "2026,U-XY,坏风险,A01,10,1,风险=很高,2026-03-01,2026-12-31",
        "2026,U-XY,无键,A01,10,1,餐饮服务,2026-03-01,2026-12-31",
        "2026,U-XY,两次,A01,10,1,行业=a 行业=b,2026-03-01,2026-12-31",
        "2026,U-XY,非筛选键,A01,10,1,名称=x,2026-03-01,2026-12-31",
    ]) + "\n", encoding="utf-8")
    code, out, err = cli("import", "plans", plans)
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("第 ")]
    assert [line.split("行")[0] for line in lines] == [f"第 {n} " for n in range(3, 9)]
    assert "颜色" in lines[0] and "小卖部" in lines[1] and "很高" in lines[2] and "餐饮服务" in lines[3]
    assert "两次" in lines[4] and "名称" in lines[5]
    with transaction(engine) as session:
        assert session.exec(select(AnnualPlan)).first() is None


def test_a_plan_states_its_kind_shown_by_plan_show(cli, engine, tmp_path):
    """抽查类型 (optional column kind / 类型): 不定向 / 定向 / 联合, stored and shown."""
    plans = tmp_path / "plans.csv"
    plans.write_text("年度,科室,名称,事项,比例,频次,范围,开始,结束,类型\n"
                     "2026,U-XY,联合抽查,A01,10,1,,2026-03-01,2026-12-31,联合\n"
                     "2026,U-XY,不写类型,A01,10,1,,2026-03-01,2026-12-31,\n", encoding="utf-8")
    assert cli("import", "plans", plans)[0] == 0
    with transaction(engine) as session:
        kinds = {p.name: p.kind for p in session.exec(select(AnnualPlan)).scalars()}
    assert kinds == {"联合抽查": "联合", "不写类型": ""}
    assert "抽查类型：联合" in cli("plan", "show", 1)[1]
    with Session(engine) as session:
        page = Site(session, Settings()).get("plans.html").body.decode()
    assert "<dt>抽查类型</dt><dd>联合</dd>" in page
    plans.write_text(HEADER + ",kind\n2026,U-XY,联合抽查,A01,10,1,,2026-03-01,2026-12-31,混合\n", encoding="utf-8")
    code, _, err = cli("import", "plans", plans, "--partial")
    assert code == 1 and "第 2 行" in err and "混合" in err and "不定向、定向、联合" in err


def test_the_regions_minimum_ratio_refuses_a_plan_below_it_naming_the_row(cli, engine, tmp_path, monkeypatch):
    """``[plans] min_ratio`` (art. 11): a plan below the region's minimum is refused at import."""
    monkeypatch.setenv("SHUANGSUI__PLANS__MIN_RATIO", "5")
    plans = tmp_path / "plans.csv"
    plans.write_text("\n".join([
        HEADER,
        "2026,U-XY,够比例,A01,5,1,,2026-03-01,2026-12-31",
        "2026,U-XY,不够,A01,4.5,1,,2026-03-01,2026-12-31",
    ]) + "\n", encoding="utf-8")
    code, _, err = cli("import", "plans", plans)
    assert code == 1 and "第 3 行" in err and "4.5%" in err and "5%" in err and "第 2 行" not in err
    monkeypatch.delenv("SHUANGSUI__PLANS__MIN_RATIO")
    assert cli("import", "plans", plans)[0] == 0  # no minimum configured: no check


def test_the_plans_ratio_is_a_floor_for_its_batches(cli, engine, tmp_path):
    """Art. 11: a batch made from a plan (新建抽查 计划=…, ``batch new 计划=…``) cannot use a
    lower ratio than the plan's, nor can a stratum added to it. A 数量= is stated outright."""
    plans = tmp_path / "plans.csv"
    plans.write_text(PLANS, encoding="utf-8")  # 10%, scope 餐饮服务: 30 objects
    assert cli("plan", "import", plans)[0] == 0
    base = ("batch", "new", "名称=一季度", "计划=1", "方式=大随机", "截止=2026-12-31")
    code, _, err = cli(*base, "比例=5%")
    assert code == 1 and "低于年度计划 1 的比例 10%" in err and "第十一条" in err
    assert cli(*base, "数量=2")[0] == 0
    assert cli(*base, "比例=12.5%")[0] == 0
    code, _, err = cli("batch", "stratum", "批次=2026-DS-002", "名称=extra", "行业=食品销售", "比例=1%")
    assert code == 1 and "低于年度计划 1" in err
    assert cli("batch", "stratum", "批次=2026-DS-002", "名称=extra", "行业=食品销售", "比例=10%")[0] == 0
    assert cli("batch", "new", "名称=临时", "事项=A01", "方式=大随机", "截止=2026-12-31", "比例=1%",
               "牵头=U-XY")[0] == 0  # no plan, no floor


def test_a_malformed_stored_scope_is_a_refusal_not_a_crash(cli, engine, tmp_path):
    """A plan stored before import checked scopes: 新建抽查 计划=… answers, it does not crash."""
    plans = tmp_path / "plans.csv"
    plans.write_text(PLANS, encoding="utf-8")
    assert cli("plan", "import", plans)[0] == 0
    with transaction(engine) as session:
        plan = session.exec(select(AnnualPlan)).scalar_one()
        plan.scope = "颜色=红"
        session.add(plan)
    code, _, err = cli("batch", "new", "名称=一季度", "计划=1", "方式=大随机", "截止=2026-12-31")
    assert code == 1 and "颜色=红" in err and "Traceback" not in err
    assert cli("batch", "new", "名称=一季度", "计划=1", "方式=大随机", "截止=2026-12-31", "行业=餐饮服务")[0] == 0


def test_the_new_batch_reply_counts_the_frequency_cap(cli, engine, tmp_path, monkeypatch):
    """SPEC §5 新建抽查 replies with the pool size as publication will count it: objects the
    frequency cap excludes are not in it."""
    monkeypatch.setenv("SHUANGSUI__BUREAU__DEFAULT_LEAD", "U-XY")
    monkeypatch.setenv("SHUANGSUI__DRAW__FREQUENCY_CAP", "1")
    new = ("batch", "new", "事项=A01", "方式=大随机", "截止=2026-12-31", "行业=餐饮服务")
    code, out, _ = cli(*new, "名称=第一批", "数量=4")
    assert code == 0 and "当前检查对象池 30 个（" in out
    assert cli("batch", "publish", "批次=2026-DS-001")[0] == 0
    code, out, _ = cli("batch", "draw", "批次=2026-DS-001")
    assert code == 0, out
    code, out, _ = cli(*new, "名称=第二批", "数量=4")
    assert code == 0 and "当前检查对象池 26 个，已除去本年度检查次数已达上限的 4 个" in out
    code, out, _ = cli("batch", "stratum", "批次=2026-DS-002", "名称=x", "事项=A01", "行业=餐饮服务", "数量=1")
    assert code == 0 and "当前检查对象池 26 个，已除去本年度检查次数已达上限的 4 个" in out
    code, out, _ = cli("batch", "publish", "批次=2026-DS-002")
    assert code == 0 and "池 26 个" in out  # what publication froze
