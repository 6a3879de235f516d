"""A draw's tasks and assignments stored while matching is still making them.

Matching (DRAW.md §5) is pure Python and holds the interpreter; storing the rows is mostly
SQLite's own B-tree work. On SQLite each chunk of rows goes to the database as ONE
statement, ``INSERT … SELECT … FROM json_each(?)``, run on a second thread: the
``sqlite3`` module lets go of Python's lock for the whole of a statement's step, so the
database stores a chunk on the second core while matching makes the next one. The
statement runs on the draw's own connection and transaction (the main thread does not
use it meanwhile), so a draw that fails later rolls the stored chunks back with
everything else.

What is stored is exactly what ``storage.bulk.insert_tuples`` stores: each value is
converted by its own column's type, the JSON array carries it to SQLite as the same
text or integer (``->>`` gives TEXT for a string, INTEGER for an integer, NULL for
null), rows are inserted in task-list order (``json_each`` walks its array in order, so
ids are given in that order), and an assignment's task is looked up by the unique
``(batch_id, object_id)`` with ``json_each`` forced as the outer loop (``CROSS JOIN``),
so assignments get their ids in the same order too (tests/storage/test_drawrows.py
compares every column, ids included, with the rows ``insert_tuples`` stores).

Without a second thread (``threaded=False``: the draw asks ``bot.bulkwork.spare_core``)
the same statements run in the draw's own thread as each chunk comes. PostgreSQL: the rows are gathered and
stored by ``insert_tuples`` (``COPY``) when the draw's matching is done.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from storage.bulk import _memoised, insert_tuples
from storage.models import Assignment, Task, table_of

CHUNK = 4096  # tasks per statement: the first chunk is all the storing that waits for matching

TASK_COLUMNS = ("batch_id", "position", "object_id", "strata", "items", "team_id", "needs_expert", "status")
ASSIGNMENT_COLUMNS = ("task_id", "inspector_id", "position", "origin", "status", "assigned_at")

# One drawn task: position, object id, strata, items, team id, needs_expert, inspectors (in the order accepted).
Row = tuple[int, str, Sequence[str], Sequence[str], str | None, bool, Sequence[str]]

_DONE = None


class DrawRows:
    """Stores a draw's rows as they come (``add``), all of them stored once ``finish``
    returns. ``abandon`` stops without waiting for what is left (the draw failed; the
    caller rolls the transaction back)."""

    def __init__(self, connection: Connection, batch_id: str, at: datetime, *, chunk: int | None = None,
                 threaded: bool = True) -> None:
        self._connection, self._batch_id, self._at = connection, batch_id, at
        self._chunk = CHUNK if chunk is None else chunk
        self._pending: list[Row] = []
        self._sqlite = connection.dialect.name == "sqlite"
        # On a machine with no core to spare, the chunks are stored by the caller's thread
        # as they come: the same statements, without hand-overs of Python's lock.
        self._threaded = threaded
        self._thread: threading.Thread | None = None
        self._queue: queue.SimpleQueue[list[Row] | None] = queue.SimpleQueue()
        self._failure: BaseException | None = None
        self._stop = False
        if self._sqlite:
            dialect, tasks, assignments = connection.dialect, table_of(Task), table_of(Assignment)
            self._strata, self._items = _memoised(tasks.c.strata, dialect), _memoised(tasks.c["items"], dialect)
            self._flag = _memoised(tasks.c.needs_expert, dialect)
            self._when = _memoised(assignments.c.assigned_at, dialect)(at)
            quote = dialect.identifier_preparer
            task_table, assignment_table = quote.format_table(tasks), quote.format_table(assignments)
            t = ", ".join(quote.quote(name) for name in TASK_COLUMNS)
            a = ", ".join(quote.quote(name) for name in ASSIGNMENT_COLUMNS)
            self._insert_tasks = (
                f"INSERT INTO {task_table} ({t}) SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, "
                f"j.value ->> 3, j.value ->> 4, j.value ->> 5, ?2 FROM json_each(?3) AS j")
            self._insert_assignments = (
                f"INSERT INTO {assignment_table} ({a}) SELECT t.{quote.quote('id')}, j.value ->> 1, j.value ->> 2, "
                f"?1, ?2, ?3 FROM json_each(?4) AS j CROSS JOIN {task_table} AS t "
                f"WHERE t.{quote.quote('batch_id')} = ?5 AND t.{quote.quote('object_id')} = j.value ->> 0")

    def add(self, rows: Sequence[Row]) -> None:
        """More rows, in task-list order after those given before."""
        self._pending += rows
        if self._sqlite and len(self._pending) >= self._chunk:
            self._raise_failure()
            while len(self._pending) >= self._chunk:
                self._send(self._pending[:self._chunk])
                del self._pending[:self._chunk]

    def finish(self) -> None:
        """Every row given stored (on the draw's connection and transaction)."""
        if not self._sqlite:
            self._store_all(self._pending)
            self._pending = []
            return
        if self._pending:
            self._send(self._pending)
            self._pending = []
        self._join()
        self._raise_failure()

    def abandon(self) -> None:
        """Stop storing: the draw failed (its transaction is rolled back by the caller)."""
        self._stop = True
        self._pending = []
        self._join()

    def _send(self, rows: list[Row]) -> None:
        if not self._threaded:
            self._store_chunk(self._connection.connection.dbapi_connection, rows)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="draw-rows", daemon=True)
            self._thread.start()
        self._queue.put(rows)

    def _join(self) -> None:
        if self._thread is not None:
            self._queue.put(_DONE)
            self._thread.join()
            self._thread = None

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _run(self) -> None:
        database = self._connection.connection.dbapi_connection
        assert database is not None
        while (rows := self._queue.get()) is not _DONE:
            if self._stop or self._failure is not None:
                continue  # drain the queue up to _DONE
            try:
                self._store_chunk(database, rows)
            except BaseException as exc:  # raised in the draw's thread by finish
                self._failure = exc

    def _store_chunk(self, database: Any, rows: list[Row]) -> None:
        strata, items, flag = self._strata, self._items, self._flag
        tasks = json.dumps([(n, o, strata(s), items(i), team, flag(expert)) for n, o, s, i, team, expert, _ in rows],
                           ensure_ascii=False, separators=(",", ":"))
        database.execute(self._insert_tasks, (self._batch_id, "drawn", tasks))
        del tasks
        assignments = json.dumps([(o, inspector, p) for _, o, _, _, _, _, inspectors in rows
                                  for p, inspector in enumerate(inspectors)], ensure_ascii=False, separators=(",", ":"))
        database.execute(self._insert_assignments, ("draw", "drawn", self._when, assignments, self._batch_id))

    def _store_all(self, rows: list[Row]) -> None:
        """The rows through ``insert_tuples`` (PostgreSQL: ``COPY``), tasks then their assignments."""
        connection = self._connection
        insert_tuples(connection, table_of(Task), TASK_COLUMNS, [
            (self._batch_id, n, o, s, i, team, expert, "drawn") for n, o, s, i, team, expert, _ in rows])
        tasks = table_of(Task)
        ids = dict(connection.execute(select(tasks.c.position, tasks.c.id).where(
            tasks.c.batch_id == self._batch_id)).all())
        insert_tuples(connection, table_of(Assignment), ASSIGNMENT_COLUMNS, [
            (ids[n], inspector, p, "draw", "drawn", self._at) for n, _, _, _, _, _, inspectors in rows
            for p, inspector in enumerate(inspectors)])
