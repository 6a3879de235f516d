"""Many rows into one table at the driver's speed: SQLite's ``executemany`` and
PostgreSQL's ``COPY``, rather than SQLAlchemy's per-row parameter processing.

Each value is converted by its own column's type (JSON, sealed text, instants) exactly as
an ``insert()`` through SQLAlchemy would store it, and a column a row does not name takes
its model's default, as there. Used where a use case stores thousands of rows at once (a draw's
tasks and assignments, an import's additions).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, Table


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` (dicts of column name → value) into ``table``; returns how many."""
    if not rows:
        return 0
    for given, same in groupby(rows, key=_names):  # one statement per set of columns
        defaults = _defaults(table, given)
        names = given + tuple(defaults)
        _insert(connection, table, names, [tuple(row[name] for name in given)
                                           + tuple(default(row) for default in defaults.values()) for row in same])
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


def _insert(connection: Connection, table: Table, names: tuple[str, ...], values: list[tuple]) -> None:
    dialect = connection.dialect
    converters = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    converted = [tuple(_converted(converters, row)) for row in values]
    quote = dialect.identifier_preparer
    target = f"{quote.format_table(table)} ({', '.join(quote.quote(name) for name in names)})"
    if dialect.name == "postgresql":
        cursor = connection.connection.cursor()
        with cursor.copy(f"COPY {target} FROM STDIN") as copy:  # psycopg 3
            for row in converted:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in names)
    connection.exec_driver_sql(f"INSERT INTO {target} VALUES ({marks})", converted)


def _converted(converters: Sequence[Callable[[Any], Any] | None], row: tuple) -> list[Any]:
    return [value if convert is None else convert(value) for convert, value in zip(converters, row, strict=True)]


def insert_columns(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                   constants: Mapping[str, Any] | None = None) -> int:
    """``insert_rows`` of ``constants | row`` for each row, stored the same, but gathered and
    converted column by column (one ``map`` per column rather than a call per value, a
    constant converted once): for the many wide rows of an import. Returns how many rows."""
    if not rows:
        return 0
    constants = constants or {}
    for given, same in groupby(rows, key=_names):
        group = list(same)
        fixed = {name: value for name, value in constants.items() if name not in given}
        defaults = _defaults(table, given + tuple(fixed))
        names = given + tuple(fixed) + tuple(defaults)
        convert = _converters(connection, table, names)
        columns = [[row[name] for row in group] for name in given]
        columns += [[value] * len(group) for value in fixed.values()]
        seen = [ChainMap(dict(row), fixed) for row in group] if fixed and defaults else group  # what a default reads
        columns += [list(map(default, seen)) for default in defaults.values()]
        constant = len(given) + len(fixed)
        converted = [_converted_column(convert[i], column, len(given) <= i < constant)
                     for i, column in enumerate(columns)]
        _insert_values(connection, table, names, list(zip(*converted)))
    return len(rows)


def _converted_column(convert: Callable[[Any], Any] | None, column: list, constant: bool) -> list:
    if convert is None:
        return column
    return [convert(column[0])] * len(column) if constant else list(map(convert, column))  # a constant: once


def _converters(connection: Connection, table: Table, names: tuple[str, ...]) -> list[Callable[[Any], Any] | None]:
    dialect = connection.dialect
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]


def _insert_values(connection: Connection, table: Table, names: tuple[str, ...], values: list[tuple]) -> None:
    """Converted rows through COPY (PostgreSQL) or executemany (SQLite)."""
    dialect = connection.dialect
    quote = dialect.identifier_preparer
    target = f"{quote.format_table(table)} ({', '.join(quote.quote(name) for name in names)})"
    if dialect.name == "postgresql":
        cursor = connection.connection.cursor()
        with cursor.copy(f"COPY {target} FROM STDIN") as copy:  # psycopg 3
            for row in values:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in names)
    connection.exec_driver_sql(f"INSERT INTO {target} VALUES ({marks})", values)
