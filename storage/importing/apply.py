"""Applying a checked directory file: a full snapshot (or ``--partial``) of its kind,
compared with what is stored, written in one transaction with its audit entry.

A full snapshot adds new rows, updates changed ones, relists rows that come back and
delists imported rows that are missing (art. 9: dynamic management; history kept in
``directory_changes``). Conflicts recorded by recusals are never touched; holidays are
replaced per year; plans are a snapshot per year.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlmodel import Session, SQLModel

from bot.bulkwork import collections_paused
from storage import audit
from storage.bulk import insert_rows, insert_tuples
from storage.db import transaction
from storage.importing.kinds import KINDS, Kind
from storage.importing.parse import ParsedFile, Problem, parse_sheet
from storage.importing.sheets import UnreadableFile, read_sheet
from storage.models import DirectoryChange, ImportRun, table_of, utcnow
from storage.sealing import SealedText, sealer_of

CHUNK = 5000
WHOLE_ROWS_AT_ONCE = 500  # keys named in one query for the history's whole rows
DEFER_INDEXES_FROM = 10_000  # rows added to an empty table (SQLite): build its indexes after


@dataclass
class Change:
    action: str  # added | updated | delisted | relisted | removed
    key: tuple
    fields: dict = field(default_factory=dict)  # field → (before, after) for updates
    row: dict | None = None  # the whole new row, for additions


@dataclass
class Outcome:
    kind: str
    path: Path
    problems: list[Problem] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    import_id: int | None = None
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        counts = {"added": 0, "updated": 0, "relisted": 0, "delisted": 0, "removed": 0}
        for change in self.changes:
            counts[change.action] += 1
        counts["unchanged"] = self.unchanged
        return counts


Progress = Callable[..., Iterable[Any]]  # progress(iterable, total=…, desc=…) → iterable


def import_file(
    engine: Engine,
    kind_name: str,
    path: Path,
    *,
    dry_run: bool = False,
    partial: bool = False,
    actor: str | None = None,
    progress: Progress | None = None,
    after_write: Callable[[Session, Outcome], None] | None = None,
    check: Callable[[dict], None] | None = None,
) -> Outcome:
    """Import ``path`` as ``kind_name``: all of it, or — on any bad row — nothing.

    ``after_write`` runs in the import's transaction once the rows are written (plans
    record their adjustments there); an exception from it undoes the whole import.
    ``check`` is a further rule each parsed row must pass (a plan's minimum ratio).
    """
    with collections_paused():  # its many rows hold no cycles (bot.bulkwork)
        return _import_file(engine, kind_name, path, dry_run=dry_run, partial=partial, actor=actor,
                            progress=progress, after_write=after_write, check=check)


def _import_file(engine: Engine, kind_name: str, path: Path, *, dry_run: bool, partial: bool, actor: str | None,
                 progress: Progress | None, after_write: Callable[[Session, Outcome], None] | None,
                 check: Callable[[dict], None] | None) -> Outcome:
    kind = KINDS[kind_name]
    actor = actor or f"cli:{getpass.getuser()}"
    outcome = Outcome(kind_name, path, dry_run=dry_run)
    track = progress or (lambda rows, **_: rows)
    try:
        sheet = read_sheet(path)
        with transaction(engine) as session:
            known = _known_ids(session)
            parsed = parse_sheet(kind, sheet, known, lambda rows: track(rows, total=sheet.total, desc="检查"),
                                 check)
            outcome.problems = parsed.problems
            if parsed.problems:
                raise _Refused
            stored = _stored_rows(session, kind, parsed)
            outcome.changes, outcome.unchanged = _compare(kind, parsed, stored, partial)
            if dry_run:
                raise _Refused  # roll back: a dry run writes nothing, not even its audit
            outcome.import_id = _write(session, kind, path, sheet.sha256, outcome, parsed, actor, partial, track)
            if after_write is not None:
                after_write(session, outcome)
    except UnreadableFile as exc:
        outcome.problems = [Problem(0, str(exc))]
    except _Refused:
        pass
    if outcome.problems:
        _audit_refusal(engine, kind_name, path, outcome, actor)
    return outcome


class _Refused(Exception):
    """Leave the transaction without writing."""


def _known_ids(session: Session) -> Callable[[str], set[str]]:
    cache: dict[str, set[str]] = {}

    def known(kind_name: str) -> set[str]:
        if kind_name not in cache:
            referred = KINDS[kind_name]
            table = table_of(referred.model)
            column = table.c[referred.key[0]]
            listed = select(column).where(table.c.listed == true())
            cache[kind_name] = set(session.connection().execute(listed).scalars())
        return cache[kind_name]

    return known


def _scope(kind: Kind, parsed: ParsedFile) -> ColumnElement[bool]:
    """The stored rows this file is a snapshot of."""
    table = table_of(kind.model)
    if kind.origin is not None:
        return table.c.origin == kind.origin
    if kind.per_year:  # the file's years, and any of its days stored under another year
        keys = sorted({row[kind.key[0]] for _, row in parsed.rows})
        return or_(table.c.year.in_(sorted({row["year"] for _, row in parsed.rows})), table.c[kind.key[0]].in_(keys))
    return true()


def _fields(kind: Kind, parsed: ParsedFile) -> list[str]:
    """The fields a row of the file sets: its columns', then those derived from them."""
    return [c.field for c in parsed.columns] + list(kind.derived)


def _stored_rows(session: Session, kind: Kind, parsed: ParsedFile) -> dict[tuple, dict]:
    """What the comparison reads of each stored row this file is a snapshot of, by key: the
    key, the file's fields and ``listed`` — not the bookkeeping (the whole rows of the
    changed ones are read for their history by ``_whole_rows``)."""
    table = table_of(kind.model)
    names = list(dict.fromkeys(f for f in (*kind.key, *_fields(kind, parsed), "listed") if f in table.c))
    result = session.connection().execute(select(*(table.c[name] for name in names)).where(_scope(kind, parsed)))
    rows = [dict(zip(names, values)) for values in result.all()]  # Core rows as tuples: no mapping per row
    key = itemgetter(*kind.key)
    return {(key(row),) if len(kind.key) == 1 else key(row): row for row in rows}


def _whole_rows(connection: Connection, kind: Kind, parsed: ParsedFile, keys: list[tuple]) -> dict[tuple, dict]:
    """The stored rows of ``keys`` (in the file's scope), every column, as they are before the write."""
    table = table_of(kind.model)
    columns = [table.c[f] for f in kind.key]
    key = itemgetter(*kind.key)
    found: dict[tuple, dict] = {}
    for start in range(0, len(keys), WHOLE_ROWS_AT_ONCE):
        part = keys[start:start + WHOLE_ROWS_AT_ONCE]
        named = columns[0].in_([k[0] for k in part]) if len(columns) == 1 else tuple_(*columns).in_(part)
        result = connection.execute(select(table).where(_scope(kind, parsed), named))
        names = list(result.keys())
        for values in result.all():
            row = dict(zip(names, values))
            found[(key(row),) if len(kind.key) == 1 else key(row)] = row
    return found


def _compare(kind: Kind, parsed: ParsedFile, stored: dict[tuple, dict], partial: bool) -> tuple[list[Change], int]:
    fields = _fields(kind, parsed)
    same = itemgetter(*fields) if len(fields) > 1 else None  # (the file's fields, for an unchanged row at once)
    changes: list[Change] = []
    unchanged = 0
    seen: set[tuple] = set()
    listed_kind = "listed" in table_of(kind.model).c
    if not stored:  # nothing stored in the file's scope (a first import): every row is new
        return [Change("added", _key_of(kind, row), row=row) for _, row in parsed.rows], 0
    for _, row in parsed.rows:
        key = _key_of(kind, row)
        seen.add(key)
        before = stored.get(key)
        if before is None:
            changes.append(Change("added", key, row=row))
            continue
        if same is not None and not (listed_kind and not before["listed"]) and _equal(same, before, row):
            unchanged += 1  # every field equal: what the diff below would find
            continue
        diff = {f: (before[f], row[f]) for f in fields if f in row and before[f] != row[f]}
        if listed_kind and not before["listed"]:
            changes.append(Change("relisted", key, diff))
        elif diff:
            changes.append(Change("updated", key, diff))
        else:
            unchanged += 1
    if not partial:
        for key, before in stored.items():
            if key in seen:
                continue
            if not listed_kind:
                changes.append(Change("removed", key))
            elif before["listed"]:
                changes.append(Change("delisted", key))
    return changes, unchanged


def _key_of(kind: Kind, row: dict) -> tuple:
    return (row[kind.key[0]],) if len(kind.key) == 1 else tuple(row[f] for f in kind.key)


def _equal(same: Callable[[dict], Any], before: dict, row: dict) -> bool:
    try:
        return bool(same(before) == same(row))
    except KeyError:  # a field the row lacks: compared one by one
        return False


def _write(session: Session, kind: Kind, path: Path, sha256: str, outcome: Outcome, parsed: ParsedFile,
           actor: str, partial: bool, track: Progress) -> int:
    """Write the changes, their history and the audit entry; return the import's id."""
    history = [c for c in outcome.changes if c.action != "added"]
    stored = _whole_rows(session.connection(), kind, parsed, [c.key for c in history])  # before any write
    run = ImportRun(kind=kind.name, file_name=path.name, file_sha256=sha256, partial=partial, actor=actor,
                    counts=outcome.counts())
    session.add(run)
    session.flush()
    assert run.id is not None  # set by the flush
    writer = _Writer(session.connection(), kind, run.id, track)
    by_action: dict[str, list[Change]] = {}
    for change in outcome.changes:
        by_action.setdefault(change.action, []).append(change)
    writer.insert(by_action.get("added", []))
    writer.update(by_action.get("updated", []) + by_action.get("relisted", []))
    writer.delist(by_action.get("delisted", []))
    writer.remove(by_action.get("removed", []))
    writer.keep_history(history, stored)
    audit.record(session, actor, "directory.import", kind.name, import_id=run.id, file=path.name,
                 sha256=run.file_sha256, partial=partial, counts=outcome.counts())
    return run.id


class _Writer:
    """Bulk statements for one import, in chunks so progress can be shown."""

    def __init__(self, connection: Connection, kind: Kind, import_id: int, track: Progress) -> None:
        self.connection, self.kind, self.import_id, self.track = connection, kind, import_id, track
        self.table = table_of(kind.model)
        self.listed_kind = "listed" in self.table.c
        self.key_match = and_(*(self.table.c[f] == bindparam(f"key_{f}") for f in kind.key))
        self.now = utcnow()

    def chunks(self, rows: list[Any], desc: str) -> Iterator[list[Any]]:
        count = (len(rows) + CHUNK - 1) // CHUNK
        for start in self.track(range(0, len(rows), CHUNK), total=count, desc=desc):
            yield rows[start:start + CHUNK]

    def insert(self, changes: list[Change]) -> None:
        """New rows, with the model's defaults for what the file does not set."""
        bookkeeping = _model_defaults(self.kind.model) | {
            name: self.import_id for name in ("first_import_id", "last_import_id", "import_id") if name in self.table.c
        }
        rows = [c.row or {} for c in changes]  # additions always carry their row
        given = tuple(rows[0]) if rows else ()
        with _indexes_deferred(self.connection, self.table, len(rows)):
            if len(given) > 1 and all(map(given.__eq__, map(tuple, rows))):
                # every row names the same fields in the same order (a parsed file's rows do):
                # ``insert_rows``'s tuples — the row's values, then the bookkeeping it does
                # not name — made without a Python step per row (issue 20)
                names = given + tuple(name for name in bookkeeping if name not in given)
                fixed = tuple(value for name, value in bookkeeping.items() if name not in given)
                tuples = list(map(tuple.__add__, map(itemgetter(*given), rows), repeat(fixed)))
                for chunk in self.chunks(tuples, "写入"):
                    insert_tuples(self.connection, self.table, names, chunk)
            else:
                for chunk in self.chunks(rows, "写入"):
                    insert_rows(self.connection, self.table, chunk, bookkeeping)

    def update(self, changes: list[Change]) -> None:
        """Changed fields, grouped by which fields changed (one statement per shape)."""
        shapes: dict[tuple, list[Change]] = {}
        for change in changes:
            shapes.setdefault(tuple(sorted(change.fields)), []).append(change)
        for fields, same_shape in shapes.items():
            values: dict[str, Any] = {f: bindparam(f"new_{f}") for f in fields}
            if self.listed_kind:
                values |= {"listed": True, "delisted_at": None, "last_import_id": self.import_id,
                           "updated_at": self.now}
            statement = self.table.update().where(self.key_match).values(values)
            for chunk in self.chunks(same_shape, "更新"):
                params = [self.key_params(c) | {f"new_{f}": after for f, (_, after) in c.fields.items()}
                          for c in chunk]
                self.connection.execute(statement, params)

    def delist(self, changes: list[Change]) -> None:
        statement = self.table.update().where(self.key_match).values(
            listed=False, delisted_at=self.now, last_import_id=self.import_id)
        for chunk in self.chunks(changes, "停用"):
            self.connection.execute(statement, [self.key_params(c) for c in chunk])

    def remove(self, changes: list[Change]) -> None:
        if changes:
            self.connection.execute(delete(self.table).where(self.key_match), [self.key_params(c) for c in changes])

    def keep_history(self, changes: list[Change], stored: dict[tuple, dict]) -> None:
        sealed = {c.name for c in self.table.columns if isinstance(c.type, SealedText)}  # stays sealed in history
        seal = sealer_of(self.connection).seal_text
        rows = [{"import_id": self.import_id, "kind": self.kind.name, "key": "|".join(map(str, c.key)),
                 "action": c.action,
                 "before": {k: seal(v) if k in sealed else v for k, v in _jsonable(stored[c.key]).items()}}
                for c in changes]
        for chunk in self.chunks(rows, "留痕"):
            insert_rows(self.connection, table_of(DirectoryChange), chunk)

    def key_params(self, change: Change) -> dict:
        return {f"key_{f}": value for f, value in zip(self.kind.key, change.key)}


def _model_defaults(model: type[SQLModel]) -> dict[str, Any]:
    """Each field's default (factories called once), but not an autoincrement key's None
    nor the None of a column whose SQL default fills it (objects.page_key)."""
    defaults = {}
    columns = table_of(model).c
    keys = {column.name for column in table_of(model).primary_key.columns}
    for name, info in model.model_fields.items():
        filled = name in keys or (name in columns and columns[name].default is not None)
        if info.default_factory is not None:
            defaults[name] = info.get_default(call_default_factory=True)
        elif info.default is not PydanticUndefined and not (filled and info.default is None):
            defaults[name] = info.default
    return defaults


@contextmanager
def _indexes_deferred(connection: Connection, table: Table, adding: int) -> Iterator[None]:
    """Many rows into an empty SQLite table: its secondary indexes are dropped before and
    built again after, in the import's transaction (building an index from a full table
    sorts once; keeping seven up to date row by row costs more than the inserts). Each
    index is created again from its own stored ``CREATE INDEX``, so the schema after is the
    schema before. SQLite has one writer and its readers see the last commit, so nobody
    sees the table without them; a failed import rolls the drop back with the rows. Not on
    PostgreSQL, where ``DROP INDEX`` would lock readers out until the commit. Unique
    indexes stay (they are checks)."""
    if (connection.dialect.name != "sqlite" or adding < DEFER_INDEXES_FROM
            or connection.execute(select(literal(1)).select_from(table).limit(1)).first() is not None):
        yield
        return
    indexes = connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL"
        " AND upper(sql) NOT LIKE 'CREATE UNIQUE%'", (table.name,)).all()
    for name, _ in indexes:
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
    yield
    for _, create in indexes:
        connection.exec_driver_sql(create)


def _jsonable(row: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def _audit_refusal(engine: Engine, kind_name: str, path: Path, outcome: Outcome, actor: str) -> None:
    with transaction(engine) as session:
        audit.record(session, actor, "directory.import_refused", kind_name, file=path.name,
                     dry_run=outcome.dry_run, bad_lines=len(outcome.problems),
                     first=[p.line for p in outcome.problems[:20]])
