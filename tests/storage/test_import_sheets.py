"""Reading a CSV without quotes in one call (storage.importing.sheets, issue 20): the same
records with the same line numbers as reading it record by record, and a broken record
refused naming the same line."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.importing.sheets import UnreadableFile, _numbered, _one_record_a_line, read_sheet
from tests.support.directory_files import OBJECTS, write

#: Separators, every line end csv and io know (and some they do not), blanks, CJK.
PIECES = st.sampled_from([",", "\n", "\r", "\r\n", "\n\n", " ", "a", "中", "\x0b", "\x0c", "\x1c", "\u2028", "\x85",
                          "'", "\t", "1"])


def both(text: str):
    def read(how):
        reader = csv.reader(io.StringIO(text, newline=""))
        next(reader, None)
        try:
            return list(how(reader))
        except UnreadableFile as exc:
            return str(exc)

    return read(lambda reader: _numbered(reader, lambda _line, cells: cells)), \
        read(lambda reader: _one_record_a_line(text, reader))


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=40).map("".join))
def test_a_file_without_quotes_is_numbered_as_record_by_record(body):
    by_record, at_once = both("id,name\n" + body)
    assert at_once == by_record


def test_a_broken_record_names_its_line_either_way():
    limit = csv.field_size_limit()
    csv.field_size_limit(20)
    try:
        by_record, at_once = both("id,name\na,b\n\nc,d\n" + "x" * 30 + ",e\nf,g\n")
    finally:
        csv.field_size_limit(limit)
    assert isinstance(at_once, str) and at_once == by_record and "5" in at_once


def test_a_file_with_quotes_or_a_nul_is_read_record_by_record(tmp_path):
    quoted = OBJECTS.replace("林荫路1号", '"林荫路\n1号"')
    sheet = read_sheet(write(tmp_path, "q.csv", quoted))
    assert [line for line, _ in sheet.rows] == [2, 4, 5]  # the quoted cell spans lines 2 and 3
    plain = read_sheet(write(tmp_path, "p.csv", OBJECTS))
    assert [(line, cells[0]) for line, cells in plain.rows] == \
           [(2, "91150602MA0N000001"), (3, "91150602MA0N000002"), (4, "L-产品-0007")]
    with pytest.raises(UnreadableFile):
        list(read_sheet(write(tmp_path, "n.csv", OBJECTS.replace("林荫路", "林\x00荫路"))).rows)
