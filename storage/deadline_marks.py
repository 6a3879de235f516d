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
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.elements import TextClause

from storage.models.batches import Batch
from storage.models.common import table_of
from storage.models.directory import Inspector
from storage.models.workflow import Assignment, DeadlineMark, Result, Task

ALL = "all"
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
