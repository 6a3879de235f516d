"""Many rows into one table at the driver's speed: SQLite's ``executemany`` and
PostgreSQL's ``COPY``, rather than SQLAlchemy's per-row parameter processing.

Each value is converted by its own column's type (JSON, sealed text, instants) exactly as
an ``insert()`` through SQLAlchemy would store it, and a column a row does not name takes
its model's default, as there. Used where a use case stores thousands of rows at once (a draw's
tasks and assignments, an import's additions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from itertools import groupby, repeat
from typing import Any

from sqlalchemy import Column, Connection, Dialect, Table

from storage.sealing import SealedText


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                constants: Mapping[str, Any] | None = None) -> int:
    """Insert ``rows`` (dicts of column name → value), each with the ``constants`` it does not
    name itself (an import's bookkeeping), into ``table``; returns how many."""
    constants = constants or {}
    for given, same in groupby(rows, key=_names):  # one statement per set of columns
        fixed = tuple(value for name, value in constants.items() if name not in given)
        names = given + tuple(name for name in constants if name not in given)
        insert_tuples(connection, table, names, [tuple(row.values()) + fixed for row in same])
    return len(rows)


def _names(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(row)


class _Row:
    """What a column's default function is handed by SQLAlchemy, as far as ours use it:
    the parameters of the row being inserted."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.row = row

    def get_current_parameters(self) -> Mapping[str, Any]:
        return self.row


def _defaults(table: Table, given: tuple[str, ...]) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
    """For each column not given that has a model default: the default of a row."""
    found: dict[str, Callable[[Mapping[str, Any]], Any]] = {}
    for column in table.columns:
        default = column.default
        if column.name in given or default is None:
            continue
        arg: Any = getattr(default, "arg", None)  # a scalar or a function of the row (ColumnDefault)
        if default.is_scalar:
            found[column.name] = _constant(arg)
        elif default.is_callable:
            found[column.name] = _computed(arg)
    return found


def _constant(value: Any) -> Callable[[Mapping[str, Any]], Any]:
    return lambda row: value


def _computed(make: Callable[[_Row], Any]) -> Callable[[Mapping[str, Any]], Any]:
    return lambda row: make(_Row(row))


def insert_tuples(connection: Connection, table: Table, names: Sequence[str], rows: Iterable[tuple]) -> int:
    """``insert_rows`` for rows given as tuples in the order of ``names``, for many rows
    repeating a few values (a draw's tasks: the same strata and items, one instant): each
    distinct value of a column is converted by its column's type once, and no dict is made
    per row. Columns not named take their model's defaults as in ``insert_rows``; returns
    how many rows were stored."""
    names = tuple(names)
    defaults = _defaults(table, names)
    constant = {name: default for name, default in defaults.items()
                if getattr(table.c[name].default, "is_scalar", False)}
    computed = {name: default for name, default in defaults.items() if name not in constant}
    columns = names + tuple(constant) + tuple(computed)
    dialect = connection.dialect
    convert = [_memoised(table.c[name], dialect) for name in columns]
    tail = tuple(convert[len(names) + n](default({})) for n, default in enumerate(constant.values()))
    skip = len(names) + len(constant)
    rows = list(rows)
    if not rows:
        return 0
    by_column: list[Sequence[Any]] = list(zip(*rows, strict=True))
    if computed:  # a default that reads its row (objects.page_key): computed per row, kept as a column
        given = [dict(zip(names, row)) for row in rows]
        by_column += [list(map(default, given)) for default in computed.values()]
    made = [column if c is _same else list(map(c, column))  # each converter mapped over its column
            for c, column in zip(convert[:len(names)] + convert[skip:], by_column, strict=True)]
    prepared = list(zip(*made[:len(names)], *(repeat(value) for value in tail), *made[len(names):]))
    if prepared:
        _insert_converted(connection, table, columns, prepared)
    return len(prepared)


def _memoised(column: Column, dialect: Dialect) -> Callable[[Any], Any]:
    """A column's bind processor remembering what it made of each value it can tell apart
    exactly (``1``, ``1.0`` and ``True`` are equal keys but not the same JSON). A sealed
    column is not remembered: equal plaintexts must not share one ciphertext."""
    convert = column.type.dialect_impl(dialect).bind_processor(dialect)
    if convert is None:
        return _same
    if isinstance(column.type, SealedText):
        return convert
    made: dict[tuple, Any] = {}

    def once(value: Any) -> Any:
        kind = type(value)
        if kind not in _EXACT and not (kind is tuple and all(type(part) is str for part in value)):
            return convert(value)
        key = (kind, value, value.utcoffset()) if kind is datetime else (kind, value)  # the same instant
        try:
            return made[key]
        except KeyError:
            made[key] = result = convert(value)
            return result
    return once


_EXACT = frozenset({str, int, bool, type(None), datetime, date})


def _same(value: Any) -> Any:
    return value


def _insert_converted(connection: Connection, table: Table, names: tuple[str, ...], rows: list[tuple]) -> None:
    """Rows whose values are already what the driver takes, in one statement."""
    dialect = connection.dialect
    quote = dialect.identifier_preparer
    target = f"{quote.format_table(table)} ({', '.join(quote.quote(name) for name in names)})"
    if dialect.name == "postgresql":
        cursor = connection.connection.cursor()
        with cursor.copy(f"COPY {target} FROM STDIN") as copy:  # psycopg 3
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in names)
    connection.exec_driver_sql(f"INSERT INTO {target} VALUES ({marks})", rows)
