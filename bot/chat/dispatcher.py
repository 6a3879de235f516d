"""The outbox dispatcher: claim due messages, send them through their platform, record
the platform's answer.

Delivery is at-least-once from here: a message is marked sent only after the platform
accepted it, so a crash in between sends it again. Each platform sender makes the
resend harmless with the platform's own idempotency (WeCom: the card's ``task_id`` and
``enable_duplicate_check``). Rate limits are kept by the claim (``storage.outbox``):
over-budget messages wait, never drop. Transient failures back off; permanent ones are
recorded and the admins are told.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine
from sqlmodel import Session

from bot import logs, outbox_keys
from bot.chat import recipients
from bot.clock import now as clock_now
from bot.outbound import USER, Destination, Message, Text, from_payload
from bot.settings import Settings
from bot.texts import say
from storage import outbox
from storage.db import transaction
from storage.outbox import Claimed, RateLimit

log = logging.getLogger(__name__)

GIVE_UP_AFTER = timedelta(hours=72)  # a message still undeliverable after this is failed, and said so
MAX_BACKOFF = 300.0


@dataclass(frozen=True)
class Sent:
    response: dict


@dataclass(frozen=True)
class Retry:
    """Not delivered this time. ``in_doubt``: the platform may have it (e.g. a timeout)."""

    error: str
    in_doubt: bool = False
    after: float | None = None  # seconds; None = exponential backoff


@dataclass(frozen=True)
class Failed:
    """Refused for good (an unknown user, a malformed message)."""

    error: str
    response: dict | None = None


Outcome = Sent | Retry | Failed


class Sender(Protocol):
    """One platform's way out."""

    platform: str

    def limits(self, rate_key: str) -> Sequence[RateLimit]: ...

    async def send(self, destination: Destination, message: Message, *, in_doubt: bool) -> Outcome: ...


class Dispatcher:
    """Drains the outbox for this instance; any number of instances may run one.

    Sends are pipelined: up to ``[outbox] concurrency`` are in flight at once, and rows
    are claimed again as soon as there is room, not when a whole batch has finished. Each
    recipient's messages go one after the other, in the order queued (a lane per
    recipient); outcomes are recorded together, several in one transaction.
    """

    def __init__(self, engine: Engine, settings: Settings, senders: Sequence[Sender], owner: str,
                 *, batch: int | None = None, poll: float = 1.0,
                 observe: Callable[[str, str, str], None] = lambda platform, done, error: None) -> None:
        self.engine, self.settings, self.owner = engine, settings, owner
        self.observe = observe  # (platform, "sent" | "retry" | "failed", error): bot.metrics
        self.senders = {s.platform: s for s in senders}
        self.concurrency = settings.outbox.concurrency
        # Claimed and not yet recorded, at most: enough to keep every send slot busy while
        # some recipients' lanes hold several rows.
        self.batch = batch or max(50, 4 * self.concurrency)
        self.poll = poll
        self.lease = outbox.LEASE  # renewed every third of it while a send is under way
        # How late a claimed send can reach its platform (a sender's request timeout): its rate
        # slots count from then until its answer shows when it did (``outbox.settle``).
        self.reach = max((getattr(s, "reach", timedelta(0)) for s in senders), default=timedelta(0))
        self._reserved: dict[int, list[tuple[int, str]]] = {}  # claimed row → its rate slots (id, key)
        self._wake = asyncio.Event()
        self._freed = asyncio.Event()  # a claimed row was recorded: there is room again
        self._slots = asyncio.Semaphore(self.concurrency)
        self._lanes: dict[tuple[str, str], deque[Claimed]] = {}
        self._sending: dict[int, asyncio.Future[None]] = {}  # claimed row → done when recorded
        self._lane_tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[tuple[Claimed, Outcome, asyncio.Future[str | None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None

    def nudge(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def limits(self, rate_key: str) -> Sequence[RateLimit]:
        sender = self.senders.get(rate_key.split(":", 1)[0])
        return sender.limits(rate_key) if sender else ()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set; a failure of one claim never ends the loop. What is
        in flight at the stop is finished by ``flush``."""
        while not stop.is_set():
            self._wake.clear()  # before the claim: a nudge during it is not lost
            self._freed.clear()
            room = self.batch - len(self._sending)
            if self._sending and room < max(1, self.batch // 4):
                await self._until(self._freed)  # claim when a good part of the room is free, not per row
                continue
            try:
                if len(await self._claim_and_start(room)) == room:
                    continue  # more may be due now
            except Exception:
                log.exception("claiming outbox messages failed; retrying")
            await self._until(self._wake)

    async def _until(self, event: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(event.wait(), timeout=self.poll)
        except TimeoutError:
            pass

    async def flush(self, budget: float) -> None:
        """Graceful shutdown: finish the sends under way and send what is due now, for at
        most ``budget`` seconds (what is left — rate-limited, retrying — stays queued for
        any instance)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        try:
            if self._sending:
                await asyncio.wait_for(self._idle(), timeout=max(0.1, deadline - loop.time()))
            while loop.time() < deadline:
                if not await asyncio.wait_for(self.run_once(), timeout=max(0.1, deadline - loop.time())):
                    return
        except TimeoutError:
            return  # the sends under way are in doubt: their rows' leases expire and they are retried
        except Exception:
            log.exception("flushing the outbox failed; another instance will send the rest")

    async def run_once(self) -> int:
        """Claim what there is room for and wait until it is sent and recorded; returns
        how many were claimed."""
        rows = await self._claim_and_start(max(1, self.batch - len(self._sending)))
        if rows:
            await asyncio.gather(*(self._sending[row.id] for row in rows if row.id in self._sending))
        return len(rows)

    async def _idle(self) -> None:
        while self._sending:
            await asyncio.gather(*list(self._sending.values()), return_exceptions=True)

    async def _claim_and_start(self, room: int) -> list[Claimed]:
        rows = await asyncio.to_thread(self._claim, room)
        loop = asyncio.get_running_loop()
        for row in rows:  # claimed in queue order
            self._sending[row.id] = loop.create_future()
            lane = self._lanes.get((row.platform, row.recipient))
            if lane is not None:
                lane.append(row)  # behind the recipient's earlier messages
                continue
            self._lanes[(row.platform, row.recipient)] = deque([row])
            task = asyncio.create_task(self._run_lane((row.platform, row.recipient)))
            self._lane_tasks.add(task)
            task.add_done_callback(self._lane_tasks.discard)
        if rows and (self._renewer is None or self._renewer.done()):
            self._renewer = asyncio.create_task(self._keep_leases())
        return rows

    async def _run_lane(self, recipient: tuple[str, str]) -> None:
        """One recipient's messages one after the other, so they read in the order queued."""
        lane = self._lanes[recipient]
        try:
            while lane:
                row = lane[0]
                async with self._slots:
                    await self._deliver(row)
                lane.popleft()
                self._finished(row.id)
        except Exception:
            # The outcome could not be recorded (the database went away): the rows are let
            # go, their leases run out and they are sent again (in doubt), by any instance.
            log.exception("recording an outbox outcome failed; the rest of the lane is left to its lease")
            for row in lane:
                self._finished(row.id)
            lane.clear()
        finally:
            del self._lanes[recipient]

    def _finished(self, row_id: int) -> None:
        done = self._sending.pop(row_id, None)
        if done is not None and not done.done():
            done.set_result(None)
        self._freed.set()

    async def _keep_leases(self) -> None:
        """While rows are being sent, renew their leases: a slow send (a token fetch, a
        media upload, a long text in parts) is not taken over and sent twice; only a dead
        instance's rows expire."""
        every = self.lease.total_seconds() / 3
        while self._sending:
            await asyncio.sleep(every)
            if self._sending:
                try:
                    await asyncio.to_thread(self._renew, sorted(self._sending))
                except Exception:
                    log.exception("renewing outbox leases failed; trying again")

    def _renew(self, row_ids: list[int]) -> None:
        with transaction(self.engine) as session:
            outbox.renew(session, row_ids, self.owner, clock_now())

    def _claim(self, room: int) -> list[Claimed]:
        with transaction(self.engine) as session:
            now = clock_now()
            reserved: dict[int, list[tuple[int, str]]] = {}
            rows = outbox.claim(session, self.owner, now, self.limits, batch=room, lease=self.lease,
                                reach=self.reach, reserved=reserved)
            if random.random() < 0.02:  # keep the rate-slot table to the last hour
                outbox.forget_old_slots(session, now)
        self._reserved.update(reserved)  # after the commit: a claim that failed reserved nothing
        return rows

    async def _deliver(self, row: Claimed) -> None:
        logs.request_id.set(f"o-{row.id}")  # this task's log lines name the outbox message
        destination, message = from_payload(row.payload)
        sender = self.senders.get(row.platform)
        if sender is None:
            outcome: Outcome = Retry(f"platform {row.platform} not enabled here", after=60)
        else:
            try:
                outcome = await sender.send(destination, message, in_doubt=row.in_doubt)
            except Exception as exc:  # a bug in a sender must not lose the message
                log.exception("sending outbox message %s failed", row.id)
                outcome = Retry(type(exc).__name__, in_doubt=True)
        done = await self._record_soon(row, outcome)
        if done:
            self.observe(row.platform, done, "" if isinstance(outcome, Sent) else outcome.error)

    async def _record_soon(self, row: Claimed, outcome: Outcome) -> str | None:
        """Record the outcome with whatever others are waiting: one transaction for all."""
        recorded: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((row, outcome, recorded))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_waiting())
        return await recorded

    async def _record_waiting(self) -> None:
        while self._outcomes:
            taken, self._outcomes = self._outcomes, []
            try:
                results = await asyncio.to_thread(self._record_all, [(row, outcome) for row, outcome, _ in taken])
            except Exception as exc:
                for _, _, recorded in taken:
                    recorded.set_exception(exc)
                continue
            for (_, _, recorded), result in zip(taken, results, strict=True):
                recorded.set_result(result)

    def _record_all(self, outcomes: list[tuple[Claimed, Outcome]]) -> list[str | None]:
        """Record outcomes in one transaction; for each, what was recorded (sent, retry,
        failed), None if the row was no longer this instance's."""
        now = clock_now()
        try:
            with transaction(self.engine) as session:
                recorded = [self._record(session, row, outcome, now) for row, outcome in outcomes]
                # The platform answered these (or was never asked) by now: their slots count from
                # now, not from the latest they could have landed. A send in doubt (a timeout) may
                # land later still: its slots keep counting from the claim's reach.
                outbox.settle(session, [slot for row, outcome in outcomes if not _in_doubt(outcome)
                                        for slot in self._reserved.get(row.id, ())], now)
        finally:
            for row, _ in outcomes:
                self._reserved.pop(row.id, None)
        return recorded

    def _record(self, session: Session, row: Claimed, outcome: Outcome, now: datetime) -> str | None:
        if isinstance(outcome, Sent):
            if outbox.mark_sent(session, row.id, self.owner, outcome.response, now):
                log.info("outbox message %s sent: %s to a %s %s", row.id, row.kind, row.platform,
                         row.payload["destination"]["kind"])
                return "sent"
            return None
        if isinstance(outcome, Retry) and now - row.created_at < GIVE_UP_AFTER:
            delay = outcome.after if outcome.after is not None else _backoff(row.attempts)
            if outbox.mark_retry(session, row.id, self.owner, outcome.error, now + timedelta(seconds=delay),
                                 in_doubt=outcome.in_doubt or row.in_doubt):
                log.info("outbox message %s will be retried in %.0f s: %s", row.id, delay, outcome.error)
                return "retry"
            return None
        response = outcome.response if isinstance(outcome, Failed) else None
        if outbox.mark_failed(session, row.id, self.owner, outcome.error, response):
            log.warning("outbox message %s to %s failed for good: %s", row.id, row.platform, outcome.error)
            self._tell_admins(session, row, outcome.error)
            return "failed"
        return None

    def _tell_admins(self, session: Session, row: Claimed, error: str) -> None:
        """Surface a permanent failure to the admins on the same platform (never about a
        failure notice itself, nor about a card update that could not be made)."""
        if outbox_keys.is_send_failed(row.idempotency_key) or row.kind == "card_update":
            return
        notice = Text(say("chat", "send_failed", recipient=row.recipient, error=error,
                          summary=_summary(row)))
        for admin in recipients.admins(self.settings, row.platform):
            to = Destination(row.platform, USER, admin)
            outbox.queue(session, to, notice, outbox_keys.send_failed(row.id, admin))


def _in_doubt(outcome: Outcome) -> bool:
    """The send may still reach the platform after its outcome is known (it timed out)."""
    return isinstance(outcome, Retry) and outcome.in_doubt


def _summary(row: Claimed) -> str:
    message = row.payload.get("message", {})
    text = message.get("text") or message.get("title") or ""
    return text[:40]


def _backoff(attempts: int) -> float:
    base = min(MAX_BACKOFF, 2.0 ** max(attempts, 1))
    return base * random.uniform(0.8, 1.2)
