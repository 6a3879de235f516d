"""The outbox: messages written with the change that caused them, claimed atomically
by whichever instance's dispatcher gets there first.

A claim is one ``UPDATE … WHERE id IN (…) AND <still claimable> RETURNING`` (portable);
on PostgreSQL the candidates are read ``FOR UPDATE SKIP LOCKED`` and claims are
serialised by an advisory lock, so the per-recipient rate budget read in the claim is
never spent twice. A row whose instance died while sending is claimable again once its
lease has run out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, CursorResult, Update, and_, delete, insert, or_, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from bot.outbound import GROUP, USER, Destination, Message, kind_of, to_payload
from bot.outbox_keys import Key, key_of
from storage.models import OutboxMessage, SendSlot, table_of, utcnow

_PG_CLAIM_LOCK = 0x5353_4F42  # "SSOB"
#: A claimed row is another instance's to take over once its lease is this old. A send may
#: take longer (a token fetch, a media upload, a long text in parts): the dispatcher renews
#: the lease of every row it is still sending (``renew``), so only a dead instance's expire.
LEASE = timedelta(seconds=30)
SLOT_KEEP = timedelta(hours=1, minutes=5)


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` sends per ``window`` to one rate key."""

    count: int
    window: timedelta


#: rate key → its limits (the platform sender knows them); no limits means unlimited.
RateLimits = Callable[[str], Sequence[RateLimit]]


class Claimed(Protocol):
    """A claimed outbox row as ``claim`` returns it: the outbox's columns by attribute
    (the ones the dispatcher reads)."""

    @property
    def id(self) -> int: ...
    @property
    def platform(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def rate_key(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def in_doubt(self) -> bool: ...
    @property
    def created_at(self) -> datetime: ...


def rate_key(destination: Destination) -> str | None:
    """Sends to one person or one group robot count against that recipient's limits;
    replies and card updates use one-time platform handles and count against none."""
    if destination.kind in (USER, GROUP):
        return f"{destination.platform}:{destination.kind}:{destination.address}"
    return None


def queue(session: Session, destination: Destination, message: Message, key: Key | str) -> bool:
    """Add a message in the caller's transaction; a key already queued is left alone.

    Returns whether it was new. ``key`` (built by ``bot.outbox_keys``; a plain string has
    no subject) is stable for what the message is about, so a handler run twice (a
    retried event) queues it once.
    """
    return queue_many(session, [(destination, message, key)]) == 1


def queue_many(session: Session, messages: Sequence[tuple[Destination, Message, Key | str]]) -> int:
    """``queue`` for many messages at once (a draw's cards); returns how many were new."""
    if not messages:
        return 0
    now = utcnow()
    rows = [dict(platform=d.platform, recipient=d.address, kind=kind_of(m), payload=to_payload(d, m),
                 idempotency_key=k.value, subject=k.subject, rate_key=rate_key(d), status="pending", attempts=0,
                 in_doubt=False, next_attempt_at=now, created_at=now)
            for d, m, k in ((d, m, key_of(key)) for d, m, key in messages)]
    # One cached statement for any number of rows (the driver layer batches them).
    return len(session.execute(_QUEUE[session.get_bind().dialect.name], rows).all())


_TABLE = table_of(OutboxMessage)
_QUEUE = {
    name: insert_(_TABLE).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(_TABLE.c.id)
    for name, insert_ in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def claim(session: Session, owner: str, now: datetime, limits: RateLimits, *, batch: int = 50,
          lease: timedelta = LEASE) -> list[Claimed]:
    """Claim up to ``batch`` due messages for ``owner``, within every recipient's rate limit;
    returns the claimed rows (every column of the outbox, by attribute).

    Rows over a recipient's budget stay pending (delayed, never dropped). Each claimed
    row with a rate key spends one slot of it, whether or not the send then succeeds.
    """
    pg = session.get_bind().dialect.name == "postgresql"
    if pg:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_PG_CLAIM_LOCK))
    stale = now - lease
    claimable = or_(
        and_(col(OutboxMessage.status) == "pending", col(OutboxMessage.next_attempt_at) <= now),
        and_(col(OutboxMessage.status) == "sending", col(OutboxMessage.claimed_at) < stale),
    )
    budget, free_at = _budgets(session, now, limits)
    for key, left in budget.items():
        if left <= 0:  # its messages wait until the budget frees: later claims need not scan them
            _hold(session, key, free_at[key], limits(key))
    candidates = select(OutboxMessage.id, OutboxMessage.rate_key).where(claimable)
    candidates = candidates.order_by(col(OutboxMessage.id)).limit(batch * 4)
    if pg:
        candidates = candidates.with_for_update(skip_locked=True)
    picked = []
    for row_id, rate_key in session.execute(candidates):
        if rate_key is not None:
            left = budget.get(rate_key, _unused(rate_key, limits))
            if left <= 0:
                continue
            budget[rate_key] = left - 1
        picked.append(row_id)
        if len(picked) == batch:
            break
    if not picked:
        return []
    claimed = session.execute(
        update(_TABLE)
        .where(_TABLE.c.id.in_(picked), claimable)
        .values(status="sending", owner=owner, claimed_at=now, attempts=_TABLE.c.attempts + 1,
                # a row taken over from a dead instance may have reached the platform already
                in_doubt=or_(_TABLE.c.in_doubt, _TABLE.c.status == "sending"))
        .returning(*_TABLE.c)
    ).all()
    slots = [{"rate_key": row.rate_key, "at": now} for row in claimed if row.rate_key]
    if slots:
        session.execute(insert(SendSlot), slots)
    # A Row gives the columns by attribute, untyped; these are the outbox's.
    return cast(list[Claimed], sorted(claimed, key=lambda row: row.id))


def _budgets(session: Session, now: datetime, limits: RateLimits) -> tuple[dict[str, int], dict[str, datetime]]:
    """Sends left right now for each rate key that has spent any within the last hour,
    and for those with none left, when the oldest counted send leaves its window."""
    times: dict[str, list[datetime]] = {}
    for key, at in session.execute(select(SendSlot.rate_key, SendSlot.at).where(SendSlot.at > now - SLOT_KEEP)):
        times.setdefault(key, []).append(at)
    left: dict[str, int] = {}
    free_at: dict[str, datetime] = {}
    for key, spent in times.items():
        budgets = []
        for limit in limits(key):
            inside = sorted(at for at in spent if at > now - limit.window)
            budgets.append(limit.count - len(inside))
            if len(inside) >= limit.count:
                free_at[key] = max(free_at.get(key, now), inside[len(inside) - limit.count] + limit.window)
        left[key] = min(budgets, default=_UNLIMITED)
    return left, free_at


def _hold(session: Session, rate_key: str, free_at: datetime, limits: Sequence[RateLimit]) -> None:
    """Hold a saturated key's waiting messages until its budget frees.

    The first ``count`` of them (by the tightest limit) are held until ``free_at``; the
    rest cannot go before ``free_at`` plus that limit's window (a window from then holds
    at most ``count`` sends), so they are held until then. A long queue for one member
    is thus rewritten once a window, not at every slot that frees.
    """
    tightest = min(limits, key=lambda limit: limit.count)
    waiting = _waiting(rate_key, free_at)
    last_first = session.execute(select(_TABLE.c.id).where(waiting).order_by(_TABLE.c.id)
                                 .offset(tightest.count - 1).limit(1)).scalar()
    if last_first is None:  # no more than fit in the next window
        session.execute(update(_TABLE).where(waiting).values(next_attempt_at=free_at))
        return
    session.execute(update(_TABLE).where(waiting, _TABLE.c.id <= last_first).values(next_attempt_at=free_at))
    session.execute(update(_TABLE).where(waiting, _TABLE.c.id > last_first)
                    .values(next_attempt_at=free_at + tightest.window))


def _waiting(rate_key: str, free_at: datetime) -> ColumnElement[bool]:
    """A key's pending messages not yet held until ``free_at`` (through the due index)."""
    return and_(_TABLE.c.status == "pending", _TABLE.c.next_attempt_at < free_at, _TABLE.c.rate_key == rate_key)


def _unused(rate_key: str, limits: RateLimits) -> int:
    return min((limit.count for limit in limits(rate_key)), default=_UNLIMITED)


_UNLIMITED = 10**9


def forget_old_slots(session: Session, now: datetime) -> None:
    session.execute(delete(SendSlot).where(col(SendSlot.at) < now - SLOT_KEEP))


def _mine(row_id: int, owner: str) -> ColumnElement[bool]:
    return and_(col(OutboxMessage.id) == row_id, col(OutboxMessage.owner) == owner,
                col(OutboxMessage.status) == "sending")


def _changed_one(session: Session, statement: Update) -> bool:
    """Run an UPDATE of one row; whether it matched."""
    # An UPDATE's result is a CursorResult (with rowcount); Session.execute is typed as
    # returning the general Result.
    return cast(CursorResult[Any], session.execute(statement)).rowcount == 1


def renew(session: Session, row_ids: Sequence[int], owner: str, now: datetime) -> int:
    """Extend the lease of rows ``owner`` is still sending; returns how many it still held."""
    if not row_ids:
        return 0
    result = session.execute(update(_TABLE).where(col(OutboxMessage.id).in_(row_ids), col(OutboxMessage.owner) == owner,
                                                  col(OutboxMessage.status) == "sending").values(claimed_at=now))
    return cast(CursorResult[Any], result).rowcount


def mark_sent(session: Session, row_id: int, owner: str, response: dict, now: datetime) -> bool:
    """Record the platform's answer; False when the row was taken over meanwhile."""
    return _changed_one(session, update(_TABLE).where(_mine(row_id, owner))
                        .values(status="sent", sent_at=now, platform_response=response, last_error=None))


def mark_retry(session: Session, row_id: int, owner: str, error: str, retry_at: datetime, *, in_doubt: bool) -> bool:
    """Put the row back for a later attempt (``in_doubt``: the platform may have it)."""
    return _changed_one(session, update(_TABLE).where(_mine(row_id, owner))
                        .values(status="pending", next_attempt_at=retry_at, last_error=error, in_doubt=in_doubt))


def mark_failed(session: Session, row_id: int, owner: str, error: str, response: dict | None) -> bool:
    """A permanent failure: the platform refused it for good (recorded, surfaced to admins)."""
    return _changed_one(session, update(_TABLE).where(_mine(row_id, owner))
                        .values(status="failed", last_error=error, platform_response=response))
