"""Retention: what people typed is not kept beside the records for good.

A conflict declaration lives sealed in its own column (``storage.sealed``); the same
words also pass through the intake (the typed command), and the local console keeps its
chats. The job (``bot.retention``) clears them:

- done and failed inbound deliveries: the text, a click's value and choices and a
  file's name are blanked once the platforms' retry window is long past; the row stays,
  so a late retry is still a duplicate;
- sent outbox rows and console messages older than ``[retention] days`` are deleted,
  except sent cards with a subject (they are found again to be greyed out when their
  work is done, and carry no text a person typed), and messages sent once a year (a
  plan behind its frequency, a missing calendar: their key is what keeps them once),
  which stay a year;
- evidence, results, recusals and the audit log are never touched (监管痕迹).

Each step is idempotent, so instances running it at once only repeat each other; on
PostgreSQL one instance at a time runs it (an advisory lock, skipped when taken).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, bindparam, delete, or_, select, text, update
from sqlmodel import Session

from bot import outbox_keys
from storage.models import ConsoleMessage, InboundDelivery, OutboxMessage, table_of

#: How long a done delivery keeps its text: far past any platform's retry (WeCom retries
#: a callback 3 times within seconds; DingTalk Stream resends an unacknowledged event
#: within minutes), and long enough to look into a failure the same day.
BLANK_AFTER = timedelta(days=1)
CHUNK = 500  # deliveries blanked per statement round (a long backlog in bounded steps)
BLANKED = "blanked"  # the marker a blanked event carries (``Event.from_json`` drops it)
YEAR = timedelta(days=366)  # how long a message sent once a year is kept (``outbox_keys.YEARLY``)

_PG_RETENTION_LOCK = 0x5353_5254  # "SSRT"
_INBOUND = table_of(InboundDelivery)
_OUTBOX = table_of(OutboxMessage)
_CONSOLE = table_of(ConsoleMessage)


@dataclass(frozen=True)
class Purged:
    blanked: int = 0  # inbound deliveries whose text was blanked
    outbox: int = 0  # sent outbox rows deleted
    console: int = 0  # console messages deleted


def purge(session: Session, now: datetime, days: int) -> Purged | None:
    """One retention run as of ``now`` in the caller's transaction; None when another
    instance is running it (PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        got = session.execute(text("SELECT pg_try_advisory_xact_lock(:k)").bindparams(k=_PG_RETENTION_LOCK))
        if not got.scalar():
            return None
    keep = now - timedelta(days=days)
    return Purged(blanked=_blank_deliveries(session, now - BLANK_AFTER),
                  outbox=_delete_sent(session, keep, min(keep, now - YEAR)), console=_delete_console(session, keep))


def blank(event: dict[str, Any]) -> dict[str, Any]:
    """The event without what the person typed or chose: the rest (who, where, when,
    the delivery key) stays for the record of the delivery."""
    out = dict(event, text=None)
    if isinstance(out.get("action"), dict):
        out["action"] = dict(out["action"], value="", choices={})
    if isinstance(out.get("media"), dict):
        out["media"] = dict(out["media"], file_name="")
    out[BLANKED] = True
    return out


def _blank_deliveries(session: Session, before: datetime) -> int:
    event = _INBOUND.c.event
    due = and_(_INBOUND.c.status.in_(("done", "failed")), _INBOUND.c.received_at < before,
               event[BLANKED].as_string().is_(None))
    rewrite = (update(_INBOUND)
               .where(_INBOUND.c.platform == bindparam("k_platform"), _INBOUND.c.delivery_key == bindparam("k_key"))
               .values(event=bindparam("k_event")))
    total = 0
    while True:
        rows = session.execute(select(_INBOUND.c.platform, _INBOUND.c.delivery_key, event).where(due)
                               .limit(CHUNK)).all()
        if not rows:
            return total
        session.connection().execute(rewrite, [{"k_platform": p, "k_key": k, "k_event": blank(e)}
                                               for p, k, e in rows])
        total += len(rows)


def _delete_sent(session: Session, before: datetime, yearly_before: datetime) -> int:
    looked_up_again = and_(_OUTBOX.c.kind == "card", _OUTBOX.c.subject.is_not(None))
    yearly = _OUTBOX.c.subject == outbox_keys.YEARLY
    other = _OUTBOX.c.subject.is_distinct_from(outbox_keys.YEARLY)  # NULL too
    result = session.execute(delete(_OUTBOX).where(
        _OUTBOX.c.status == "sent", ~looked_up_again,
        or_(and_(_OUTBOX.c.sent_at < before, other), and_(_OUTBOX.c.sent_at < yearly_before, yearly))))
    return cast(CursorResult[Any], result).rowcount


def _delete_console(session: Session, before: datetime) -> int:
    return cast(CursorResult[Any], session.execute(delete(_CONSOLE).where(_CONSOLE.c.at < before))).rowcount
