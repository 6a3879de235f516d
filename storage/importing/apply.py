"""Applying a checked directory file: a full snapshot (or ``--partial``) of its kind,
compared with what is stored, written in one transaction with its audit entry.

A full snapshot adds new rows, updates changed ones, relists rows that come back and
delists imported rows that are missing (art. 9: dynamic management; history kept in
``directory_changes``). Conflicts recorded by recusals are never touched; holidays are
replaced per year; plans are a snapshot per year.
"""

from __future__ import annotations

import getpass
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, and_, bindparam, delete, select, true
from sqlmodel import Session

from storage import audit
from storage.db import transaction
from storage.importing.kinds import KINDS, REFERENCE_FIELD, Kind
from storage.importing.parse import ParsedFile, Problem, parse_sheet
from storage.importing.sheets import UnreadableFile, read_sheet
from storage.models import DirectoryChange, ImportRun, utcnow

CHUNK = 5000


@dataclass
class Change:
    action: str  # added | updated | delisted | relisted | removed
    key: tuple
    fields: dict = field(default_factory=dict)  # field → (before, after) for updates


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


Progress = Callable[..., object]  # progress(iterable, total=…, desc=…) → iterable


def import_file(
    engine: Engine,
    kind_name: str,
    path: Path,
    *,
    dry_run: bool = False,
    partial: bool = False,
    actor: str | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """Import ``path`` as ``kind_name``: all of it, or — on any bad row — nothing."""
    kind = KINDS[kind_name]
    actor = actor or f"cli:{getpass.getuser()}"
    outcome = Outcome(kind_name, path, dry_run=dry_run)
    track = progress or (lambda rows, **_: rows)
    try:
        sheet = read_sheet(path)
        with transaction(engine) as session:
            known = _known_ids(session)
            parsed = parse_sheet(kind, sheet, known, lambda rows: track(rows, total=sheet.total, desc="检查"))
            outcome.problems = parsed.problems
            if parsed.problems:
                raise _Refused
            stored = _stored_rows(session, kind, parsed)
            outcome.changes, outcome.unchanged = _compare(kind, parsed, stored, partial)
            if dry_run:
                raise _Refused  # roll back: a dry run writes nothing, not even its audit
            outcome.import_id = _write(session, kind, path, outcome, stored, actor, partial, track)
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
            table = KINDS[kind_name].model.__table__
            column = table.c[REFERENCE_FIELD[kind_name]]
            cache[kind_name] = set(session.connection().execute(select(column).where(table.c.listed == true())).scalars())
        return cache[kind_name]

    return known


def _scope(kind: Kind, parsed: ParsedFile):
    """The stored rows this file is a snapshot of."""
    table = kind.model.__table__
    if kind.name == "conflicts":
        return table.c.origin == "import"
    if kind.name in ("holidays", "plans"):
        years = sorted({row["year"] for _, row in parsed.rows})
        return table.c.year.in_(years)
    return true()


def _stored_rows(session: Session, kind: Kind, parsed: ParsedFile) -> dict[tuple, dict]:
    table = kind.model.__table__
    result = session.connection().execute(select(table).where(_scope(kind, parsed)))
    return {tuple(row[f] for f in kind.key): dict(row) for row in result.mappings()}


def _compare(kind: Kind, parsed: ParsedFile, stored: dict[tuple, dict], partial: bool) -> tuple[list[Change], int]:
    fields = [c.field for c in parsed.columns] + [f for f in ("market", "year") if f in kind.model.__table__.c]
    changes: list[Change] = []
    unchanged = 0
    seen: set[tuple] = set()
    listed_kind = "listed" in kind.model.__table__.c
    for _, row in parsed.rows:
        key = tuple(row[f] for f in kind.key)
        seen.add(key)
        before = stored.get(key)
        if before is None:
            changes.append(Change("added", key, {f: (None, row[f]) for f in row}))
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


def _write(session, kind, path, outcome, stored, actor, partial, track) -> int:
    data = path.read_bytes()
    run = ImportRun(kind=kind.name, file_name=path.name, file_sha256=hashlib.sha256(data).hexdigest(),
                    partial=partial, actor=actor, counts=outcome.counts())
    session.add(run)
    session.flush()
    table = kind.model.__table__
    connection = session.connection()
    now = utcnow()
    listed_kind = "listed" in table.c
    key_match = and_(*(table.c[f] == bindparam(f"key_{f}") for f in kind.key))
    history: list[dict] = []
    by_action: dict[str, list[Change]] = {}
    for change in outcome.changes:
        by_action.setdefault(change.action, []).append(change)
        if change.action != "added":
            history.append({"import_id": run.id, "kind": kind.name, "key": "|".join(map(str, change.key)),
                            "action": change.action, "before": _jsonable(stored[change.key])})

    def chunks(rows, desc):
        for start in track(range(0, len(rows), CHUNK), total=(len(rows) + CHUNK - 1) // CHUNK, desc=desc):
            yield rows[start:start + CHUNK]

    added = [{f: after for f, (_, after) in c.fields.items()} for c in by_action.get("added", [])]
    bookkeeping = {"listed": True, "first_import_id": run.id, "last_import_id": run.id,
                   "updated_at": now, "delisted_at": None} if listed_kind else {"import_id": run.id}
    if kind.name == "conflicts":
        bookkeeping |= {"origin": "import", "declared_at": now}
    for chunk in chunks(added, "写入"):
        connection.execute(table.insert(), [row | bookkeeping for row in chunk])

    for action in ("updated", "relisted"):
        rows = by_action.get(action, [])
        for field_names in {tuple(sorted(c.fields)) for c in rows}:
            same_shape = [c for c in rows if tuple(sorted(c.fields)) == field_names]
            values = {f: bindparam(f"new_{f}") for f in field_names}
            if listed_kind:
                values |= {"listed": True, "delisted_at": None, "last_import_id": run.id, "updated_at": now}
            statement = table.update().where(key_match).values(values)
            for chunk in chunks(same_shape, "更新"):
                connection.execute(statement, [_key_params(kind, c) | {f"new_{f}": after for f, (_, after) in c.fields.items()}
                                               for c in chunk])

    if delisted := by_action.get("delisted"):
        statement = table.update().where(key_match).values(listed=False, delisted_at=now, last_import_id=run.id)
        for chunk in chunks(delisted, "停用"):
            connection.execute(statement, [_key_params(kind, c) for c in chunk])
    if removed := by_action.get("removed"):
        statement = delete(table).where(key_match)
        connection.execute(statement, [_key_params(kind, c) for c in removed])

    for chunk in chunks(history, "留痕"):
        connection.execute(DirectoryChange.__table__.insert(), chunk)
    audit.record(session, actor, "directory.import", kind.name, import_id=run.id, file=path.name,
                 sha256=run.file_sha256, partial=partial, counts=outcome.counts())
    return run.id


def _key_params(kind: Kind, change: Change) -> dict:
    return {f"key_{f}": value for f, value in zip(kind.key, change.key)}


def _jsonable(row: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def _audit_refusal(engine: Engine, kind_name: str, path: Path, outcome: Outcome, actor: str) -> None:
    if outcome.dry_run and not outcome.problems:
        return
    with transaction(engine) as session:
        audit.record(session, actor, "directory.import_refused", kind_name, file=path.name,
                     dry_run=outcome.dry_run, bad_lines=len(outcome.problems),
                     first=[p.line for p in outcome.problems[:20]])
