"""Annual plans (art. 11): import, adjustments with a reason, batches created from a plan."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.cli import main
from storage.db import transaction
from storage.models import PlanAdjustment
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
