"""Reading a directory file — CSV (UTF-8 with or without BOM, or GB18030) or XLSX —
into its header and rows of text, each with the line number a person sees."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from itertools import count
from pathlib import Path
from typing import Any

from bot.texts import say


class UnreadableFile(Exception):
    """The file cannot be read at all (not a row problem); the message says why."""


@dataclass(frozen=True)
class Sheet:
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]  # (line number, cells); the header is line 1
    total: int | None  # number of data lines, when known up front (for progress)
    sha256: str  # of the file's bytes, as read once


def read_sheet(path: Path) -> Sheet:
    """Open ``path`` by its extension and return its header and rows."""
    if not path.exists():
        raise UnreadableFile(say("import", "no_such_file", path=str(path)))
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv", ".txt", ""):
        raise UnreadableFile(say("import", "unknown_format", path=str(path)))
    data = path.read_bytes()
    read = _read_xlsx if suffix == ".xlsx" else _read_csv
    return read(path, data)


def decode(data: bytes) -> str:
    """Excel saves CSV as UTF-8 with a BOM or, on Chinese Windows, as GB18030."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(say("import", "bad_encoding")) from exc


def _read_csv(path: Path, data: bytes) -> Sheet:
    text = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise UnreadableFile(say("import", "empty_file", path=str(path))) from None
    except csv.Error as exc:
        raise UnreadableFile(say("import", "bad_csv", line=1, error=str(exc))) from None
    total = text.count("\n")
    if '"' in text or "\x00" in text:  # a quoted cell may span lines; a NUL anywhere: find its line
        rows = _numbered(reader, _checked if "\x00" in text else _as_is)
    else:
        rows = _one_record_a_line(text, reader)
    return Sheet([cell.strip() for cell in header], rows, total, hashlib.sha256(data).hexdigest())


def _numbered(reader: Any, checked: Callable[[int, list[str]], list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Each record with the line it starts on; a broken record is the file's problem, at its line."""
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UnreadableFile(say("import", "bad_csv", line=start, error=str(exc))) from None
        yield start, checked(start, cells)
        start = reader.line_num + 1


def _one_record_a_line(text: str, reader: Any) -> Iterator[tuple[int, list[str]]]:
    """``_numbered`` for a file without a quote: no record spans lines, so the records are
    read in one call and numbered in order (issue 20: the per-record bookkeeping was a tenth
    of a large import). On a broken record the file is read again record by record, so the
    problem names its line as ``_numbered`` does."""
    start = reader.line_num + 1
    try:
        records = list(reader)
    except csv.Error:
        again = csv.reader(io.StringIO(text, newline=""))
        next(again)  # the header
        yield from _numbered(again, _as_is)
        return
    yield from zip(count(start), records)


def _read_xlsx(path: Path, data: bytes) -> Sheet:
    from openpyxl import load_workbook  # only XLSX users pay for the import

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise UnreadableFile(say("import", "bad_xlsx", path=str(path), error=str(exc))) from None
    sheet = book.worksheets[0]
    values = sheet.iter_rows(values_only=True)
    try:
        header = [cell_text(v).strip() for v in next(values)]
    except StopIteration:
        raise UnreadableFile(say("import", "empty_file", path=str(path))) from None
    except Exception as exc:  # the worksheet itself is damaged
        raise UnreadableFile(say("import", "bad_xlsx", path=str(path), error=str(exc))) from None
    while header and header[-1] == "":
        header.pop()
    total = (sheet.max_row - 1) if sheet.max_row else None

    def rows() -> Iterator[tuple[int, list[str]]]:
        line = 1
        try:
            for line, row in enumerate(values, start=2):
                yield line, _checked(line, [cell_text(v) for v in row[: len(header)]])
        except UnreadableFile:
            raise
        except Exception as exc:  # a damaged worksheet shows only as rows are read
            raise UnreadableFile(say("import", "bad_xlsx", path=str(path), error=f"{line + 1}: {exc}")) from None
        finally:
            book.close()

    return Sheet(header, rows(), total, hashlib.sha256(data).hexdigest())


def _checked(line: int, cells: list[str]) -> list[str]:
    if any("\x00" in cell for cell in cells):
        raise UnreadableFile(say("import", "nul_in_cell", line=line))
    return cells


def _as_is(line: int, cells: list[str]) -> list[str]:
    return cells


def cell_text(value: object) -> str:
    """An XLSX cell as the text a person typed (dates as YYYY-MM-DD, 3.0 as 3)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
