"""``shuangsui batch …`` and ``shuangsui verify``: the contract of SPEC §3."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from bot.cli import main
from storage.db import transaction
from storage.models import AuditEntry, Batch
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
    code, _, err = cli("batch", "new", "颜色=红", "名称=x")
    assert code == 1 and "颜色" in err and "名称=" in err


def test_a_refused_draw_is_audited_in_its_own_transaction_and_names_no_object(cli, engine):
    """Every draw attempt leaves a trace (the draw's own transaction is rolled back), and a
    draw that cannot staff names the stratum, the mode and what is missing — not an object."""
    assert cli("batch", "new", "名称=x", "事项=A01", "数量=3", "方式=小随机", "人数=5", "截止=2026-12-31")[0] == 0
    assert cli("batch", "publish", "批次=2026-DS-001")[0] == 0
    code, out, err = cli("batch", "draw", "批次=2026-DS-001", "--as", "wecom:admin1")
    assert (code, out) == (1, "") and "分层 main" in err and "小随机" in err and "人员不足" in err
    assert not re.search(r"9115060200000\d{5}|对象\d|S-DC|S-XC", err), err
    code, _, err = cli("batch", "draw", "批次=2026-DS-001", "信标值=7")
    assert code == 1 and "没有约定信标" in err
    with transaction(engine) as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "draw.refused")
                               .order_by(AuditEntry.seq)).scalars().all()
        status = session.get(Batch, "2026-DS-001").status
    assert [(e.actor, e.subject, e.detail["refusal"]) for e in entries] == [
        ("wecom:admin1", "2026-DS-001", "cannot_staff"), (entries[1].actor, "2026-DS-001", "beacon_not_announced")]
    assert entries[0].detail == {"refusal": "cannot_staff", "reason": "too_few_candidates", "stratum": "main",
                                 "mode": "unit", "frozen": True}
    assert entries[1].actor.startswith("cli:") and status == "published"
    assert cli("audit", "verify")[0] == 0  # the chain holds


def test_a_draw_with_a_bad_argument_is_refused_and_audited(cli, engine):
    """A bad argument's refusal names the key as ``subject``; auditing the draw attempt must
    not collide with the audit entry's own subject (found by tests/fuzz on PostgreSQL)."""
    code, _, err = cli("batch", "draw", "颜色=红")
    assert code == 1 and "颜色" in err
    with transaction(engine) as session:
        last = session.exec(select(AuditEntry).order_by(AuditEntry.seq.desc())).scalars().first()
    assert last.action == "draw.refused" and last.detail.get("argument") == "颜色"
