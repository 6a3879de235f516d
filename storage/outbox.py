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
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, CursorResult, Update, and_, delete, func, insert, or_, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from bot.outbound import GROUP, USER, Destination, Message, kind_of, to_payload
from bot.outbox_keys import Key, key_of
from storage.models import OutboxMessage, RateHold, SendSlot, table_of, utcnow

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
          lease: timedelta = LEASE, reach: timedelta = timedelta(0),
          reserved: dict[int, list[tuple[int, str]]] | None = None) -> list[Claimed]:
    """Claim up to ``batch`` due messages for ``owner``, within every rate limit; returns
    the claimed rows (every column of the outbox, by attribute).

    ``limits(key)`` gives a recipient's limits (``<platform>:<kind>:<address>``) and the
    platform app's (``<platform>:app``: every call to the platform counts). Rows over a
    budget stay pending (delayed, never dropped): a key found spent is held until its
    next slot frees (``rate_holds``), and its rows are not looked at before then — no
    row is rewritten. Each claimed row spends one slot of its recipient's budget and one
    of its app's, whether or not the send then succeeds. The slot is counted from ``now +
    reach``: the latest the send can reach the platform (its request timeout), until
    ``settle`` moves it to when the platform is known to have had it; ``reserved``, when
    given, gets each claimed row's slots (slot id, rate key) for that.
    """
    pg = session.get_bind().dialect.name == "postgresql"
    if pg:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_PG_CLAIM_LOCK))
    stale = now - lease
    claimable = or_(
        and_(col(OutboxMessage.status) == "pending", col(OutboxMessage.next_attempt_at) <= now),
        and_(col(OutboxMessage.status) == "sending", col(OutboxMessage.claimed_at) < stale),
    )
    held = select(RateHold.rate_key).where(col(RateHold.free_at) > now)
    apps = held.where(col(RateHold.rate_key).like("%" + _APP))
    held_apps = [key.removesuffix(_APP) for (key,) in session.execute(apps)]
    candidates = select(OutboxMessage.id, OutboxMessage.rate_key, OutboxMessage.platform).where(
        claimable, or_(col(OutboxMessage.rate_key).is_(None), col(OutboxMessage.rate_key).not_in(held)))
    if held_apps:
        candidates = candidates.where(col(OutboxMessage.platform).not_in(held_apps))
    candidates = candidates.order_by(col(OutboxMessage.id)).limit(batch * 4)
    if pg:
        candidates = candidates.with_for_update(skip_locked=True)
    found = session.execute(candidates).all()
    keys = {key for _, key, _ in found if key is not None} | {app_key(platform) for _, _, platform in found}
    budget = _budgets(session, now, keys, limits)
    picked, spent = [], set()
    for row_id, rate_key, platform in found:
        counted = [key for key in (rate_key, app_key(platform)) if key is not None and key in budget]
        exhausted = [key for key in counted if budget[key] <= 0]
        if exhausted:
            spent.update(exhausted)
            continue
        for key in counted:
            budget[key] -= 1
        picked.append(row_id)
        if len(picked) == batch:
            break
    claimed = [] if not picked else session.execute(
        update(_TABLE)
        .where(_TABLE.c.id.in_(picked), claimable)
        .values(status="sending", owner=owner, claimed_at=now, attempts=_TABLE.c.attempts + 1,
                # a row taken over from a dead instance may have reached the platform already
                in_doubt=or_(_TABLE.c.in_doubt, _TABLE.c.status == "sending"))
        .returning(*_TABLE.c)
    ).all()
    owners = [(row.id, key) for row in claimed
              for key in (row.rate_key, app_key(row.platform)) if key is not None and key in budget]
    if owners:
        slots = [{"rate_key": key, "at": now + reach} for _, key in owners]
        if reserved is None:
            session.execute(insert(SendSlot), slots)
        else:
            ids = session.execute(insert(SendSlot).returning(col(SendSlot.id), sort_by_parameter_order=True),
                                  slots).scalars().all()
            for (row_id, key), slot_id in zip(owners, ids, strict=True):
                reserved.setdefault(row_id, []).append((slot_id, key))
    for key in spent:  # looked at again when its next slot frees, not at every claim
        _hold(session, key, _free_at(session, now, key, limits(key)), pg)
    # A Row gives the columns by attribute, untyped; these are the outbox's.
    return cast(list[Claimed], sorted(claimed, key=lambda row: row.id))


def settle(session: Session, slots: Sequence[tuple[int, str]], at: datetime) -> None:
    """The platform answered sends by ``at``: their slots (slot id, rate key, as ``claim``
    reserved them) count from ``at`` instead, which is no earlier than the sends reached
    the platform, so a window counted from it holds the platform's own — without a margin
    for how late a send may land (the slot of a send whose answer never came, e.g. a
    timeout, keeps counting from the latest it could have landed). A key held (spent) is
    looked at again by the next claim: its next free slot may now come sooner."""
    if not slots:
        return
    session.execute(update(SendSlot).where(col(SendSlot.id).in_([slot_id for slot_id, _ in slots])).values(at=at))
    session.execute(delete(RateHold).where(col(RateHold.rate_key).in_({key for _, key in slots})))


APP = "app"
_APP = ":" + APP


def app_key(platform: str) -> str:
    """The rate key every call to ``platform`` counts against (its per-app limits)."""
    return platform + _APP


def _budgets(session: Session, now: datetime, keys: set[str], limits: RateLimits) -> dict[str, int]:
    """Sends left right now for each of ``keys`` that has limits (keys without are absent)."""
    limited = {key: limits(key) for key in keys}
    limited = {key: found for key, found in limited.items() if found}
    left = {key: min(limit.count for limit in found) for key, found in limited.items()}
    windows = {limit.window for found in limited.values() for limit in found}
    for window in windows:
        within = [key for key, found in limited.items() if any(limit.window == window for limit in found)]
        counts = dict(session.execute(
            select(SendSlot.rate_key, func.count()).where(col(SendSlot.rate_key).in_(within),
                                                          col(SendSlot.at) > now - window)
            .group_by(col(SendSlot.rate_key))).all())
        for key in within:
            for limit in limited[key]:
                if limit.window == window:
                    left[key] = min(left[key], limit.count - counts.get(key, 0))
    return left


def _free_at(session: Session, now: datetime, key: str, limits: Sequence[RateLimit]) -> datetime:
    """When a spent key has a slot again: for each limit it has reached, the time its
    oldest counted send that must leave the window does."""
    free_at = now
    for limit in limits:
        inside = select(SendSlot.at).where(col(SendSlot.rate_key) == key, col(SendSlot.at) > now - limit.window)
        used = session.execute(select(func.count()).select_from(inside.subquery())).scalar_one()
        if used >= limit.count:
            leaving = session.execute(inside.order_by(col(SendSlot.at)).offset(used - limit.count).limit(1))
            free_at = max(free_at, _aware(leaving.scalar_one()) + limit.window)
    return free_at


def _aware(at: datetime) -> datetime:
    """SQLite gives back naive datetimes; they were stored in UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _hold(session: Session, key: str, free_at: datetime, pg: bool) -> None:
    """Hold ``key`` until ``free_at`` (one row per key, replaced)."""
    insert_ = pg_insert if pg else sqlite_insert
    statement = insert_(RateHold).values(rate_key=key, free_at=free_at)
    session.execute(statement.on_conflict_do_update(index_elements=["rate_key"], set_={"free_at": free_at}))


def forget_old_slots(session: Session, now: datetime) -> None:
    """Keep the slots to the longest window (an hour) and the holds to those in force."""
    session.execute(delete(SendSlot).where(col(SendSlot.at) < now - SLOT_KEEP))
    session.execute(delete(RateHold).where(col(RateHold.free_at) <= now))


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
