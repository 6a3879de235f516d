"""Inbound deliveries: the dedupe key and the durable work queue in one row.

Taking a delivery is ``INSERT … ON CONFLICT DO NOTHING`` on (platform, delivery key):
a retry that reaches another instance finds the row and is a duplicate. The row holds
the neutral event, so the work it asks for survives a crash between the platform's
acknowledgement and the handler; any instance claims what is pending or abandoned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Dialect, Text, and_, bindparam, or_, text, update
from sqlmodel import Session, select

from storage.models import InboundDelivery, table_of


def take(session: Session, deliveries: Sequence[tuple[str, str, dict]], now: datetime) -> set[tuple[str, str]]:
    """Insert (platform, delivery key, event) rows; returns the keys that were new."""
    if not deliveries:
        return set()
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return _take_in_process(connection, deliveries, now)
    return _take_in_one_statement(connection, deliveries, now)


_TABLE = table_of(InboundDelivery)
# A new row: pending, no attempts yet, due at once. ON CONFLICT makes a retry a no-op.
_INSERT = f"INSERT INTO {_TABLE.name} (platform, delivery_key, event, received_at, status, attempts, next_attempt_at) "
_NEW = "'pending', 0"
_TAKE_ONE = _INSERT + f"VALUES (?, ?, ?, ?, {_NEW}, ?) ON CONFLICT (platform, delivery_key) DO NOTHING"
_TAKE_ROUND = text(
    _INSERT + f"SELECT platform, delivery_key, event, :now, {_NEW}, :now "
    "FROM json_to_recordset(CAST(:round AS JSON)) AS batch (platform TEXT, delivery_key TEXT, event JSON) "
    "ON CONFLICT (platform, delivery_key) DO NOTHING RETURNING platform, delivery_key"
).bindparams(bindparam("round", type_=Text), bindparam("now", type_=_TABLE.c.received_at.type))


def _take_in_one_statement(connection: Connection, deliveries: Sequence[tuple[str, str, dict]],
                           now: datetime) -> set[tuple[str, str]]:
    """PostgreSQL: the whole round in one statement, its rows as one JSON document that
    the server takes apart. The text is the same whatever the round's size, so the
    driver converts it once and the server prepares it once (a multi-row ``VALUES``
    differs with every size, and past 50 parameters psycopg parses its text again for
    every round). A ``json`` column keeps each event's text as ``json.dumps`` wrote it,
    as the ORM would have."""
    round_ = json.dumps([{"platform": platform, "delivery_key": key, "event": event}
                         for platform, key, event in deliveries])
    return {tuple(row) for row in connection.execute(_TAKE_ROUND, {"round": round_, "now": now})}


def _take_in_process(connection: Connection, deliveries: Sequence[tuple[str, str, dict]],
                     now: datetime) -> set[tuple[str, str]]:
    """SQLite, in this process: one prepared statement per row, whose row count says
    whether the row is new. This is the acknowledgement of every callback, and a
    multi-row ``RETURNING`` costs more per row in SQLAlchemy's bind processing than
    SQLite takes to store the row; the values still go through the columns' own types."""
    stamp = _bind_processor(_TABLE.c.received_at, connection.dialect)(now)
    as_json = _bind_processor(_TABLE.c.event, connection.dialect)
    cursor = connection.connection.cursor()
    new = set()
    try:
        for platform, key, event in deliveries:
            cursor.execute(_TAKE_ONE, (platform, key, as_json(event), stamp, stamp))
            if cursor.rowcount == 1:
                new.add((platform, key))
    finally:
        cursor.close()
    return new


def _bind_processor(column: ColumnElement[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """What SQLAlchemy does to a value bound to ``column`` (its type, then the dialect's)."""
    return column.type.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(_TABLE.c.status == "pending", _TABLE.c.next_attempt_at <= now)


def _abandoned(now: datetime, lease: timedelta) -> ColumnElement[bool]:
    return and_(_TABLE.c.status == "processing", _TABLE.c.claimed_at < now - lease)


def claim(session: Session, owner: str, now: datetime, *, keys: Sequence[tuple[str, str]] | None = None,
          batch: int = 20, lease: timedelta = timedelta(seconds=60)) -> list:
    """Claim the given deliveries, or up to ``batch`` abandoned or due ones (oldest due
    first), for ``owner``. Every claim counts in ``attempts``, also one whose handling
    never finished (the process died in it): the caller gives up on a row claimed too
    often (``bot.chat.pipeline``)."""
    if keys is None:
        # Two index range scans on (status, …) rather than one OR over the whole table:
        # the table keeps every delivery done, so a claim must not walk past them.
        pick = select(_TABLE.c.platform, _TABLE.c.delivery_key)
        abandoned = pick.where(_abandoned(now, lease)).limit(batch)
        due = pick.where(_due(now)).order_by(_TABLE.c.next_attempt_at)
        if session.get_bind().dialect.name == "postgresql":
            abandoned, due = (pick.with_for_update(skip_locked=True) for pick in (abandoned, due))
        keys = [tuple(row) for row in session.execute(abandoned)]
        if len(keys) < batch:
            keys += [tuple(row) for row in session.execute(due.limit(batch - len(keys)))]
    if not keys:
        return []
    by_platform: dict[str, list[str]] = {}
    for platform, key in keys:
        by_platform.setdefault(platform, []).append(key)
    # ``platform = ? AND delivery_key IN (…)`` per platform, not a row-value IN: SQLite
    # plans that one through the status index, over every pending row of a backlog.
    which = or_(*(and_(_TABLE.c.platform == platform, _TABLE.c.delivery_key.in_(platform_keys))
                  for platform, platform_keys in by_platform.items()))
    # Core, not the ORM: the hot path of every delivery (a cached statement, plain rows back).
    claimed = session.execute(
        update(_TABLE)
        .where(which, or_(_due(now), _abandoned(now, lease)))
        .values(status="processing", owner=owner, claimed_at=now, attempts=_TABLE.c.attempts + 1)
        .returning(_TABLE.c.platform, _TABLE.c.delivery_key, _TABLE.c.event, _TABLE.c.attempts,
                   _TABLE.c.received_at)
    ).all()
    order = {key: place for place, key in enumerate(keys)}  # RETURNING has no order; a person's messages do
    return sorted(claimed, key=lambda row: order[(row.platform, row.delivery_key)])


# A handler's own row, while it still holds it: cached statements (built and keyed once,
# not per delivery).
_MINE = and_(_TABLE.c.platform == bindparam("m_platform"), _TABLE.c.delivery_key == bindparam("m_key"),
             _TABLE.c.owner == bindparam("m_owner"), _TABLE.c.status == "processing")
_FINISH = update(_TABLE).where(_MINE).values(status="done", done_at=bindparam("m_now"), error=None)
_GIVE_BACK = update(_TABLE).where(_MINE).values(status=bindparam("m_status"), next_attempt_at=bindparam("m_retry"),
                                                error=bindparam("m_error"),
                                                attempts=_TABLE.c.attempts - bindparam("m_refund"))


def _mine(platform: str, key: str, owner: str) -> dict[str, str]:
    return {"m_platform": platform, "m_key": key, "m_owner": owner}


def finish(session: Session, platform: str, key: str, owner: str, now: datetime) -> bool:
    """Mark the work done, in the handler's own transaction (False: it was taken over)."""
    return session.exec(_FINISH, params=_mine(platform, key, owner) | {"m_now": now}).rowcount == 1


def give_back(session: Session, platform: str, key: str, owner: str, error: str, retry_at: datetime,
              *, give_up: bool, refund: bool = False) -> None:
    """After a handler failed: try again later, or stop (``failed``) after the last attempt.
    ``refund``: the claim does not count as an attempt (the database was out, not the work)."""
    session.execute(_GIVE_BACK, _mine(platform, key, owner) | {
        "m_status": "failed" if give_up else "pending", "m_retry": retry_at, "m_error": error,
        "m_refund": 1 if refund else 0})
