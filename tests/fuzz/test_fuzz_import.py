"""The directory importers, fuzzed: random CSV and XLSX files of every kind (encodings,
BOMs, invalid bytes, NULs, huge fields, wrong column counts, formulas, typed cells) are
imported all or nothing, with problems that say where.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy import select

from storage.importing import KINDS, import_file
from storage.importing import values as cell_values
from storage.importing.sheets import cell_text, decode
from tests.fuzz.bodies import grown, hostile_text, row_counts, without_nul
from tests.fuzz.harness import OBJECT_IDS, fuzz, is_pg, label, note, pg_only
from tests.support.batch_district import seed_district

CELL_VALUES = st.sampled_from([
    "S-DC", "S-XC", "U-XY", "U-NOPE", *[f"I0{n}" for n in range(1, 9)], "A01", "A02", "A03", "A99", "T1", *OBJECT_IDS,
    "是", "否", "true", "FALSE", "1", "0", "yes", "也许", "2026-01-01", "2026-02-29", "2024-02-29", "0001-01-01",
    "9999-12-31", "2026-1-1", "20260101", "2026-01-01T00:00", "office", "station", "科室", "brigade", "有限责任公司",
    "产品", "个体工商户", "外国（地区）企业", "holiday", "workday", "休", "班", "书面", "实地", "网络", "10", "12.5",
    "100", "100.0000001", "0", "-1", "1e-5", "1E+2", "NaN", "Infinity", "-0", "101%", "5%", "²", "١٢", "I01;I02",
    "I01；I02；I03",
    "I01,I01", "I01;;", "=HYPERLINK(\"http://evil.example\",\"点我\")", "=1+1", "+cmd|' /C calc'!A0", "@SUM(1)",
    "-2+3", "'", "", " ", "\t", "a|b", "a\nb", "2026", "1999", "2101", "2026-03-01", "2026-12-31", "2025-01-01",
    "存续", "注销", "歇业", "x" * 5000, "食品;特种设备", "C1", "15060001",
]) | hostile_text


def _ids(prefix: str, known: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(known) | st.integers(1, 99).map(lambda n: f"{prefix}{n:02d}")


_DATES = st.dates(datetime(2025, 1, 1).date(), datetime(2027, 12, 31).date()).map(lambda d: d.isoformat())
_TEXT = st.text(st.characters(categories=("L", "N", "P", "Zs"), exclude_characters="\u3000"), min_size=1,
                max_size=12)


#: Cells that a column takes (so that some files are good and get written), by field.
GOOD_CELLS = {
    "id": _ids("X", ["S-DC", "S-XC", "U-XY", "I01", "T1", *OBJECT_IDS]), "name": _TEXT,
    "kind": st.sampled_from(["office", "station", "科室"]),  # a unit's; an object's and a day's: KIND_CELLS
    "industry": _TEXT, "region": _TEXT, "unit_id": st.sampled_from(["S-DC", "S-XC", "U-XY"]), "address": _TEXT,
    "status": st.sampled_from(["", "存续", "注销", "active"]), "complaints": st.integers(0, 99).map(str),
    "abnormal": st.sampled_from(["是", "否", "true", "0"]), "serious_violation": st.sampled_from(["是", "否"]),
    "key_sector": st.sampled_from(["是", "否", ""]), "certificate_no": _TEXT, "certificate_expiry": _DATES,
    "specialties": st.sampled_from(["", "食品", "食品;特种设备"]), "active": st.sampled_from(["是", "否", "true"]),
    "wecom_userid": st.sampled_from(["", "insp01", "u1"]), "dingtalk_userid": st.sampled_from(["", "staff01"]),
    "members": st.sampled_from(["I01;I02", "I03；I04", "I05,I06,I07", "I01"]), "code": _ids("A", ["A01", "A02"]),
    "legal_basis": _TEXT, "specialty": st.sampled_from(["", "食品"]),
    "method": st.sampled_from(["书面", "实地", "online"]),
    "inspector_id": _ids("I", ["I01", "I05"]), "object_id": st.sampled_from(OBJECT_IDS), "reason": _TEXT,
    "day": _DATES, "year": st.sampled_from(["", "2026", "2027"]), "office_id": st.just("U-XY"),
    "items": st.sampled_from(["A01", "A01;A02", "A03"]), "ratio_percent": st.sampled_from(["5", "12.5", "100", "1%"]),
    "frequency": st.integers(1, 4).map(str), "scope": _TEXT, "start": _DATES, "end": _DATES,
}


KIND_CELLS = {"objects": st.sampled_from(["有限责任公司", "个体工商户", "产品", "外国(地区)企业"]),
              "holidays": st.sampled_from(["holiday", "workday", "休", "班"])}


@st.composite
def csv_files(draw, kind_name: str, pg: bool) -> bytes:
    """A directory file for ``kind_name`` as people (and attackers) make them: the right
    header or nearly, cells that fit or anything at all, rows of any length, any quoting,
    any encoding, invalid bytes."""
    kind = KINDS[kind_name]
    columns = draw(st.permutations([c for c in kind.columns if c.in_header or draw(st.booleans())]))
    header = []
    for column in columns:
        name = draw(st.sampled_from(column.names))
        header.append(name.upper() if name.isascii() and draw(st.booleans()) else name)
    change = draw(st.sampled_from(["none"] * 6 + ["add", "drop", "repeat", "blank"]))
    if change == "add":
        header.append(draw(hostile_text))
    elif change == "drop" and header:
        header.pop(draw(st.integers(0, len(header) - 1)))
    elif change == "repeat" and header:
        header.append(header[0])
    elif change == "blank":
        header.insert(0, "")
    anything = CELL_VALUES.map(without_nul) if pg else CELL_VALUES  # test_bug_nul_in_an_imported_file
    good = GOOD_CELLS | {"kind": KIND_CELLS.get(kind_name, GOOD_CELLS["kind"])}
    clean = draw(st.integers(0, 2)) == 0  # every cell fits its column
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        wild = 0 if clean else draw(st.integers(0, 3))
        row = [draw(good[c.field] if not wild or draw(st.integers(0, wild)) == 0 else anything) for c in columns]
        if wild and draw(st.booleans()):
            row = row[: draw(st.integers(0, len(row)))] + draw(st.lists(anything, max_size=2))
        rows.append(row)
    out = io.StringIO()
    style = draw(st.sampled_from(["minimal", "minimal", "all", "naive"]))
    terminator = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if style == "naive":
        out.write(terminator.join(",".join(row) for row in [header, *rows]))
    else:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL if style == "all" else csv.QUOTE_MINIMAL,
                            lineterminator=terminator)
        writer.writerows([header, *rows])
    if draw(st.integers(0, 30)) == 0:
        out.write("y" * 140_000)  # past the csv module's field limit
    encoding = draw(st.sampled_from(["utf-8"] * 8 + ["utf-8-sig"] * 3 + ["gb18030"] * 3 + ["utf-16", "latin-1"]))
    data = out.getvalue().encode(encoding, errors="replace")
    if draw(st.integers(0, 7)) == 0:
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(data)))
            bad = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80", b"\xef\xbb\xbf", b'"', b",", b"\r"]
            data = data[:at] + draw(st.sampled_from(bad if pg else [*bad, b"\x00"])) + data[at:]
    return data


def overflowing_count(kind_name: str, rows: list[list[str]]) -> bool:
    """A whole-number cell past the database's integer range (test_bug_integer_overflow_in_an_import)."""
    if not rows:
        return False
    columns = [KINDS[kind_name].column_named(name) for name in rows[0]]
    wide = [i for i, c in enumerate(columns) if c is not None and c.parse in (cell_values.count,
                                                                               cell_values.positive_int)]
    return any(i < len(row) and row[i].strip().isdecimal() and len(row[i].strip()) >= 10
               for row in rows[1:] for i in wide)


def csv_rows(data: bytes) -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO(decode(data), newline="")))
    except Exception:
        return []


DOMAIN_KINDS = sorted(KINDS)


def import_snapshot(engine, kind_name: str) -> tuple[dict, list]:
    table = KINDS[kind_name].model.__table__
    with engine.connect() as connection:
        rows = sorted(map(repr, connection.execute(select(table)).all()))
    return row_counts(engine), rows


def check_import(engine, kind_name: str, path, *, dry_run: bool, partial: bool) -> None:
    """import_file gives an outcome, never an exception; a refused file (or a dry run)
    changes nothing but the audit of the refusal."""
    before = import_snapshot(engine, kind_name)
    outcome = import_file(engine, kind_name, path, dry_run=dry_run, partial=partial, actor="fuzz")
    after = import_snapshot(engine, kind_name)
    note(f"problems {outcome.problems[:3]}, changes {outcome.counts()}")
    label("ok" if outcome.ok else f"refused: {outcome.problems[0].reason[:10]}")
    if outcome.ok:
        if dry_run:
            assert after == before
        else:
            assert grown(before[0], after[0]).get("import_runs") == 1
        return
    for problem in outcome.problems:
        assert isinstance(problem.line, int) and problem.line >= 0
        assert isinstance(problem.reason, str) and problem.reason
    counts_before, rows_before = before
    counts_after, rows_after = after
    assert rows_after == rows_before
    assert grown(counts_before, counts_after) == {"audit_log": 1}


@pytest.fixture
def directory(engine, tmp_path):
    seed_district(engine, tmp_path)
    return engine


@pytest.mark.parametrize("kind_name", DOMAIN_KINDS)
@fuzz(20)
@given(data=st.data(), dry_run=st.booleans(), partial=st.booleans())
def test_csv_imports_are_all_or_nothing(directory, tmp_path, kind_name, data, dry_run, partial):
    """Random CSV of every kind (encodings, BOMs, invalid UTF-8, NULs, huge fields, wrong
    column counts, formulas): ok, or problems with line numbers and nothing written."""
    raw = data.draw(csv_files(kind_name, is_pg(directory)))
    assume(not overflowing_count(kind_name, csv_rows(raw)))
    path = tmp_path / f"fuzz-{kind_name}.csv"
    path.write_bytes(raw)
    check_import(directory, kind_name, path, dry_run=dry_run, partial=partial)


XLSX_CELLS = (CELL_VALUES.map(lambda v: ILLEGAL_CHARACTERS_RE.sub("", v)) | st.integers(-(10**6), 10**8)
              | st.floats(-1e8, 1e8) | st.booleans() | st.none()
              | st.datetimes(datetime(1900, 3, 1), datetime(2100, 1, 1)) | st.dates(datetime(1900, 3, 1).date())
              | st.times())


@pytest.mark.parametrize("kind_name", ["objects", "inspectors", "holidays", "plans"])
@fuzz(15)
@given(data=st.data(), partial=st.booleans())
def test_xlsx_imports_are_all_or_nothing(directory, tmp_path, kind_name, data, partial):
    """Random workbooks (typed cells: numbers, dates, times, booleans, formulas) and random
    bytes named .xlsx: ok or problems, never an exception."""
    kind = KINDS[kind_name]
    path = tmp_path / f"fuzz-{kind_name}.xlsx"
    if data.draw(st.integers(0, 5)) == 0:
        path.write_bytes(data.draw(st.binary(max_size=500) | st.just(b"PK\x03\x04" + b"\x00" * 26)))
    else:
        header = data.draw(st.permutations([c.names[0] for c in kind.columns]))
        rows = data.draw(st.lists(st.lists(XLSX_CELLS, max_size=len(header) + 1), max_size=5))
        assume(not overflowing_count(kind_name, [header] + [[cell_text(v) for v in row] for row in rows]))
        book = Workbook()
        sheet = book.active
        for row in [header, *rows]:
            sheet.append(row)
        book.save(path)
    check_import(directory, kind_name, path, dry_run=False, partial=partial)


# ----- the known bugs: each pinned, strict, until it is fixed ---------------------------------------------------------


def write_file(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_bug_nul_in_an_imported_file(directory, tmp_path):
    pg_only(directory)
    path = write_file(tmp_path, "units.csv", "id,name,kind\nU-XY,信用监管室,office\nS-DC,东城\x00所,station\n".encode())
    check_import(directory, "units", path, dry_run=False, partial=True)


@pytest.mark.parametrize(("kind_name", "content"), [
    ("objects", "id,name,kind,industry,region,unit,complaints\nZ1,甲,个体工商户,,,S-DC,99999999999999999999\n"),
    ("plans", "year,office,name,items,ratio,frequency,scope,start,end\n2026,U-XY,甲,A01,10,99999999999999999999,,,\n"),
])
def test_bug_integer_overflow_in_an_import(directory, tmp_path, kind_name, content):
    check_import(directory, kind_name, write_file(tmp_path, f"{kind_name}.csv", content.encode()), dry_run=False,
                 partial=True)


@pytest.mark.parametrize(("first", "second"), [
    ("date,kind,year\n2025-01-01,holiday,2026\n", "date,kind\n2025-01-01,holiday\n"),
    ("date,kind\n2025-12-31,holiday\n", "date,kind\n2025-12-31,holiday\n2026-01-01,holiday\n"),
])
def test_bug_holiday_filed_under_another_year(directory, tmp_path, first, second):
    assert import_file(directory, "holidays", write_file(tmp_path, "first.csv", first.encode()), actor="fuzz").ok
    check_import(directory, "holidays", write_file(tmp_path, "second.csv", second.encode()), dry_run=False,
                 partial=False)


def xlsx_with_sheet(change) -> bytes:
    book = Workbook()
    book.active.append(["id", "name", "kind"])
    book.active.append(["X9", "甲", "office"])
    plain = io.BytesIO()
    book.save(plain)
    source, out = zipfile.ZipFile(io.BytesIO(plain.getvalue())), io.BytesIO()
    with zipfile.ZipFile(out, "w") as target_:
        for info in source.infolist():
            content = source.read(info.filename)
            target_.writestr(info.filename, change(content) if info.filename == "xl/worksheets/sheet1.xml" else content)
    return out.getvalue()


@pytest.mark.parametrize("damage", ["truncated_xml", "mismatched_tag"])
def test_bug_damaged_xlsx_worksheet(directory, tmp_path, damage):
    if damage == "truncated_xml":
        content = xlsx_with_sheet(lambda b: b[: len(b) // 2])
    else:
        content = xlsx_with_sheet(lambda b: b.replace(b"</row>", b"</wor>", 1))
    check_import(directory, "units", write_file(tmp_path, "units.xlsx", content), dry_run=False, partial=True)


@pytest.mark.parametrize("cell", ["1e-10000000", "1E-999999999"])
def test_bug_ratio_underflow(cell):
    try:
        ratio = cell_values.percent(cell)
    except cell_values.BadValue:
        return
    assert Decimal(ratio) > 0

