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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
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
    """Drains the outbox for this instance; any number of instances may run one."""

    def __init__(self, engine: Engine, settings: Settings, senders: Sequence[Sender], owner: str,
                 *, batch: int = 50, poll: float = 1.0,
                 observe: Callable[[str, str, str], None] = lambda platform, done, error: None) -> None:
        self.engine, self.settings, self.owner = engine, settings, owner
        self.observe = observe  # (platform, "sent" | "retry" | "failed", error): bot.metrics
        self.senders = {s.platform: s for s in senders}
        self.batch, self.poll = batch, poll
        self.lease = outbox.LEASE  # renewed every third of it while a send is under way
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def limits(self, rate_key: str) -> Sequence[RateLimit]:
        sender = self.senders.get(rate_key.split(":", 1)[0])
        return sender.limits(rate_key) if sender else ()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set; a failure of one round never ends the loop."""
        while not stop.is_set():
            self._wake.clear()  # before the round: a nudge during it is not lost
            try:
                sent = await self.run_once()
            except Exception:
                log.exception("outbox round failed; retrying")
                sent = 0
            if sent:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll)
            except TimeoutError:
                pass

    async def flush(self, budget: float) -> None:
        """Graceful shutdown: send what is due now, for at most ``budget`` seconds (what is
        left — rate-limited, retrying — stays queued for any instance)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        while loop.time() < deadline:
            try:
                if not await asyncio.wait_for(self.run_once(), timeout=max(0.1, deadline - loop.time())):
                    return
            except TimeoutError:
                return  # the sends under way are in doubt: their rows' leases expire and they are retried
            except Exception:
                log.exception("flushing the outbox failed; another instance will send the rest")
                return

    async def run_once(self) -> int:
        """Claim one batch and send it; returns how many were claimed."""
        rows = await asyncio.to_thread(self._claim)
        if not rows:
            return 0
        by_recipient: dict[tuple[str, str], list[Claimed]] = {}
        for row in rows:  # claimed in queue order
            by_recipient.setdefault((row.platform, row.recipient), []).append(row)
        sending = {row.id for row in rows}
        renewer = asyncio.create_task(self._keep_leases(sending))
        try:
            await asyncio.gather(*(self._deliver_in_order(group, sending) for group in by_recipient.values()))
        finally:
            renewer.cancel()
        return len(rows)

    async def _deliver_in_order(self, rows: list[Claimed], sending: set[int]) -> None:
        """One recipient's messages one after the other, so they read in the order queued."""
        for row in rows:
            await self._deliver(row)
            sending.discard(row.id)

    async def _keep_leases(self, sending: set[int]) -> None:
        """While this round sends, renew its rows' leases: a slow send (a token fetch, a
        media upload, a long text in parts) is not taken over and sent twice; only a dead
        instance's rows expire."""
        every = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            if sending:
                try:
                    await asyncio.to_thread(self._renew, sorted(sending))
                except Exception:
                    log.exception("renewing outbox leases failed; trying again")

    def _renew(self, row_ids: list[int]) -> None:
        with transaction(self.engine) as session:
            outbox.renew(session, row_ids, self.owner, clock_now())

    def _claim(self) -> list[Claimed]:
        with transaction(self.engine) as session:
            now = clock_now()
            rows = outbox.claim(session, self.owner, now, self.limits, batch=self.batch, lease=self.lease)
            if random.random() < 0.02:  # keep the rate-slot table to the last hour
                outbox.forget_old_slots(session, now)
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
        done = await asyncio.to_thread(self._record, row, outcome)
        if done:
            self.observe(row.platform, done, "" if isinstance(outcome, Sent) else outcome.error)

    def _record(self, row: Claimed, outcome: Outcome) -> str | None:
        """Record the outcome; returns what was recorded (sent, retry, failed), None if the
        row was no longer this instance's."""
        now = clock_now()
        with transaction(self.engine) as session:
            if isinstance(outcome, Sent):
                outbox.mark_sent(session, row.id, self.owner, outcome.response, now)
                log.info("outbox message %s sent: %s to a %s %s", row.id, row.kind, row.platform,
                         row.payload["destination"]["kind"])
                return "sent"
            if isinstance(outcome, Retry) and now - row.created_at < GIVE_UP_AFTER:
                delay = outcome.after if outcome.after is not None else _backoff(row.attempts)
                outbox.mark_retry(session, row.id, self.owner, outcome.error, now + timedelta(seconds=delay),
                                  in_doubt=outcome.in_doubt or row.in_doubt)
                log.info("outbox message %s will be retried in %.0f s: %s", row.id, delay, outcome.error)
                return "retry"
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


def _summary(row: Claimed) -> str:
    message = row.payload.get("message", {})
    text = message.get("text") or message.get("title") or ""
    return text[:40]


def _backoff(attempts: int) -> float:
    base = min(MAX_BACKOFF, 2.0 ** max(attempts, 1))
    return base * random.uniform(0.8, 1.2)
