"""Pools (DRAW.md §2): which objects a stratum draws from, frozen at publication.

A pool is the active, listed objects passing the stratum's scope, minus those the
frequency cap excludes, each with its risk weight. Publication freezes it as the exact
``id|w`` lines of its digest; the draw reads those lines back and refuses to go on if
they no longer hash to the published digest (tampering).
"""

from __future__ import annotations

import hashlib
import operator
import threading
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    String,
    and_,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from bot.rules import ssr1
from bot.rules.risk import RiskWeights, frequency_exempt, weight
from bot.rules.scope import Scope
from storage.models import Batch, InspectionObject, Task, table_of

RUN_LINES = 4096  # lines per run digest: enough to say where a tampered pool changed
DRAWN_STATUSES = ("drawn", "in_progress", "completed")  # "inspected" = tasks of these batches
_objects = table_of(InspectionObject)


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``cap`` inspections since ``since`` (0 = no cap), except for ``exempt`` risk tags."""

    cap: int = 0
    since: datetime | None = None
    exempt: tuple[str, ...] = ()


@dataclass(frozen=True)
class FrozenPool:
    lines: bytes  # b"id|w\n" for every member, sorted by id
    size: int
    digest: str
    runs: list[list[str]]  # [first id, digest of the run's lines]
    packed: bytes | None = field(default=None, repr=False, compare=False)  # ``compressed()``, if made already
    packing: Future[bytes] | None = field(default=None, repr=False, compare=False)  # being made on a thread

    def compressed(self) -> bytes:
        """The lines as stored: zlib, level 6."""
        if self.packed is not None:
            return self.packed
        if self.packing is not None:
            return self.packing.result()
        return zlib.compress(self.lines, 6)


class TamperedPool(Exception):
    """A stored pool no longer hashes to its published digest."""

    def __init__(self, first_ids: list[str]) -> None:
        super().__init__(f"pool changed near {first_ids}")
        self.first_ids = first_ids  # the first id of every run that changed


def scope_condition(scope: Scope, *, scan: bool = False) -> ColumnElement[bool]:
    """The scope as a SQL condition on the objects table (AND across, OR within).

    ``scan``: ``listed`` and ``status`` written so that SQLite cannot walk their indexes
    (it has no statistics and would pick ``ix_objects_status``, which every active object
    matches, then look each row up: half as fast as reading the table through)."""
    c = _objects.c
    conditions = ([cast(c.listed, Integer) == 1, c.status.concat("") == "active"] if scan
                  else [c.listed == true(), c.status == "active"])
    for column, values in ((c.industry, scope.industries), (c.region, scope.regions),
                           (c.kind, scope.kinds), (c.unit_id, scope.units)):
        if values:
            conditions.append(column.in_(values))
    if scope.risks:
        risky = {"complaints": c.complaints > 0, "abnormal": c.abnormal == true(),
                 "serious_violation": c.serious_violation == true(), "key_sector": c.key_sector == true()}
        conditions.append(or_(false(), *(risky[tag] for tag in scope.risks)))
    return and_(*conditions)


def capped_objects(connection: Connection, cap: FrequencyCap) -> set[str]:
    """Objects already inspected ``cap.cap`` times in the window (to avoid 执法扰民, art. 11)."""
    if cap.cap <= 0:
        return set()
    tasks, batches = table_of(Task), table_of(Batch)
    window: list[ColumnElement[bool]] = [batches.c.status.in_(DRAWN_STATUSES)]
    if cap.since is not None:
        window.append(batches.c.drawn_at >= cap.since)
    query = (select(tasks.c.object_id).join(batches, batches.c.id == tasks.c.batch_id).where(*window)
             .group_by(tasks.c.object_id).having(func.count() >= cap.cap))
    return set(connection.execute(query).scalars())


def pool_members(connection: Connection, scope: Scope, weights: RiskWeights,
                 cap: FrequencyCap = FrequencyCap()) -> list[tuple[str, int]]:
    """The pool as ``(id, w)`` sorted by id in Unicode scalar order (DRAW.md notation)."""
    capped = capped_objects(connection, cap)
    c = _objects.c
    rows = connection.execute(select(c.id, c.complaints, c.abnormal, c.serious_violation, c.key_sector)
                              .where(scope_condition(scope)))
    members = [(row.id, weight(row, weights)) for row in rows
               if row.id not in capped or frequency_exempt(row, cap.exempt)]
    members.sort()  # Python orders str by code point: exactly DRAW.md's order
    return members


def frozen_pool(connection: Connection, scope: Scope, weights: RiskWeights,
                cap: FrequencyCap = FrequencyCap()) -> FrozenPool:
    """``freeze(pool_members(…))`` at the speed of the driver: the pool read in one scan
    as two texts joined by the database (``_scanned``), or where that cannot be, the rows
    read from the driver's cursor as plain tuples; each distinct combination of risk marks
    weighed once, the identifiers checked as a whole rather than one by one. Exactly the
    same pool, lines, digest and runs (tests/storage/test_pools_fast.py)."""
    capped = capped_objects(connection, cap)
    scan = connection.dialect.name == "sqlite" and not (scope.industries or scope.regions or scope.kinds
                                                         or scope.units)
    where = scope_condition(scope, scan=scan)
    found = None if capped else _scanned(connection, where, weights)
    ids, heavy = found if found is not None else _rows(connection, where, weights, capped, cap)
    ids.sort()  # Python orders str by code point: exactly DRAW.md's order
    return freeze_sorted(ids, heavy)


def _rows(connection: Connection, where: ColumnElement[bool], weights: RiskWeights, capped: set[str],
          cap: FrequencyCap) -> tuple[list[str], dict[str, int]]:
    """The members' ids (unsorted) and the weights that are not 1, read row by row."""
    c = _objects.c
    result = connection.execute(select(c.id, c.complaints, c.abnormal, c.serious_violation, c.key_sector)
                                .where(where))
    try:
        rows = result.cursor.fetchall()  # the driver's own tuples: no per-row processing needed here
    finally:
        result.close()
    weighed: dict[tuple, int] = {}
    ids: list[str] = []
    heavy: dict[str, int] = {}  # members whose weight is not 1
    for row in rows:
        marks = row[1:]
        w = weighed.get(marks)
        if w is None:
            w = weighed[marks] = weight(_Marks(*marks), weights)
        if capped and row[0] in capped and not frequency_exempt(_Marks(*marks), cap.exempt):
            continue
        ids.append(row[0])
        if w != 1:
            heavy[row[0]] = w
    return ids, heavy


# An object without any risk mark: its weight is 1 whatever the risk rules (``weight``: 1 + 0,
# clamped). Never NULL, so its NOT is exact.
_PLAIN = and_(func.coalesce(_objects.c.complaints, 0) <= 0, func.coalesce(_objects.c.abnormal, false()) == false(),
              func.coalesce(_objects.c.serious_violation, false()) == false(),
              func.coalesce(_objects.c.key_sector, false()) == false())


def _scanned(connection: Connection, where: ColumnElement[bool],
             weights: RiskWeights) -> tuple[list[str], dict[str, int]] | None:
    """``_rows`` in one scan that makes no Python object per row: the database joins the
    ids of the members without a risk mark into one text, and ``id|complaints|abnormal|
    serious_violation|key_sector`` of the marked ones (NULL read as 0, as ``weight`` reads
    it) into another; both are split here. None where a text cannot be split back exactly
    (an id with ``|`` or a newline: import refuses them, and the row path then names it)
    or the dialect has no such aggregate (the caller reads the rows)."""
    c = _objects.c
    name = connection.dialect.name
    if name == "sqlite":
        def joined(value: ColumnElement[str]) -> ColumnElement[str]:
            return func.group_concat(value, "\n")
    elif name == "postgresql":
        def joined(value: ColumnElement[str]) -> ColumnElement[str]:
            return func.string_agg(value, literal("\n"))
    else:
        return None

    def text_of(value: ColumnElement) -> ColumnElement[str]:
        return cast(cast(value, Integer), String)

    marked = c.id.concat("|").concat(text_of(func.coalesce(c.complaints, 0)))
    for mark in (c.abnormal, c.serious_violation, c.key_sector):
        marked = marked.concat("|").concat(text_of(func.coalesce(mark, false())))
    plain_count, plain_text, marked_count, marked_text = connection.execute(select(
        func.count().filter(_PLAIN), joined(c.id).filter(_PLAIN),
        func.count().filter(not_(_PLAIN)), joined(marked).filter(not_(_PLAIN))).where(where)).one()
    ids = plain_text.split("\n") if plain_count else []
    lines = marked_text.split("\n") if marked_count else []
    if len(ids) != plain_count or len(lines) != marked_count:
        return None
    weighed: dict[tuple[str, ...], int] = {}
    heavy: dict[str, int] = {}
    for line in lines:
        member_id, *marks = line.split("|")
        if len(marks) != 4:
            return None
        key = tuple(marks)
        w = weighed.get(key)
        if w is None:
            w = weighed[key] = weight(_Marks(int(marks[0]), *(int(m) != 0 for m in marks[1:])), weights)
        ids.append(member_id)
        if w != 1:
            heavy[member_id] = w
    return ids, heavy


@dataclass(frozen=True)
class _Marks:
    """What ``weight`` and ``frequency_exempt`` read of an object."""

    complaints: int | None
    abnormal: bool | None
    serious_violation: bool | None
    key_sector: bool | None


def freeze_sorted(ids: list[str], heavy: dict[str, int]) -> FrozenPool:
    """``freeze`` for ids already sorted, each of weight ``heavy.get(id, 1)``, checked as a
    whole: every id a valid SSR-1 identifier (``ssr1.check_identifier``), ids strictly
    ascending, weights 1–10. Falls back to ``freeze`` (which names the first bad member)
    when a check fails."""
    if not _valid_sorted(ids, heavy):
        return freeze([(member_id, heavy.get(member_id, 1)) for member_id in ids])
    if heavy:
        lines = [f"{member_id}|{heavy[member_id]}\n" if member_id in heavy else member_id + "|1\n"
                 for member_id in ids]
    else:
        lines = [member_id + "|1\n" for member_id in ids]
    data = "".join(lines).encode()
    # zlib and hashlib let go of Python's lock on large buffers: the pool is compressed on
    # another core while its digest and run digests are computed here (same bytes), and
    # while the caller goes on (publication freezes the roster meanwhile): ``compressed()``
    # waits for it.
    packing = _compressing(data)
    return FrozenPool(data, len(lines), hashlib.sha256(data).hexdigest(), _runs(lines), packing=packing)


def _compressing(data: bytes) -> Future[bytes]:
    """``zlib.compress(data, 6)`` under way on a thread of its own."""
    made: Future[bytes] = Future()

    def compress() -> None:
        try:
            made.set_result(zlib.compress(data, 6))
        except BaseException as exc:  # handed to whoever waits for it
            made.set_exception(exc)

    threading.Thread(target=compress, name="pool-zlib", daemon=True).start()
    return made


def _valid_sorted(ids: list[str], heavy: dict[str, int]) -> bool:
    if not all(type(w) is int and ssr1.MIN_WEIGHT <= w <= ssr1.MAX_WEIGHT for w in heavy.values()):
        return False
    if not ids:
        return True
    try:
        joined = "\n".join(ids)
    except TypeError:  # not every id a str
        return False
    if ids[0] == "" or "|" in joined or "\r" in joined or joined.count("\n") != len(ids) - 1:
        return False  # sorted, an empty id would be first
    del joined
    ends = "".join([member_id[0] + member_id[-1] for member_id in ids])
    if ends.split() != [ends]:  # white space (str.isspace, as str.strip) at an end of an id
        return False
    return all(map(operator.lt, ids, islice(ids, 1, None)))  # strictly ascending: no id twice


def pool_size(connection: Connection, scope: Scope, cap: FrequencyCap = FrequencyCap()) -> int:
    """How many members the pool would have now (before it is frozen)."""
    if cap.cap <= 0:
        return connection.execute(select(func.count()).select_from(_objects).where(scope_condition(scope))).scalar_one()
    return len(pool_members(connection, scope, RiskWeights(), cap))


def freeze(members: Iterable[tuple[str, int]]) -> FrozenPool:
    """The pool's exact lines, digest and run digests (members sorted by id)."""
    lines = [ssr1.pool_line(member_id, w) for member_id, w in members]
    data = "".join(lines).encode()
    return FrozenPool(data, len(lines), hashlib.sha256(data).hexdigest(), _runs(lines))


def thaw(compressed: bytes, digest: str, runs: list[list[str]]) -> bytes:
    """The frozen lines, checked against the published digest.

    Raises:
        TamperedPool: naming the first id of every run of lines that changed.
    """
    try:
        data = zlib.decompress(compressed)
    except zlib.error:
        raise TamperedPool([first for first, _ in runs]) from None
    if hashlib.sha256(data).hexdigest() == digest:
        return data
    now = {first: run_digest for first, run_digest in _runs(data.decode(errors="replace").splitlines(True))}
    changed = [first for first, run_digest in runs if now.get(first) != run_digest]
    raise TamperedPool(changed or [first for first, _ in runs[:1]])


def members_of(data: bytes) -> Iterator[tuple[str, int]]:
    """The ``(id, w)`` of each frozen line."""
    for line in data.decode().splitlines():
        member_id, _, w = line.rpartition("|")
        yield member_id, int(w)


def _runs(lines: list[str]) -> list[list[str]]:
    runs = []
    for start in range(0, len(lines), RUN_LINES):
        run = lines[start:start + RUN_LINES]
        runs.append([run[0].rpartition("|")[0], hashlib.sha256("".join(run).encode()).hexdigest()])
    return runs
