"""Directory import (SPEC §3): every bad-row kind, all-or-nothing, snapshots, history."""

from __future__ import annotations

from datetime import date

import pytest
from openpyxl import Workbook
from sqlalchemy import select
from sqlmodel import SQLModel

from bot.cli import main
from storage import audit
from storage.db import transaction
from storage.importing import import_file
from storage.models import Conflict, DirectoryChange, Holiday, InspectionObject, Inspector, Team
from tests.support.directory_files import INSPECTORS, ITEMS, OBJECTS, UNITS, write

DOMAIN_TABLES = [t for t in SQLModel.metadata.sorted_tables if t.name not in ("audit_log",)]


def dump(engine) -> dict[str, list]:
    """Every domain table, sorted, for before/after comparison."""
    with engine.connect() as connection:
        return {t.name: sorted(map(repr, connection.execute(select(t)).all())) for t in DOMAIN_TABLES}


@pytest.fixture
def district(engine, tmp_path):
    """Units, items, inspectors and objects imported: the ground most tests stand on."""
    for kind, text in (("units", UNITS), ("items", ITEMS), ("inspectors", INSPECTORS), ("objects", OBJECTS)):
        outcome = import_file(engine, kind, write(tmp_path, f"{kind}.csv", text), actor="test")
        assert outcome.ok, outcome.problems
    return engine


def problems_of(outcome) -> dict[int, str]:
    return {p.line: p.reason for p in outcome.problems}


BAD_OBJECT_ROWS = {
    "unknown unit": ("X1,甲,个体工商户,,,S-NOPE", "单位 S-NOPE 不存在"),
    "pipe in id": ("X|1,甲,个体工商户,,,S-DC", "含有“|”"),
    "spaces around id": (" X1,甲,个体工商户,,,S-DC", "首尾有空格"),
    "empty id": (",甲,个体工商户,,,S-DC", "编号不能为空"),
    "empty name": ("X1,,个体工商户,,,S-DC", "name：不能为空"),
    "bad kind": ("X1,甲,公司,,,S-DC", "类型「公司」不是检查对象类型"),
    "bad boolean": ("X1,甲,个体工商户,,,S-DC,,,0,也许,否,否", "「也许」不是是/否"),
    "bad count": ("X1,甲,个体工商户,,,S-DC,,,-1,否,否,否", "「-1」不是非负整数"),
    "superscript count": ("X1,甲,个体工商户,,,S-DC,,,²,否,否,否", "「²」不是非负整数"),
    "bad status": ("X1,甲,个体工商户,,,S-DC,,歇业,0,否,否,否", "状态「歇业」无效"),
    "extra cells": ("X1,甲,个体工商户,,,S-DC,,,,,,,多余", "单元格多于表头"),
}


@pytest.mark.parametrize("case", sorted(BAD_OBJECT_ROWS))
def test_each_bad_object_row_is_reported_and_nothing_is_written(district, tmp_path, case):
    row, reason = BAD_OBJECT_ROWS[case]
    header = "id,name,kind,industry,region,unit,address,status,complaints,abnormal,serious_violation,key_sector\n"
    good = "91150602MA0N000009,新公司,有限责任公司,,,S-DC,,,,,,\n"
    before = dump(district)
    outcome = import_file(district, "objects", write(tmp_path, "bad.csv", header + good + row + "\n"))
    assert not outcome.ok
    assert list(problems_of(outcome)) == [3]
    assert reason in problems_of(outcome)[3]
    assert dump(district) == before


def test_every_bad_row_is_reported_with_its_line(district, tmp_path):
    text = ("id,name,kind,industry,region,unit\n"
            "X1,甲,个体工商户,,,S-DC\n"
            "\"X\n2\",乙,个体工商户,,,S-DC\n"  # a newline inside a quoted id spans lines 3–4
            "X3,丙,个体工商户,,,S-NOPE\n"
            "X1,丁,个体工商户,,,S-DC\n")
    before = dump(district)
    outcome = import_file(district, "objects", write(tmp_path, "bad.csv", text))
    found = problems_of(outcome)
    assert sorted(found) == [3, 5, 6]
    assert "换行" in found[3]
    assert "S-NOPE" in found[5]
    assert "与第 2 行重复" in found[6]
    assert dump(district) == before


def test_bad_date_and_header_problems(district, tmp_path):
    bad_date = INSPECTORS.replace("2028-12-31", "2028/12/31")
    outcome = import_file(district, "inspectors", write(tmp_path, "i.csv", bad_date))
    assert "日期「2028/12/31」无效" in problems_of(outcome)[2]

    outcome = import_file(district, "units", write(tmp_path, "u.csv", "id,name,kind,phone\nU1,甲,office,1\n"))
    assert "表头「phone」不是 units 的列" in problems_of(outcome)[1]
    outcome = import_file(district, "units", write(tmp_path, "u.csv", "id,kind\nU1,office\n"))
    assert "缺少列 name" in problems_of(outcome)[1]


def test_a_speciality_that_cannot_be_a_roster_field_is_refused(district, tmp_path):
    """DRAW.md §8: specialities are written into the frozen roster's ``|``-separated lines."""
    header = "id,name,unit,certificate_no,certificate_expiry,specialties,active\n"
    text = header + "I20,甲,S-DC,C20,2030-12-31,食品|价格,true\n" + "I21,乙,S-DC,C21,2030-12-31,\"食品\n价格\",true\n"
    found = problems_of(import_file(district, "inspectors", write(tmp_path, "i.csv", text), partial=True))
    assert sorted(found) == [2, 3] and "食品|价格" in found[2] and "含有“|”或换行" in found[3]


def test_references_teams_conflicts_holidays_plans(district, tmp_path):
    teams = "id,members\nT1,I01;I02\nT2,I01\nT3,I01;I09\n"
    found = problems_of(import_file(district, "teams", write(tmp_path, "t.csv", teams)))
    assert sorted(found) == [3, 4] and "至少要有两名" in found[3] and "I09" in found[4]

    conflicts = "inspector_id,object_id,reason\nI01,91150602MA0N000001,亲属关系\nI01,NOPE,x\n"
    assert "NOPE" in problems_of(import_file(district, "conflicts", write(tmp_path, "c.csv", conflicts)))[3]

    holidays = "date,kind\n2027-10-01,休\n2027-10-06,班\n2027-13-01,休\n"
    found = problems_of(import_file(district, "holidays", write(tmp_path, "h.csv", holidays)))
    assert "不是周六或周日" in found[3] and "无效" in found[4]

    plans = ("year,office,name,items,ratio,frequency,scope,start,end\n"
             "2027,U-XY,企业年报抽查,A01;A99,5%,1,,2027-03-01,2027-11-30\n"
             "2027,U-XY,食品抽查,A02,120,1,,,\n"
             "2027,U-XY,价格抽查,A02,5,1,,2027-12-01,2027-03-01\n")
    found = problems_of(import_file(district, "plans", write(tmp_path, "p.csv", plans)))
    assert "A99" in found[2] and "比例「120」无效" in found[3] and "开始日期晚于结束日期" in found[4]


def test_encodings_and_xlsx(engine, tmp_path):
    assert import_file(engine, "units", write(tmp_path, "u.csv", "\ufeff" + UNITS)).ok
    gbk = UNITS.replace("东城", "東城").replace("id,name,kind", "编号,名称,类型")
    outcome = import_file(engine, "units", write(tmp_path, "g.csv", gbk, "gb18030"))
    assert outcome.ok and outcome.counts()["updated"] == 1

    book = Workbook()
    sheet = book.active
    sheet.append(["编号", "姓名", "所属单位", "执法证号", "执法证有效期", "业务专长", "在岗"])
    sheet.append(["I01", "张伟", "S-DC", 15060001, date(2028, 12, 31), "食品", "是"])
    sheet.append([None] * 7)  # Excel's trailing empty rows
    book.save(tmp_path / "i.xlsx")
    assert import_file(engine, "inspectors", tmp_path / "i.xlsx").ok
    with transaction(engine) as session:
        inspector = session.get(Inspector, "I01")
    assert (inspector.certificate_no, inspector.certificate_expiry) == ("15060001", date(2028, 12, 31))

    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00\xd8")
    assert "编码无法识别" in import_file(engine, "units", tmp_path / "bad.csv").problems[0].reason


def test_snapshot_updates_delists_relists_and_keeps_history(district, tmp_path):
    lines = OBJECTS.splitlines()
    changed = "\n".join([lines[0], lines[1].replace("林荫路1号", "林荫路2号"), lines[3]]) + "\n"
    outcome = import_file(district, "objects", write(tmp_path, "o.csv", changed))
    assert outcome.counts() == {"added": 0, "updated": 1, "relisted": 0, "delisted": 1, "removed": 0,
                                    "unchanged": 1}
    with transaction(district) as session:
        gone = session.get(InspectionObject, "91150602MA0N000002")
        moved = session.get(InspectionObject, "91150602MA0N000001")
        history = session.exec(select(DirectoryChange).order_by(DirectoryChange.id)).scalars().all()
    assert gone is not None and not gone.listed and gone.delisted_at is not None
    assert moved.address == "林荫路2号"
    assert [(h.key, h.action, h.before["address"]) for h in history] == [
        ("91150602MA0N000001", "updated", "林荫路1号"), ("91150602MA0N000002", "delisted", "")]

    outcome = import_file(district, "objects", write(tmp_path, "o.csv", OBJECTS))
    assert outcome.counts()["relisted"] == 1 and outcome.counts()["updated"] == 1

    only_new = lines[0] + "\n91150602MA0N000003,新店,个体工商户,,,S-DC,,,,,,\n"
    outcome = import_file(district, "objects", write(tmp_path, "o.csv", only_new), partial=True)
    assert outcome.counts()["added"] == 1 and outcome.counts()["delisted"] == 0


def test_recusal_conflicts_are_never_touched(district, tmp_path):
    with transaction(district) as session:
        session.add(Conflict(inspector_id="I02", object_id="91150602MA0N000002", reason="回避", origin="recusal"))
    conflicts = "inspector_id,object_id,reason\nI01,91150602MA0N000001,亲属关系\n"
    assert import_file(district, "conflicts", write(tmp_path, "c.csv", conflicts)).ok
    assert import_file(district, "conflicts", write(tmp_path, "c.csv", "inspector_id,object_id,reason\n")).ok
    with transaction(district) as session:
        rows = {(c.inspector_id, c.origin, c.listed) for c in session.exec(select(Conflict)).scalars()}
    assert rows == {("I01", "import", False), ("I02", "recusal", True)}


def test_holidays_are_replaced_per_notice_year(engine, tmp_path):
    first = "date,kind\n2026-12-31,休\n2027-01-01,休\n2027-02-20,班\n2028-01-01,休\n"
    assert import_file(engine, "holidays", write(tmp_path, "h.csv", first)).ok
    second = "date,kind\n2027-01-01,休\n2027-01-02,休\n"
    outcome = import_file(engine, "holidays", write(tmp_path, "h.csv", second))
    assert outcome.counts()["removed"] == 2  # 2026-12-31 was filed under the 2027 notice
    with transaction(engine) as session:
        days = {(h.day.isoformat(), h.year) for h in session.exec(select(Holiday)).scalars()}
    assert days == {("2027-01-01", 2027), ("2027-01-02", 2027), ("2028-01-01", 2028)}


def test_teams_and_plans_import(district, tmp_path):
    assert import_file(district, "teams", write(tmp_path, "t.csv", "id,members\nT1,I01；I02\n")).ok
    plans = ("年度,科室,名称,事项,比例,频次,范围,开始,结束\n"
             "2027,U-XY,企业年报抽查,A01;A02,12.50%,1,行业=餐饮服务,2027-03-01,2027-11-30\n")
    assert import_file(district, "plans", write(tmp_path, "p.csv", plans)).ok
    with transaction(district) as session:
        assert session.get(Team, "T1").members == ["I01", "I02"]
        plan = session.exec(select(SQLModel.metadata.tables["annual_plans"])).one()
    assert plan.ratio_percent == "12.5" and plan.items == ["A01", "A02"]


def test_dry_run_writes_nothing_and_cli_reports(district, tmp_path, monkeypatch, capsys, db_url):
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", db_url)
    before = dump(district)
    path = write(tmp_path, "o.csv", OBJECTS.replace("散装白酒", "散装黄酒"))
    assert main(["import", "objects", str(path), "--dry-run"]) == 0
    out, errors = capsys.readouterr()
    assert out.strip() == "更新 L-产品-0007：name 散装白酒 → 散装黄酒"
    assert "试导入" in errors.splitlines()[-1]
    assert dump(district) == before

    bad = write(tmp_path, "bad.csv", "id,name,kind\nU|1,甲,office\n")
    assert main(["import", "units", str(bad)]) == 1
    out, errors = capsys.readouterr()
    assert out == "" and "第 2 行" in errors and "未写入任何数据" in errors
    assert dump(district) == before


def test_imports_are_audited_and_tampering_is_named(district, tmp_path, monkeypatch, capsys, db_url):
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", db_url)
    import_file(district, "units", write(tmp_path, "u.csv", "id,name,kind\nU|1,甲,office\n"))
    with transaction(district) as session:
        report = audit.verify(session)
        actions = [e.action for e in session.exec(select(audit.AuditEntry).order_by(audit.AuditEntry.seq)).scalars()]
    assert report.ok and report.entries == 5
    assert actions == ["directory.import"] * 4 + ["directory.import_refused"]
    assert main(["audit", "verify"]) == 0
    assert "共 5 条" in capsys.readouterr().out
