"""The inbound pipeline, after a platform edge has verified and parsed a delivery:

take (the intake, ``bot.chat.intake``) → acknowledge → process (claim → fetch media →
identify → route → handler → finish, or give back), durably. The edge answers the
platform as soon as ``take`` returns; the handler's work runs after, from the stored
event, so a crash after the acknowledgement loses nothing: the row stays claimable and
any instance finishes it. During a burst the work waits until the intake is quiet.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlmodel import Session

from bot import logs, outbox_keys
from bot.chat import recipients
from bot.chat.context import Context
from bot.chat.events import LOCATION, Event, MediaGone
from bot.chat.identity import identify
from bot.chat.intake import GroupCommit
from bot.chat.router import Router
from bot.clock import now as clock_now
from bot.outbound import USER, Destination, Text
from bot.roles import Actor
from bot.settings import Settings
from bot.texts import say
from storage import evidence, inbound, outbox
from storage.db import reading, transaction

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # claims of one delivery, finished or not (a crash in the handler counts)
OUTAGE_PATIENCE = timedelta(minutes=10)  # how long a database outage does not spend attempts
OUTAGE_BACKOFF = (5.0, 60.0)  # seconds between tries during one: half the delivery's age, within these
MAX_DEFERRAL = 1.0  # seconds work waits for quiet at most: under sustained load it still progresses
BATCH = 64  # deliveries claimed at once
ROUND_SECONDS = 0.05  # a transaction of several deliveries is closed after this (SQLite: the write lock)
LEASE = timedelta(seconds=30)  # a dead instance's deliveries are taken over after this
DRAIN_BUDGET = 8.0  # seconds a stopping instance spends finishing acknowledged deliveries


Fetch = Callable[[str], Awaitable[tuple[bytes, str, str]]]  # media handle → content, file name, type
Claimed = tuple[str, str, Event, int, datetime]  # platform, delivery key, event, attempts, received at


class Pipeline:
    """Takes events, and processes them on this instance (or any other, after a crash)."""

    def __init__(self, engine: Engine, settings: Settings, router: Router, owner: str,
                 on_processed: Callable[[], None] = lambda: None) -> None:
        self.engine, self.settings, self.router, self.owner = engine, settings, router, owner
        self.on_processed = on_processed  # e.g. wake the dispatcher: answers are queued
        self.fetchers: dict[str, Fetch] = {}  # platform → download of a media handle
        self._intake = GroupCommit(engine)
        self._one_round = threading.Lock()  # see ``_handle_all``
        self._running: set[asyncio.Task] = set()  # strong references, as asyncio requires
        self._backlog = asyncio.Event()

    async def take(self, event: Event) -> bool:
        """Persist the delivery once; start its processing. Returns False for a duplicate.

        A lone message is handled at once. During a burst the work is left to ``run``,
        which handles it as soon as the burst lets up (acknowledging comes first: the
        platform's deadline is on the acknowledgement, and the work is safe in the row).
        """
        new = await self._intake.take(event)
        if new and self._intake.quiet():
            task = asyncio.create_task(self.process([(event.platform, event.delivery_key)]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        elif new:
            self._backlog.set()
        return new

    async def process(self, keys: Sequence[tuple[str, str]] | None = None) -> int:
        """Claim the given deliveries (or any due or abandoned ones) and handle them.

        A photo or file is downloaded first (outside any transaction) and stored by its
        SHA-256; the handler then sees the stored content's digest.
        """
        rows = await asyncio.to_thread(self._claim, keys)
        ready: list[Claimed] = []
        for row in rows:
            event = Event.from_json(row.event)
            if row.attempts > MAX_ATTEMPTS:
                # Claimed that often without finishing or failing: handling it stops the
                # process (or outlives its lease) every time. Give up, and say so.
                await asyncio.to_thread(self._poisoned, row.platform, row.delivery_key, event, row.attempts)
                continue
            try:
                event = await self._fetch(event)
            except Exception as exc:  # the platform did not answer: try again later, like any failure
                await asyncio.to_thread(self._failed, row.platform, row.delivery_key, event, row.attempts, exc,
                                        row.received_at)
                continue
            ready.append((row.platform, row.delivery_key, event, row.attempts, row.received_at))
        if ready:
            await asyncio.to_thread(self._handle_all, ready)
        if rows:
            self.on_processed()
        return len(rows)

    # Claimed deliveries are handled in rounds: several in one transaction, each in its own
    # savepoint, in the order claimed (a person's messages, and two deliveries on one task,
    # are handled in the order they came). A handler that fails undoes only its own
    # delivery, which is given back (tried again later) in the same round; the others of
    # its round stand. A round that fails as a whole (the database went away, its commit
    # failed) wrote nothing: its deliveries are then handled one transaction each.
    #
    # A round runs on a thread with the synchronous engine, on PostgreSQL too. Measured
    # (bench/handling_bench.py, --busy-loop): the handlers awaited on the loop through
    # the async engine (``run_sync``) cost half as much CPU again per delivery as on a
    # thread, and were slower even with the loop 90 % busy, where the thread waits for the
    # GIL at its round trips.

    def _handle_all(self, ready: list[Claimed]) -> None:
        items = self._prepare_all(ready)
        while items:
            try:
                # One round at a time on this instance: two rounds each holding rows (and
                # the audit chain's lock) that the other's next delivery needs would deadlock.
                with self._one_round, transaction(self.engine) as session:
                    done = self._round(session, items)
            except Exception:
                log.warning("a round of deliveries failed as a whole; handling them one at a time", exc_info=True)
                for (platform, key, event, attempts, received_at), prepared in items:
                    self._handle(platform, key, event, attempts, received_at, prepared)
                return
            items = items[done:]

    def _prepare_all(self, ready: list[Claimed]) -> list[tuple[Claimed, object]]:
        """Each delivery with its command's read-only work done (``_prepare``); one whose
        preparation failed is given back."""
        items: list[tuple[Claimed, object]] = []
        for item in ready:
            platform, key, event, attempts, received_at = item
            try:
                items.append((item, self._prepare(event)))
            except Exception as exc:
                logs.request_id.set(delivery_id(platform, key))
                log.exception("handling a %s delivery failed (attempt %d)", platform, attempts)
                self._failed(platform, key, event, attempts, exc, received_at)
        return items

    def _round(self, session: Session, items: Sequence[tuple[Claimed, object]]) -> int:
        """Handle deliveries from the start of ``items`` in ``session``'s transaction, for
        about ``ROUND_SECONDS`` (on SQLite the round holds the write lock the intake also
        needs); how many it handled. Raises when the round's transaction itself failed."""
        deadline = time.monotonic() + ROUND_SECONDS
        for n, ((platform, key, event, attempts, received_at), prepared) in enumerate(items):
            if n and time.monotonic() > deadline:
                return n
            logs.request_id.set(delivery_id(platform, key))
            try:
                with session.begin_nested():
                    self._handle_in(session, platform, key, event, prepared)
                _handled(platform, event)
            except TakenOver:
                log.warning("the delivery was taken over by another instance; its result stands")
            except Exception as exc:
                if _contention(exc) and n:
                    # PostgreSQL broke a deadlock with another instance's round (each holds
                    # rows the other's next delivery needs): end this round here, which
                    # frees its locks, and handle this delivery first in the next one.
                    log.warning("a delivery met a deadlock with another transaction; handled in the next round")
                    return n
                if _outage(exc):
                    raise  # the round's transaction is gone with its connection: one at a time after
                log.exception("handling a %s delivery failed (attempt %d)", platform, attempts)
                with session.begin_nested():
                    self._give_back(session, platform, key, event, attempts, exc, received_at)
            finally:
                # The next delivery starts from the database, as in a transaction of its own
                # (nothing written is lost: a savepoint's release flushed it).
                session.expunge_all()
        return len(items)

    def _claim(self, keys):
        with transaction(self.engine) as session:
            return inbound.claim(session, self.owner, clock_now(), keys=keys, batch=BATCH, lease=LEASE)

    async def _fetch(self, event: Event) -> Event:
        media, fetch = event.media, self.fetchers.get(event.platform)
        if media is not None and media.kind == LOCATION and not media.sha256:  # nothing to download: the record
            record = evidence.location_record(media.latitude or 0.0, media.longitude or 0.0, media.label, event.at)
            digest = await asyncio.to_thread(self._store_blob, record, evidence.LOCATION_TYPE)
            return replace(event, media=replace(media, sha256=digest, size=len(record)))
        if media is None or media.sha256 or fetch is None:
            return event
        try:
            data, name, content_type = await fetch(media.media_id)
        except MediaGone:
            return event  # the handler says it could not be kept
        digest = await asyncio.to_thread(self._store_blob, data, content_type)
        return replace(event, media=replace(media, sha256=digest, size=len(data), file_name=media.file_name or name))

    def _store_blob(self, data: bytes, content_type: str) -> str:
        with transaction(self.engine) as session:
            return evidence.store(session, data, content_type)

    async def run(self, stop: asyncio.Event, every: float = 2.0) -> None:
        """Handle deliveries left for later (a burst), and those abandoned by a crash here
        or on another instance."""
        while not stop.is_set():
            try:
                while not stop.is_set():
                    await self._intake.until_quiet(MAX_DEFERRAL)
                    if not await self.process():
                        break
            except Exception:
                log.exception("sweeping inbound deliveries failed; retrying")
            try:
                await asyncio.wait_for(self._backlog.wait(), timeout=every)
            except TimeoutError:
                pass
            self._backlog.clear()

    def wake(self) -> None:
        """Look for work now (new work elsewhere, or shutting down)."""
        self._backlog.set()

    async def close(self) -> None:
        await self._intake.close()

    async def drain(self, budget: float = DRAIN_BUDGET) -> None:
        """Graceful shutdown: finish the work started here, then whatever deliveries are
        still waiting (a burst leaves some for later), for at most ``budget`` seconds;
        what is left stays claimable by any instance."""
        deadline = asyncio.get_running_loop().time() + budget
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)
        while asyncio.get_running_loop().time() < deadline:
            try:
                if not await self.process():
                    return
            except Exception:
                log.exception("draining inbound deliveries failed; another instance will finish them")
                return

    def _handle(self, platform: str, key: str, event: Event, attempts: int, received_at: datetime,
                prepared: object = None) -> None:
        """One delivery in a transaction of its own."""
        logs.request_id.set(delivery_id(platform, key))  # this thread's log lines name the delivery
        try:
            prepared = prepared if prepared is not None else self._prepare(event)
            with transaction(self.engine) as session:
                self._handle_in(session, platform, key, event, prepared)
            _handled(platform, event)
        except TakenOver:
            log.warning("the delivery was taken over by another instance; its result stands")
        except Exception as exc:
            # Never the event's text in the log: only where it came from and what failed.
            log.exception("handling a %s delivery failed (attempt %d)", platform, attempts)
            self._failed(platform, key, event, attempts, exc, received_at)

    def _handle_in(self, session: Session, platform: str, key: str, event: Event, prepared: object) -> None:
        """Identify, route, run the handler, queue its answers and mark the delivery done,
        in ``session``'s transaction (or savepoint)."""
        now = clock_now()
        identity = identify(session, self.settings, Actor(event.platform, event.sender))
        ctx = Context(session, self.settings, event, identity, now, prepared=prepared)
        self.router.dispatch(ctx)
        ctx.flush()
        if not inbound.finish(session, platform, key, self.owner, now):
            raise TakenOver(key)

    def _prepare(self, event: Event) -> object:
        """A command's slow read-only work (核验's recomputed draw), in a reading session
        before the write transaction: on SQLite it holds no write lock, so the intake's
        acknowledgements and other handlers go on meanwhile."""
        if not self.router.prepares(event):
            return None
        with reading(self.engine) as session:
            ctx = Context(session, self.settings, event,
                          identify(session, self.settings, Actor(event.platform, event.sender)), clock_now())
            return self.router.prepare(ctx)

    def _failed(self, platform: str, key: str, event: Event, attempts: int, exc: Exception,
                received_at: datetime) -> None:
        """Try again later; after the last attempt, stop and say sorry.

        A database outage (the connection lost or refused) is not the work's fault: for
        ``OUTAGE_PATIENCE`` after the delivery came in it spends no attempt and is tried
        again after half the delivery's age (``OUTAGE_BACKOFF``), so an outage of a
        minute or two loses nothing."""
        with transaction(self.engine) as session:
            self._give_back(session, platform, key, event, attempts, exc, received_at)

    def _give_back(self, session: Session, platform: str, key: str, event: Event, attempts: int, exc: Exception,
                   received_at: datetime) -> None:
        """``_failed``, in ``session``'s transaction."""
        now = clock_now()
        outage = _outage(exc) and now - _utc(received_at) < OUTAGE_PATIENCE
        if outage:
            low, high = OUTAGE_BACKOFF
            delay, give_up = min(high, max(low, (now - _utc(received_at)).total_seconds() / 2)), False
        else:
            delay, give_up = 5.0 * attempts, attempts >= MAX_ATTEMPTS
        inbound.give_back(session, platform, key, self.owner, type(exc).__name__,
                          now + timedelta(seconds=delay), give_up=give_up, refund=outage)
        if give_up:
            outbox.queue(session, event.reply_to, Text(say("chat", "failed")), outbox_keys.failed(platform, key))

    def _poisoned(self, platform: str, key: str, event: Event, claims: int) -> None:
        """Give up a delivery claimed ``claims`` times without an end; tell the sender and the admins."""
        log.error("a %s delivery was claimed %d times without finishing; given up", platform, claims)
        delivery = delivery_id(platform, key)
        with transaction(self.engine) as session:
            inbound.give_back(session, platform, key, self.owner, f"gave up after {claims - 1} unfinished claims",
                              clock_now(), give_up=True)
            outbox.queue(session, event.reply_to, Text(say("chat", "failed")), outbox_keys.failed(platform, key))
            notice = Text(say("chat", "poisoned", platform=platform, delivery=delivery, claims=claims - 1))
            outbox.queue_many(session, [(Destination(platform, USER, admin), notice,
                                         outbox_keys.poisoned(platform, key, admin))
                                        for admin in recipients.admins(self.settings, platform)])


def _handled(platform: str, event: Event) -> None:
    log.info("handled a %s %s", platform, "card action" if event.action else "media" if event.media else "message")


#: PostgreSQL's deadlock_detected, serialization_failure and lock_not_available.
_CONTENTION = frozenset({"40P01", "40001", "55P03"})


def _contention(exc: BaseException) -> bool:
    """The statement lost to another transaction's locks: trying it again later may work."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _CONTENTION


def _outage(exc: BaseException) -> bool:
    """The database could not be reached or lost the connection (not a bad statement)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError) and not _sqlite_statement(exc)


def _sqlite_statement(exc: BaseException) -> bool:
    """SQLite raises OperationalError for a bad statement too (no such table): not an outage."""
    name = getattr(getattr(exc, "orig", None), "sqlite_errorname", "")
    return bool(name) and name not in ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_FULL")


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def delivery_id(platform: str, key: str) -> str:
    """The id a delivery's log lines carry: stable across retries and instances, and no
    user id in it (a delivery key may hold one)."""
    return "d-" + hashlib.sha256(f"{platform}:{key}".encode()).hexdigest()[:12]


class TakenOver(Exception):
    """Another instance claimed the delivery after this one's lease ran out."""
