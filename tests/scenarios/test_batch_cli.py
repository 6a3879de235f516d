"""``shuangsui batch …`` and ``shuangsui verify``: the contract of SPEC §3."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.cli import main
from storage.db import transaction
from storage.models import AuditEntry
from storage.sealing import new_key
from tests.support.batch_district import seed_district


@pytest.fixture
def cli(engine, db_url, tmp_path, monkeypatch, capsys):
    seed_district(engine, tmp_path)
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", db_url)
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", json.dumps([new_key()]))
    monkeypatch.setenv("SHUANGSUI__BUREAU__DEFAULT_LEAD", "U-XY")
    monkeypatch.setenv("SHUANGSUI__ROLES__ADMINS", '["wecom:admin1"]')

    def run(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_batch_commands_round_trip_through_export_and_verify(cli, tmp_path):
    code, out, _ = cli("batch", "new", "名称=城区 餐饮 抽查", "事项=A01,A02", "比例=5%", "方式=大随机",
                       "截止=2026-12-31", "--as", "wecom:admin1")
    assert code == 0 and out.splitlines()[-1] == "2026-DS-001" and "城区 餐饮 抽查" in out
    out_dir = tmp_path / "record"
    code, _, err = cli("batch", "export", "2026-DS-001", "--out", str(out_dir))
    assert code == 1 and "抽取之后" in err
    assert cli("batch", "publish", "批次=2026-DS-001")[0] == 0
    code, out, _ = cli("batch", "draw", "批次=2026-DS-001")
    assert code == 0 and "检查任务 3 项" in out
    code, out, _ = cli("batch", "export", "2026-DS-001", "--out", str(out_dir), "--internal")
    assert code == 0 and out.splitlines()[0].endswith("record.json")
    code, out, _ = cli("verify", str(out_dir))
    assert code == 0 and out.startswith("SSR-1 OK")


def test_a_user_without_the_admin_role_is_refused_and_audited(cli, engine):
    code, out, err = cli("batch", "new", "名称=x", "事项=A01", "数量=2", "方式=大随机", "截止=2026-12-31",
                         "--as", "dingtalk:admin1")
    assert (code, out) == (1, "") and "没有管理员权限" in err
    with transaction(engine) as session:
        last = session.exec(select(AuditEntry).order_by(AuditEntry.seq.desc())).scalars().first()
    assert (last.actor, last.action) == ("dingtalk:admin1", "refused")


def test_bad_arguments_name_the_key(cli):
    code, _, err = cli("batch", "new", "名称=x", "颜色=红")
    assert code == 1 and "颜色" in err and "名称=" in err
