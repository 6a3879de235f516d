"""What changed since the last reminder sweep, so that a routine tick recomputes the
deadlines of that work only (``bot.reminders.sweep``).

Every session that writes tasks, assignments, results, batches or inspectors appends a
mark in the same transaction (an ORM listener, so the use cases stay as they are):

- ``task:<id>``: a task, one of its assignments or its result changed;
- ``batch:<id>``: a batch's state, due date or lead office changed (a draw stores its
  tasks in bulk and then marks its batch drawn: the batch's tasks are recomputed);
- ``inspector:<id>``: an inspector changed (their unit or accounts): their tasks;
- ``all``: a statement wrote one of those tables in bulk (rows unknown): everything.

Rows written through a bare Connection (``storage.bulk``, an import) are not seen: such a
writer calls ``mark`` itself or changes something that is (a draw marks its batch drawn;
an import changes the fingerprint's last import, ``bot.reminders.sweep.fingerprint_of``).

Marks are plain appended rows (no unique key, no lock shared by the writers); the sweep
deletes exactly the ids it read, so a mark committed while it ran is read by the next.

Nobody sweeps outside working hours (nights, weekends, a holiday week), so marks pile up
meanwhile; ``prune`` replaces more than ``PRUNE_OVER`` of them by one ``all`` (run by the
sweep's ticks outside working hours).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, event, func, insert, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.elements import TextClause

from storage.models.batches import Batch
from storage.models.common import table_of
from storage.models.directory import Inspector
from storage.models.workflow import Assignment, DeadlineMark, Result, Task

ALL = "all"
PRUNE_OVER = 50_000  # marks beyond which the next sweep recomputes everything (as costly by then)
WATCHED = frozenset({"tasks", "assignments", "results", "batches", "inspectors"})
BATCH_FIELDS = ("status", "due", "lead_unit_id")  # what a batch's deadlines depend on
_WRITE = re.compile(r"\b(?:update|insert\s+into|delete\s+from)\s+\"?(\w+)", re.IGNORECASE)


def subjects_of(objects: Iterable[Any]) -> set[str]:
    """The marks for the ORM objects a flush writes."""
    found: set[str] = set()
    for obj in objects:
        if isinstance(obj, Task):
            found.add(f"task:{obj.id}")
        elif isinstance(obj, Assignment | Result):
            found.add(f"task:{obj.task_id}")
        elif isinstance(obj, Batch):
            state = inspect(obj)
            if state.persistent and any(state.attrs[name].history.has_changes() for name in BATCH_FIELDS):
                found.add(f"batch:{obj.id}")
            elif state.deleted:
                found.add(f"batch:{obj.id}")
        elif isinstance(obj, Inspector):
            found.add(f"inspector:{obj.id}")
    return found


def mark(session: Session, subjects: Iterable[str]) -> None:
    """Append marks in ``session``'s transaction."""
    rows = [{"subject": s} for s in sorted(set(subjects))]
    if rows:
        session.connection().execute(insert(table_of(DeadlineMark)), rows)


def piled_up(session: Session, over: int | None = None) -> bool:
    """Whether more than ``over`` (``PRUNE_OVER``) marks wait (counted up to ``over + 1``)."""
    over = PRUNE_OVER if over is None else over
    table = table_of(DeadlineMark)
    counted = select(func.count()).select_from(select(table.c.id).limit(over + 1).subquery())
    return (session.execute(counted).scalar() or 0) > over


def prune(session: Session, over: int | None = None) -> bool:
    """Replace the marks by one ``all`` if more than ``over`` (``PRUNE_OVER``) wait; whether it did.

    Safe whatever else runs: the ``all`` is committed with the deletion, and it stands for
    every mark deleted (the next sweep recomputes everything). A sweep that read some of the
    deleted marks before deletes only the ids it read — the ``all`` stays for the next one;
    a mark not yet committed is not seen, so not deleted. (Deleting marks by age instead —
    ids up to the last sweep's — is not safe on PostgreSQL: ids are taken in the order the
    writers insert, not the order they commit, so a lower id may still be unseen.)"""
    if not piled_up(session, over):
        return False
    table = table_of(DeadlineMark)
    connection = session.connection()
    # the ``all`` first, then the marks below it: it keeps the highest id, so SQLite (which
    # numbers a row past the highest left) never gives a deleted mark's id — one a sweep
    # may have read and will delete — to a mark written later
    kept = connection.execute(insert(table).values(subject=ALL).returning(table.c.id)).scalar_one()
    connection.execute(delete(table).where(table.c.id < kept))
    return True


@event.listens_for(Session, "after_flush")
def _marked_by_flush(session: Session, _context: Any) -> None:
    subjects = subjects_of([*session.new, *session.dirty, *session.deleted])
    if subjects:
        mark(session, subjects)


@event.listens_for(Session, "do_orm_execute")
def _marked_by_statement(state: ORMExecuteState) -> None:
    """A bulk INSERT/UPDATE/DELETE of watched rows through a session: which rows is not
    known, so everything is recomputed at the next sweep."""
    if state.is_select:
        return
    statement = state.statement
    if isinstance(statement, TextClause):
        written = {name.lower() for name in _WRITE.findall(statement.text)}
    else:
        table = getattr(statement, "table", None)
        written = {getattr(table, "name", "")}
    if written & WATCHED:
        mark(state.session, [ALL])
