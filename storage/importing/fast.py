"""The check of a clean directory file, column by column rather than cell by cell.

Most files are clean, and checking each cell through ``_row_reasons`` costs several
microseconds of bookkeeping per cell (issue 20). Here each column is parsed in one pass
(C-speed ``map`` over the column's cells, or the same rule as a set or string test), and
the references, whole-row rules and duplicate keys are checked on the whole file.

This path only ever ACCEPTS: it answers the rows of a file in which every row passes every
rule of the per-row check, exactly as that check would parse them, or ``None`` as soon as
anything may be wrong — and the caller then runs the per-row check, which names each bad
row with its reasons (``第 N 行：…``). So a refusal and its messages are the per-row
check's, always; tests/storage/test_import_fast.py holds the two to the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

from storage.importing import values as v
from storage.importing.kinds import Column, Kind

Lines = Sequence[tuple[int, list[str]]]
Bulk = Callable[[Sequence[str]], list | None]  # a column's cells → values, or None if any is bad

_STRIP = str.strip


def fast_rows(kind: Kind, mapped: list[Column | None], lines: Lines, known_ids: Callable[[str], set[str]],
              check: Callable[[dict], None] | None = None) -> list[tuple[int, dict]] | None:
    """The parsed rows of a file whose every row is good, in the per-row check's form
    (file columns in header order, then the absent columns' defaults, then ``derive``);
    ``None`` when any row may have a problem."""
    width = len(mapped)
    found = _uniform(lines, width, mapped) or _kept(lines, width)  # usually the first: one width, no blank
    if found is None:
        return None
    kept_lines, kept = found
    columns = list(zip(*kept)) if kept else [() for _ in mapped]
    fields: list[str] = []
    parsed: list[list] = []
    for column, cells in zip(mapped, columns):
        if column is None:
            continue
        values = _column_values(column, cells)
        if values is None or (column.refers_to and not _all_known(values, known_ids(column.refers_to))):
            return None
        fields.append(column.field)
        parsed.append(values)
    absent = [c for c in kind.columns if c.field not in fields]
    names = fields + [c.field for c in absent]
    by_column = kind.derive_columns is not None and kind.check is None and check is None and bool(parsed)
    if by_column:  # the derived fields as columns too: one dict per row, made once (issue 20)
        assert kind.derive_columns is not None
        parsed += [[c.default] * len(kept) for c in absent]
        derived = kind.derive_columns(dict(zip(names, parsed)))
        names += list(derived)
        rows = [dict(zip(names, values)) for values in zip(*parsed, *derived.values())]
    elif parsed:
        rows = [dict(zip(names, values)) for values in zip(*parsed, *(repeat(c.default) for c in absent))]
    else:
        rows = [dict(zip(names, (c.default for c in absent))) for _ in kept]
    for rule in (kind.check, check):
        if rule is not None:
            try:
                for parsed_row in rows:
                    rule(parsed_row)
            except v.BadValue:
                return None
    keys = list(map(itemgetter(*kind.key), rows))
    if len(set(keys)) != len(keys):
        return None  # a repeated key: the per-row check names both lines
    if by_column:
        return list(zip(kept_lines, rows))
    derive = kind.derive
    return [(line, derive(row)) for line, row in zip(kept_lines, rows)]


def _uniform(lines: Lines, width: int, mapped: list[Column | None]) -> tuple[list[int], list[Sequence[str]]] | None:
    """The line numbers and records of a file whose every record has exactly ``width``
    cells and a first mapped cell that is not blank (so no record is a blank line) — told
    column-wise, without a Python step per record; None for any other file."""
    if not lines or width == 0:
        return None
    numbers, records = zip(*lines)
    if set(map(len, records)) != {width}:
        return None
    first = next((i for i, column in enumerate(mapped) if column is not None and column.in_header), None)
    if first is None or not all(map(_STRIP, map(itemgetter(first), records))):
        return None
    return list(numbers), list(records)


def _kept(lines: Lines, width: int) -> tuple[list[int], list[Sequence[str]]] | None:
    """The line numbers and records (cut or padded to ``width``) that are not blank; None
    when a record has non-blank cells beyond the header's."""
    kept_lines: list[int] = []
    kept: list[Sequence[str]] = []
    for line, row in lines:
        cells: Sequence[str] = row
        if len(cells) != width:
            if len(cells) > width:
                if "".join(cells[width:]).strip():
                    return None  # extra cells: the per-row check names them
                cells = row[:width]
            else:
                cells = row + [""] * (width - len(row))
        if not "".join(cells).strip():
            continue  # blank lines and Excel's empty trailing rows (as any(cell.strip()))
        kept_lines.append(line)
        kept.append(cells)
    return kept_lines, kept


def _column_values(column: Column, cells: Sequence[str]) -> list | None:
    """The column's values: ``column.parse`` of each cell (an optional column's empty cell
    is its default), or None if any cell is refused."""
    bulk = _by_distinct(BULK.get(column.parse) or _each(column.parse))
    if column.in_header:
        return bulk(cells)
    stripped = list(map(_STRIP, cells))
    if all(stripped):
        return bulk(cells)
    filled = [i for i, text in enumerate(stripped) if text]
    values = bulk([cells[i] for i in filled])
    if values is None:
        return None
    out = [column.default] * len(cells)
    for i, value in zip(filled, values):
        out[i] = value
    return out


def _by_distinct(bulk: Bulk) -> Bulk:
    """``bulk`` over a column of few distinct cells (flags, kinds, units, counts): each
    distinct cell parsed once, then looked up (the parsers are functions of the cell alone).
    A column of lists (ids, words) is parsed cell by cell: no two rows share one list."""

    def once_each(cells: Sequence[str]) -> list | None:
        distinct = list(set(cells))
        if len(distinct) * 4 > len(cells):
            return bulk(cells)
        values = bulk(distinct)
        if values is None:
            return None
        if any(isinstance(value, (list, dict, set)) for value in values):
            return bulk(cells)
        return list(map(dict(zip(distinct, values)).__getitem__, cells))

    return once_each


def _all_known(values: list, known: set[str]) -> bool:
    """Every id named (a cell's id, or each id of a cell's list) is known."""
    named = set(chain.from_iterable(value if isinstance(value, list) else (value,) for value in values))
    named.discard(None)
    return named <= known


def _each(parse: Callable[[str], Any]) -> Bulk:
    def bulk(cells: Sequence[str]) -> list | None:
        try:
            return list(map(parse, cells))
        except v.BadValue:
            return None

    return bulk


def _identifiers(cells: Sequence[str]) -> list | None:
    """``values.identifier``: non-empty, no ``|``, CR or LF, no edge spaces."""
    joined = "\x1f".join(cells)
    if "|" in joined or "\n" in joined or "\r" in joined or not all(cells):
        return None
    values = list(cells)
    return values if list(map(_STRIP, values)) == values else None


def _required_texts(cells: Sequence[str]) -> list | None:
    values = list(map(_STRIP, cells))
    return values if all(values) else None


def _optional_texts(cells: Sequence[str]) -> list | None:
    return list(map(_STRIP, cells))


def _folded_texts(cells: Sequence[str]) -> list | None:
    return [text.translate(v.FOLD).strip() for text in cells]


_BOOLEANS = {**dict.fromkeys(v.TRUE, True), **dict.fromkeys(v.FALSE, False)}


def _booleans(cells: Sequence[str]) -> list | None:
    values = [_BOOLEANS.get(text.strip().lower()) for text in cells]
    return None if None in values else values


def _statuses(cells: Sequence[str]) -> list | None:
    table = v.OBJECT_STATUSES
    values = [(table.get(s) or table.get(s.lower())) if s else "active" for s in map(_STRIP, cells)]
    return None if None in values else values


BULK: dict[Callable[[str], Any], Bulk] = {
    v.identifier: _identifiers,
    v.required_text: _required_texts,
    v.optional_text: _optional_texts,
    v.folded_text: _folded_texts,
    v.boolean: _booleans,
    v.status: _statuses,
}

