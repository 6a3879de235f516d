"""The column-by-column check of a clean file (storage.importing.fast) against the
row-by-row check that names bad rows: for every kind and every column's good and bad
values, the fast path accepts exactly the files the row-by-row check accepts, with the
same rows (values and field order), and leaves every refusal — and so its messages — to
the row-by-row check. Also the column-wise bulk insert against ``insert_rows``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.rules.arguments import normalise
from storage.bulk import insert_rows
from storage.db import transaction
from storage.importing import import_file
from storage.importing import values as v
from storage.importing.fast import _column_values, _kept, _uniform, fast_rows
from storage.importing.kinds import KINDS
from storage.importing.parse import ParsedFile, _check_rows, check_header
from storage.importing.sheets import read_sheet
from storage.models import InspectionObject, Unit, table_of
from tests.support.directory_files import UNITS, write

KNOWN = {"units": {"S-DC", "O-1"}, "inspectors": {"I1", "I2", "I3"}, "items": {"C1", "C2"},
         "objects": {"X1", "X2"}}
HOSTILE = ["", " ", "  X1", "X1 ", "X|1", "X\n1", "\r", "多次", "-1", "²", "٣", "1234567890", "也许", "TRUE",
           " 是 ", "N", "０", "ＡＢＣ　食品（含）", "\x00", "2026-02-30", "2026-2-3", "5%", "0", "100.0000001",
           "I1;I1", "I1；I2", "I1,I9", "I1", "公司", "歇业", "注销", "Office", "实地", "workday", "班", "2026-03-07"]
GOOD = {  # a good value of each column (and a few more), by field
    "id": ["X1", "X2", "X3", "91150602MA0N000009"], "name": ["甲", " 乙 "],
    "kind": ["个体工商户", "外国（地区）企业", "产品"],
    "industry": ["食品（含保健食品）销售", ""], "region": ["东城", "Ａ区"], "unit_id": ["S-DC", "O-1"],
    "address": ["", "某路 1 号"], "status": ["", "存续", "deregistered"], "complaints": ["", "0", "12"],
    "abnormal": ["", "是", "false"], "serious_violation": ["否", "Y"], "key_sector": ["1", "no"],
    "certificate_no": ["", "A1"], "certificate_expiry": ["", "2027-01-01"], "specialties": ["", "食品;药品"],
    "active": ["是", "否"], "wecom_userid": ["", "zhang"], "dingtalk_userid": ["", " li "],
    "members": ["I1;I2", "I1,I2,I3"], "code": ["C1", "C3"], "legal_basis": [""], "specialty": ["食品"],
    "method": ["书面", "onsite"], "inspector_id": ["I1", "I2"], "object_id": ["X1", "X2"], "reason": ["", "亲属"],
    "day": ["2026-01-01", "2026-02-07", "2025-12-31"], "year": ["", "2026"], "office_id": ["O-1"],
    "items": ["C1", "C1;C2"], "ratio_percent": ["5", "12.5%"], "frequency": ["1", "2"],
    "scope": ["", "行业=食品"], "start": ["", "2026-03-01"], "end": ["", "2026-12-31"],
    "units.kind": ["office", "市场监管所"], "holidays.kind": ["休", "workday"], "plans.kind": ["", "定向"],
    "plans.year": ["2026"], "plans.name": ["计划"],
}


def good(kind_name: str, field: str) -> list[str]:
    return GOOD.get(f"{kind_name}.{field}") or GOOD.get(field, [])


def header_of(kind_name: str, optional: bool) -> list[str]:
    return [c.names[0] for c in KINDS[kind_name].columns if c.in_header or optional]


def both(kind_name: str, header: list[str], rows: list[list[str]], check=None):
    kind = KINDS[kind_name]
    mapped, problems = check_header(kind, header)
    assert not problems
    lines = [(n + 2, cells) for n, cells in enumerate(rows)]
    known = KNOWN.__getitem__
    fast = fast_rows(kind, mapped, lines, known, check)
    slow = ParsedFile(kind, [c for c in mapped if c is not None])
    _check_rows(kind, mapped, lines, known, check, slow)
    return fast, slow


def assert_same(fast, slow) -> None:
    if slow.problems:
        assert fast is None, slow.problems  # a refusal is always the row-by-row check's
    else:
        assert fast is not None
        assert [(line, list(row.items())) for line, row in fast] == \
               [(line, list(row.items())) for line, row in slow.rows]


def cells(kind_name: str, header: list[str]) -> st.SearchStrategy[list[str]]:
    fields = [KINDS[kind_name].column_named(name).field for name in header]  # type: ignore[union-attr]
    return st.tuples(*(st.sampled_from(good(kind_name, f) + HOSTILE) for f in fields)).map(list)


@pytest.mark.parametrize("kind_name", sorted(KINDS))
@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(data=st.data(), optional=st.booleans())
def test_the_fast_check_accepts_exactly_what_the_row_by_row_check_accepts(kind_name, data, optional):
    header = header_of(kind_name, optional)
    rows = data.draw(st.lists(st.one_of(cells(kind_name, header), st.just([]), st.just(["", " "]),
                                        cells(kind_name, header).map(lambda r: [*r, "多余"]),
                                        cells(kind_name, header).map(lambda r: r[:-1])), max_size=4))
    assert_same(*both(kind_name, header, rows))


@pytest.mark.parametrize("kind_name", sorted(KINDS))
@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(data=st.data(), optional=st.booleans())
def test_long_files_of_few_distinct_cells_are_checked_alike(kind_name, data, optional):
    """Columns repeating a few values (each distinct cell parsed once, then looked up) —
    also when one of them is bad, or the column holds lists."""
    header = header_of(kind_name, optional)
    templates = data.draw(st.lists(cells(kind_name, header), min_size=1, max_size=3))
    picks = data.draw(st.lists(st.integers(0, len(templates) - 1), min_size=12, max_size=40))
    rows = [list(templates[i]) for i in picks]
    assert_same(*both(kind_name, header, rows))


COLUMNS = [(kind_name, column) for kind_name in sorted(KINDS) for column in KINDS[kind_name].columns]


@pytest.mark.parametrize(("kind_name", "column"), COLUMNS, ids=[f"{k}.{c.field}" for k, c in COLUMNS])
@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(data=st.data())
def test_a_column_of_few_distinct_cells_parses_as_cell_by_cell(kind_name, column, data):
    pool = data.draw(st.lists(st.sampled_from(good(kind_name, column.field) + HOSTILE), min_size=1, max_size=3))
    column_cells = data.draw(st.lists(st.sampled_from(pool), min_size=12, max_size=40))
    try:
        expected = [column.default if not column.in_header and not cell.strip() else column.parse(cell)
                    for cell in column_cells]
    except v.BadValue:
        expected = None
    values = _column_values(column, column_cells)
    assert values == expected
    parsed = [value for value in values or [] if isinstance(value, list) and value is not column.default]
    assert len({id(value) for value in parsed}) == len(parsed)  # no parsed list shared by two rows


@pytest.mark.parametrize("kind_name", sorted(KINDS))
def test_good_files_take_the_fast_path(kind_name):
    header = header_of(kind_name, True)
    fields = [KINDS[kind_name].column_named(name).field for name in header]  # type: ignore[union-attr]
    rows = [[good(kind_name, f)[0] for f in fields], [], ["", ""]]
    fast, slow = both(kind_name, header, rows)
    assert not slow.problems and fast is not None
    assert_same(fast, slow)


GOOD_OBJECT = ["X1", "甲", "个体工商户", "", "", "S-DC", "", "", "", "", "", ""]
BAD_OBJECT_CELLS = [  # (column index, bad value): every column that can refuse
    (0, ""), (0, " X1"), (0, "X|1"), (0, "X\n1"), (0, "X\r1"), (1, ""), (1, "  "), (2, "公司"), (5, "S-NOPE"),
    (5, ""), (5, "S-DC "), (7, "歇业"), (8, "-1"), (8, "²"), (8, "1234567890"), (8, "多次"), (9, "也许"),
    (10, "2"), (11, "真"),
]


@pytest.mark.parametrize(("column", "value"), BAD_OBJECT_CELLS)
def test_each_bad_object_cell_is_left_to_the_row_by_row_check(column, value):
    header = header_of("objects", True)
    bad = list(GOOD_OBJECT)
    bad[column] = value
    fast, slow = both("objects", header, [GOOD_OBJECT, bad])
    assert fast is None and [p.line for p in slow.problems] == [3]


def test_a_repeated_key_a_row_rule_and_an_imports_own_rule_are_left_to_the_row_by_row_check():
    header = header_of("objects", True)
    assert both("objects", header, [GOOD_OBJECT, GOOD_OBJECT])[0] is None
    assert both("teams", ["id", "members"], [["T1", "I1"]])[0] is None  # art. 14: two at least
    assert both("holidays", ["date", "kind"], [["2026-02-02", "班"]])[0] is None  # a workday on a weekday

    def refuse(row: dict) -> None:
        raise v.BadValue("比例过低")

    fast, slow = both("plans", header_of("plans", False), [["2026", "O-1", "计划", "C1", "5", "1", "", "", ""]],
                      refuse)
    assert fast is None and slow.problems[0].reason == "比例过低"


def test_fold_is_normalise_for_every_code_point():
    text = "".join(chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF)
    assert text.translate(v.FOLD) == normalise(text)


def test_constants_given_apart_are_stored_as_if_in_each_row(engine, tmp_path):
    assert import_file(engine, "units", write(tmp_path, "units.csv", UNITS), actor="test").ok
    table = table_of(InspectionObject)
    rows = [{"id": f"B{n}", "name": f"对象{n}", "kind": "个体工商户", "unit_id": "S-DC", "abnormal": n % 2 == 0,
             "complaints": n} for n in range(6)]
    constants = {"listed": True, "market": True}
    with transaction(engine) as session:
        unit = session.connection().execute(select(table_of(Unit).c.id).limit(1)).scalar()
        for row in rows:
            row["unit_id"] = unit
        insert_rows(session.connection(), table, [constants | row for row in rows[:3]])
        assert insert_rows(session.connection(), table, rows[3:], constants) == 3
    with transaction(engine) as session:
        stored = {r.id: r for r in session.connection().execute(select(table).where(table.c.id.like("B%")))}
    skip = {"id", "name", "abnormal", "complaints", "page_key", "updated_at", "created_at"}
    by_rows = [{k: v for k, v in stored[f"B{n}"]._mapping.items() if k not in skip} for n in range(3)]
    by_columns = [{k: v for k, v in stored[f"B{n}"]._mapping.items() if k not in skip} for n in range(3, 6)]
    assert by_columns == by_rows
    assert [(stored[f"B{n}"].abnormal, stored[f"B{n}"].complaints) for n in range(6)] == \
           [(n % 2 == 0, n) for n in range(6)]
    assert all(stored[f"B{n}"].page_key for n in range(6))


# --- The usual file told column-wise (_uniform) and the derived columns (derive_columns) ---


def test_a_file_of_one_width_without_blank_records_takes_the_column_wise_route():
    header = header_of("objects", True)
    lines = [(2, list(GOOD_OBJECT)), (3, ["X2", *GOOD_OBJECT[1:]])]
    mapped, _ = check_header(KINDS["objects"], header)
    assert _uniform(lines, len(mapped), mapped) == ([2, 3], [lines[0][1], lines[1][1]])
    assert _kept(lines, len(mapped)) == _uniform(lines, len(mapped), mapped)


@pytest.mark.parametrize("rows", [
    [GOOD_OBJECT, [], ["X2", *GOOD_OBJECT[1:]]],  # a blank line between
    [GOOD_OBJECT, [""] * 12],  # Excel's empty trailing row, as wide as the header
    [GOOD_OBJECT, [" "] * 12, ["X2", *GOOD_OBJECT[1:]]],  # a row of spaces
    [GOOD_OBJECT[:6], ["X2", *GOOD_OBJECT[1:]]],  # a short row: the optional cells padded
    [[*GOOD_OBJECT, "", " "], ["X2", *GOOD_OBJECT[1:]]],  # empty cells beyond the header
    [[*GOOD_OBJECT, "多余"]],  # a filled cell beyond the header: refused
    [["", *GOOD_OBJECT[1:]]],  # a first cell blank, the others not: refused
    [GOOD_OBJECT, ["X2", "乙", "产品", "", "", "S-DC", "", "注销", "3", "是", "否", "1"]],  # derived market
])
@pytest.mark.parametrize("optional", [True, False])
def test_ragged_and_blank_records_give_the_rows_of_the_row_by_row_check(rows, optional):
    header = header_of("objects", optional)
    rows = [row[:len(header)] if len(row) == 12 and not optional else row for row in rows]
    fast, slow = both("objects", header, rows)
    assert_same(fast, slow)


def test_derived_columns_are_derive_column_by_column():
    kind = KINDS["objects"]
    assert kind.derive_columns is not None
    kinds = ["个体工商户", "产品", "项目", "行为", "有限责任公司"]
    rows = [{"kind": k} for k in kinds]
    assert kind.derive_columns({"kind": kinds}) == {"market": [kind.derive(row)["market"] for row in rows]}
    assert [k for k in (kind.derive({"kind": "x"}))] == ["kind", "market"]  # the order derive adds them


def test_an_objects_file_read_from_disk_gives_the_rows_of_the_row_by_row_check(tmp_path):
    """BOM, quoted values (a comma, a quote, a line break inside), 是/否, CRLF, blank lines."""
    text = ("\ufeff统一社会信用代码,名称,类型,行业,区域,管辖单位,地址,状态,投诉举报数,经营异常,严重违法失信,"
            "重点领域\r\n"
            'X1,"甲,乙 商行",个体工商户,餐饮服务,东城,S-DC,"某路 ""1"" 号\r\n二层",存续,0,是,否,1\r\n'
            "\r\n"
            "X2,丙,产品,,,S-DC,,注销,2,否,是,0\r\n"
            ",,,,,,,,,,,\r\n")
    sheet = read_sheet(write(tmp_path, "objects.csv", text))
    kind = KINDS["objects"]
    mapped, problems = check_header(kind, sheet.header)
    assert not problems
    lines = list(sheet.rows)
    fast = fast_rows(kind, mapped, lines, KNOWN.__getitem__)
    slow = ParsedFile(kind, [c for c in mapped if c is not None])
    _check_rows(kind, mapped, lines, KNOWN.__getitem__, None, slow)
    assert not slow.problems
    assert_same(fast, slow)
    assert [row["market"] for _, row in fast or []] == [True, False]
    assert fast and fast[0][1]["address"] == '某路 "1" 号\r\n二层'


def test_an_xlsx_file_with_excel_dates_gives_the_rows_of_the_row_by_row_check(tmp_path):
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["编号", "姓名", "所属单位", "执法证号", "执法证有效期", "业务专长", "在岗"])
    sheet.append(["I7", "张三", "S-DC", "A1", datetime(2027, 1, 1), "食品;药品", "是"])
    sheet.append(["I8", "李四", "S-DC", None, None, None, False])
    sheet.append([None] * 7)
    path = tmp_path / "inspectors.xlsx"
    book.save(path)
    read = read_sheet(path)
    kind = KINDS["inspectors"]
    mapped, problems = check_header(kind, read.header)
    assert not problems
    lines = list(read.rows)
    fast = fast_rows(kind, mapped, lines, KNOWN.__getitem__)
    slow = ParsedFile(kind, [c for c in mapped if c is not None])
    _check_rows(kind, mapped, lines, KNOWN.__getitem__, None, slow)
    assert not slow.problems
    assert_same(fast, slow)
    assert fast and str(fast[0][1]["certificate_expiry"]) == "2027-01-01" and fast[1][1]["active"] is False
