"""What the contract promised and no test exercised (issue 19, "Tests for what exists but
is untested"): `db upgrade` as a command, `import --partial`, `batch stratum` and `batch
cancel` from the command line, Chinese headers for items, teams, conflicts and holidays,
a bad item method, and the exact key sets of SPEC §6's export files."""

from __future__ import annotations

import hashlib
import json

import pytest

from bot.cli import main
from storage import schema
from storage.db import make_engine
from storage.models import AuditEntry, Batch, Conflict, Holiday, Item, Stratum, Team, Unit
from tests.support.batch_district import seed_district
from tests.support.batches import rows


@pytest.fixture
def cli(engine, db_url, sealing_key, tmp_path, monkeypatch, capsys):
    seed_district(engine, tmp_path)
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", db_url)
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", json.dumps([sealing_key]))  # the engine's: rows read back
    monkeypatch.setenv("SHUANGSUI__BUREAU__DEFAULT_LEAD", "U-XY")
    monkeypatch.setenv("SHUANGSUI__ROLES__ADMINS", '["wecom:admin1"]')

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


# ----- shuangsui db upgrade -----------------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_is_idempotent(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", url)
    engine = make_engine(url)
    assert schema.current_revision(engine) is None
    assert main(["db", "upgrade"]) == 0
    assert schema.is_at_head(engine) and schema.current_revision(engine) == schema.head_revision()
    assert main(["db", "upgrade"]) == 0  # again: nothing to do, still at head
    out, err = capsys.readouterr()
    assert out == "" and schema.head_revision() in err
    assert schema.is_at_head(engine)
    engine.dispose()


def test_db_upgrade_on_a_database_already_at_head(cli, engine):
    code, out, _ = cli("db", "upgrade")
    assert (code, out) == (0, "") and schema.is_at_head(engine)


# ----- shuangsui import … --partial, Chinese headers, a bad method --------------------------------------------------


def test_import_partial_only_adds_and_updates(cli, engine, tmp_path):
    full = tmp_path / "units-full.csv"
    full.write_text("id,name,kind\nU-XY,信用监管室,office\nS-DC,东城所,station\nS-XC,西城所,station\n"
                    "S-NC,南城所,station\n", encoding="utf-8")
    assert cli("import", "units", full)[0] == 0
    some = tmp_path / "units-some.csv"
    some.write_text("编号,名称,类型\nS-NC,南城市场监管所,市场监管所\n", encoding="utf-8")
    code, out, err = cli("import", "units", some, "--partial")
    assert code == 0, err
    units = {u.id: u for u in rows(engine, Unit)}
    assert units["S-NC"].name == "南城市场监管所"  # updated
    assert all(units[u].listed for u in ("U-XY", "S-DC", "S-XC"))  # missing from the file: kept
    code, _, err = cli("import", "units", some)  # a full snapshot: the others are deactivated
    assert code == 0, err
    units = {u.id: u for u in rows(engine, Unit)}
    assert not units["S-DC"].listed and units["S-NC"].listed


def test_chinese_headers_for_items_teams_conflicts_and_holidays(cli, engine, tmp_path):
    files = {
        "items": "事项编码,名称,法律依据,所需专长,检查方式\nB01,价格检查,《价格法》第三十四条,,网络\n"
                 "A01,企业公示信息检查,《企业信息公示暂行条例》第十四条,,书面\n"
                 "A02,食品经营检查,《食品安全法》第八十七条,食品,实地\nA03,特种设备检查,《特种设备安全法》,特种设备,实地\n",
        "teams": "编号,成员\nT9,I07;I08\n",
        "conflicts": "检查人员编号,检查对象编号,原因\nI01,911506020000000001,曾在该企业任职\n",
        "holidays": "日期,类型\n2031-10-01,休\n2031-09-28,班\n",
    }
    for kind, text in files.items():
        path = tmp_path / f"{kind}-zh.csv"
        path.write_text(text, encoding="utf-8")
        code, _, err = cli("import", kind, path, "--partial")
        assert code == 0, (kind, err)
    (item,) = rows(engine, Item, Item.code == "B01")
    assert (item.name, item.method) == ("价格检查", "网络")
    (team,) = rows(engine, Team, Team.id == "T9")
    assert list(team.members) == ["I07", "I08"]
    (conflict,) = rows(engine, Conflict)
    assert (conflict.inspector_id, conflict.object_id) == ("I01", "911506020000000001")
    assert {(h.day.isoformat(), h.kind) for h in rows(engine, Holiday)} >= {("2031-10-01", "holiday"),
                                                                            ("2031-09-28", "workday")}


def test_a_bad_item_method_is_refused_with_its_line(cli, engine, tmp_path):
    path = tmp_path / "items-bad.csv"
    path.write_text("code,name,legal_basis,specialty,method\nA01,企业公示信息检查,条例,,书面\n"
                    "B02,广告检查,《广告法》,,电话\n", encoding="utf-8")
    code, out, err = cli("import", "items", path)
    assert (code, out) == (1, "")
    assert "第 3 行" in err and "检查方式「电话」无效" in err and "书面、实地、网络" in err
    assert rows(engine, Item, Item.code == "B02") == []  # all or nothing


# ----- shuangsui batch stratum / cancel; the export's exact key sets (SPEC §6) ---------------------------------------


def test_batch_stratum_and_cancel_from_the_command_line(cli, engine):
    code, out, err = cli("batch", "new", "名称=分层", "事项=A01", "数量=2", "方式=大随机", "截止=2026-12-31",
                         "--as", "wecom:admin1")
    assert code == 0, err
    batch_id = out.splitlines()[-1]
    code, out, err = cli("batch", "stratum", f"批次={batch_id}", "名称=投诉", "风险=complaints", "数量=1",
                         "事项=A01", "--as", "wecom:admin1")
    assert code == 0 and "投诉" in out, err
    assert sorted(s.name for s in rows(engine, Stratum, Stratum.batch_id == batch_id)) == ["main", "投诉"]
    code, _, err = cli("batch", "stratum", f"批次={batch_id}", "名称=投诉", "数量=1", "事项=A01")
    assert code == 1 and "投诉" in err  # the same name twice is refused
    code, out, err = cli("batch", "cancel", f"batch={batch_id}", "reason=计划调整", "--as", "wecom:admin1")
    assert code == 0 and out, err
    (batch,) = rows(engine, Batch, Batch.id == batch_id)
    assert batch.status == "cancelled"
    cancelled = rows(engine, AuditEntry, AuditEntry.subject == batch_id, AuditEntry.action == "batch.cancelled")
    assert [(e.actor, e.detail.get("reason")) for e in cancelled] == [("wecom:admin1", "计划调整")]
    code, _, err = cli("batch", "cancel", f"批次={batch_id}")
    assert code == 1 and "原因" in err  # a cancellation needs its reason
    code, _, err = cli("batch", "stratum", f"批次={batch_id}", "名称=晚了", "数量=1", "事项=A01")
    assert code == 1 and err


RECORD = {"algorithm", "batch_id", "commitment", "secret", "beacon", "seed", "roster_digest", "strata", "tasks"}
STRATUM = {"name", "filter", "items", "pool_size", "pool_digest", "ratio_percent", "k", "pool_file", "selected"}
ASSIGNMENT = {"mode", "team_size", "slack", "draw_date", "inspectors", "teams", "objects", "conflicts", "assignments"}


def test_the_export_files_have_exactly_the_keys_of_spec_6(cli, tmp_path):
    code, out, err = cli("batch", "new", "名称=导出", "事项=A01,A02", "比例=5%", "方式=交叉随机", "截止=2026-12-31")
    assert code == 0, err
    batch_id = out.splitlines()[-1]
    assert cli("batch", "stratum", f"批次={batch_id}", "名称=重点", "风险=complaints", "数量=2", "事项=A01")[0] == 0
    assert cli("batch", "publish", f"批次={batch_id}")[0] == 0
    assert cli("batch", "draw", f"批次={batch_id}")[0] == 0
    out_dir = tmp_path / "export"
    code, out, err = cli("batch", "export", batch_id, "--out", out_dir, "--internal")
    assert code == 0, err
    record = json.loads((out_dir / "record.json").read_text(encoding="utf-8"))
    assert set(record) == RECORD and record["algorithm"] == "SSR-1"
    assert isinstance(record["roster_digest"], str) and len(record["roster_digest"]) == 64  # frozen at publication
    assert [s["name"] for s in record["strata"]] == ["main", "重点"]
    for stratum in record["strata"]:
        assert set(stratum) == STRATUM
        assert stratum["pool_file"] == f"pool-{stratum['name']}.txt" and (out_dir / stratum["pool_file"]).is_file()
        assert all(set(s) == {"id", "score"} for s in stratum["selected"])
    assert record["strata"][0]["ratio_percent"] == "5" and record["strata"][1]["ratio_percent"] is None
    assert all(set(t) == {"object_id", "strata", "items"} for t in record["tasks"])

    assignment = json.loads((out_dir / "assignment.json").read_text(encoding="utf-8"))
    assert set(assignment) == ASSIGNMENT and assignment["mode"] == "cross"
    assert all(set(i) == {"id", "unit", "active", "qualified", "specialties"} for i in assignment["inspectors"])
    assert all(set(t) == {"id", "members"} for t in assignment["teams"])
    assert all(set(o) == {"id", "unit", "required_specialties"} for o in assignment["objects"])
    assert all(isinstance(c, list) and len(c) == 2 for c in assignment["conflicts"])
    assert all(set(a) == {"object_id", "inspectors", "team_id", "needs_expert"} for a in assignment["assignments"])
    roster = (out_dir / "roster.txt").read_text(encoding="utf-8")
    lines = roster.splitlines()
    assert lines and all(line.split("|", 1)[0] in ("I", "T", "C") for line in lines)  # DRAW.md §8
    assert sum(line.startswith("I|") for line in lines) == len(assignment["inspectors"])
    assert hashlib.sha256("".join(f"{line}\n" for line in sorted(lines)).encode()).hexdigest() == record[
        "roster_digest"]
    assert {p.name for p in out_dir.iterdir()} == {"record.json", "assignment.json", "roster.txt", "pool-main.txt",
                                                   "pool-重点.txt"}
    code, out, _ = cli("verify", out_dir)
    assert code == 0 and out.startswith("SSR-1 OK")
