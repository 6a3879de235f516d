"""Checking a whole directory file before anything is written: header, every cell,
duplicate keys and references. Pure apart from the known ids it is handed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bot.texts import say
from storage.importing.fast import fast_rows
from storage.importing.kinds import Column, Kind
from storage.importing.sheets import Sheet
from storage.importing.values import BadValue


@dataclass(frozen=True)
class Problem:
    line: int  # the file's line (the header is line 1); 0 for the file as a whole
    reason: str


@dataclass
class ParsedFile:
    kind: Kind
    columns: list[Column]  # the columns the file has, in the order of its header
    rows: list[tuple[int, dict]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def check_header(kind: Kind, header: list[str]) -> tuple[list[Column | None], list[Problem]]:
    """Map each header cell to a column; unknown, repeated and missing columns are problems."""
    mapped: list[Column | None] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for name in header:
        column = kind.column_named(name) if name else None
        if name and column is None:
            problems.append(Problem(1, say("import", "unknown_column", name=name, kind=kind.name,
                                           allowed=[c.names[0] for c in kind.columns])))
        elif column is not None and column.field in seen:
            problems.append(Problem(1, say("import", "repeated_column", name=name)))
            column = None
        if column is not None:
            seen.add(column.field)
        mapped.append(column)
    for column in kind.columns:
        if column.in_header and column.field not in seen:
            problems.append(Problem(1, say("import", "missing_column", name=column.names[0],
                                           aliases=column.names[1:])))
    return mapped, problems


def parse_sheet(
    kind: Kind,
    sheet: Sheet,
    known_ids: Callable[[str], set[str]],
    progress: Callable[[Iterable], Iterable] = lambda rows: rows,
    check: Callable[[dict], None] | None = None,
) -> ParsedFile:
    """Parse and check every row; ``known_ids(kind)`` gives the ids a cell may refer to;
    ``check`` is a further whole-row rule of this import (raises ``BadValue``), such as
    the region's minimum ratio of a plan."""
    mapped, problems = check_header(kind, sheet.header)
    parsed = ParsedFile(kind, [c for c in mapped if c is not None], problems=problems)
    if problems:
        return parsed
    lines = list(progress(sheet.rows))
    good = fast_rows(kind, mapped, lines, known_ids, check)  # a clean file, column by column
    if good is not None:
        parsed.rows = good
    else:  # something is wrong: the row-by-row check names every bad row
        _check_rows(kind, mapped, lines, known_ids, check, parsed)
    if kind.complete is not None and not parsed.problems:
        kind.complete([row for _, row in parsed.rows])
    return parsed


def _check_rows(kind: Kind, mapped: list[Column | None], lines: list[tuple[int, list[str]]],
                known_ids: Callable[[str], set[str]], check: Callable[[dict], None] | None,
                parsed: ParsedFile) -> None:
    first_line_of: dict[tuple, int] = {}
    for line, cells in lines:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines and Excel's empty trailing rows
        row: dict = {}
        reasons = _row_reasons(kind, mapped, cells, known_ids, row)
        if not reasons and check is not None:
            try:
                check(row)
            except BadValue as exc:
                reasons.append(str(exc))
        if not reasons:
            key = tuple(row[f] for f in kind.key)
            if key in first_line_of:
                reasons.append(say("import", "duplicate_key", key="、".join(map(str, key)),
                                   line=first_line_of[key]))
            else:
                first_line_of[key] = line
        if reasons:
            parsed.problems.append(Problem(line, "；".join(reasons)))
        else:
            for column in kind.columns:
                row.setdefault(column.field, column.default)  # optional columns the file lacks
            parsed.rows.append((line, kind.derive(row)))


def _row_reasons(kind: Kind, mapped: list[Column | None], cells: list[str], known_ids: Callable[[str], set[str]],
                 row: dict) -> list[str]:
    reasons: list[str] = []
    if len(cells) > len(mapped) and any(cell.strip() for cell in cells[len(mapped):]):
        reasons.append(say("import", "extra_cells", count=len(mapped)))
    cells = cells + [""] * (len(mapped) - len(cells))
    for column, cell in zip(mapped, cells):
        if column is None:
            continue
        if not column.in_header and not cell.strip():
            row[column.field] = column.default  # an empty optional cell means the default
            continue
        try:
            row[column.field] = column.parse(cell)
        except BadValue as exc:
            reasons.append(say("import", "in_column", name=column.names[0], reason=str(exc)))
            continue
        if column.refers_to and row[column.field] is not None:
            ids = row[column.field] if isinstance(row[column.field], list) else [row[column.field]]
            unknown = [i for i in ids if i not in known_ids(column.refers_to)]
            if unknown:
                reasons.append(say("import", "unknown_reference", name=column.names[0],
                                   kind=column.refers_to, ids=unknown))
    if not reasons and kind.check is not None:
        try:
            kind.check(row)
        except BadValue as exc:
            reasons.append(str(exc))
    return reasons
