"""The intake: a verified, parsed delivery is stored once (dedupe + persist, one
transaction) before the platform edge acknowledges it.

Takes from concurrent requests are committed together (``GroupCommit``): one database
round trip for many callbacks keeps the acknowledgement well inside the platform's
deadline under load. The intake also says when a burst has let up (``until_quiet``), so
the processing of stored deliveries (``bot.chat.pipeline``) never slows an
acknowledgement down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine
from sqlmodel import Session

from bot.chat.events import Event
from bot.clock import now as clock_now
from storage import inbound
from storage.db import Busy, durable, loop_engine, loop_transaction, transaction, transaction_now

QUIET_AFTER = 0.1  # seconds without concurrent callbacks before deferred work resumes


class GroupCommit:
    """Writes the deliveries of concurrent requests in one transaction per round.

    The loop never waits on the disk for it: on PostgreSQL a round is one statement the
    loop awaits (``loop_engine``). On SQLite, when no writer is ahead, the round's rows are
    written on the loop (a few statements, cheaper than handing them to a thread while the
    loop holds the GIL) and its commit — the disk sync of ``durable`` — runs on the intake
    thread, which holds no GIL meanwhile: the loop goes on accepting requests, which form
    the next round. With a writer ahead, the whole round waits for it on the intake thread.
    Either way a request is answered only after its round's commit has returned.
    """

    def __init__(self, engine: Engine, max_batch: int = 500) -> None:
        self._engine = durable(engine)  # an acknowledged delivery survives a power loss
        self._max_batch = max_batch
        self._waiting: list[tuple[Event, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None
        self._loop_engine = loop_engine(engine)
        # Its own thread: an acknowledgement never queues behind a handler in the shared pool.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake")
        self._last_busy = -1.0  # loop time of the last round that had company
        self._quiet = asyncio.Event()  # set when the intake became quiet; cleared while it is not
        self._quiet.set()
        self._settling: asyncio.TimerHandle | None = None  # sets ``_quiet`` once a burst has let up

    async def take(self, event: Event) -> bool:
        """Whether the delivery is new (False: a duplicate of one already taken)."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((event, future))
        self._quiet.clear()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_rounds())
        return await future

    def quiet(self) -> bool:
        """No burst of callbacks right now: handling work will not slow acknowledgements."""
        return not self._waiting and asyncio.get_running_loop().time() - self._last_busy > QUIET_AFTER

    async def until_quiet(self, at_most: float) -> None:
        """Wait until the intake is quiet, for at most ``at_most`` seconds (under
        sustained load, deferred work must still progress)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most
        while not self.quiet():
            left = deadline - loop.time()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._quiet.wait(), timeout=left)
            except TimeoutError:
                return
            if not self.quiet():  # set before a new take came in: wait for the next settling
                self._quiet.clear()

    async def close(self) -> None:
        """Finish the rounds already taken (their requests are answered: stored, or a 5xx),
        then close the loop's database connections (a later take opens them again)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        if self._loop_engine is not None:
            await self._loop_engine.dispose()

    async def _write_rounds(self) -> None:
        try:
            while self._waiting:
                round_, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch:]
                if len(round_) > 1 or self._waiting:
                    self._last_busy = asyncio.get_running_loop().time()
                events = [event for event, _ in round_]
                try:
                    new = await self._write_round(events)
                except Exception as exc:  # every waiting request answers "try again" (a 5xx the platform retries)
                    for _, future in round_:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                seen = set()
                for event, future in round_:
                    key = (event.platform, event.delivery_key)
                    if not future.done():
                        future.set_result(key in new and key not in seen)
                    seen.add(key)
        finally:
            self._settle()

    def _settle(self) -> None:
        """Set ``_quiet`` as soon as the intake is quiet: now, or once ``QUIET_AFTER`` has
        passed since the last burst (unless another burst comes meanwhile)."""
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        if self._waiting:  # the writer is still at work and settles again when done
            return
        loop = asyncio.get_running_loop()
        if self.quiet():
            self._quiet.set()
        else:
            self._settling = loop.call_later(self._last_busy + QUIET_AFTER - loop.time(), self._settle)

    async def _write_round(self, events: list[Event]) -> set[tuple[str, str]]:
        if self._loop_engine is not None:
            async with loop_transaction(self._loop_engine) as session:
                # sqlmodel's AsyncSession runs ``_take`` with its sqlmodel Session; run_sync keeps
                # SQLAlchemy's signature, which names the plain one.
                return await session.run_sync(_take, events)  # type: ignore[arg-type]
        try:
            return await self._write_then_sync(events)
        except Busy:  # a writer is ahead: wait for it on the intake thread, not on the loop
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._write, events)

    async def _write_then_sync(self, events: list[Event]) -> set[tuple[str, str]]:
        """SQLite, when no writer is ahead: the rows written on the loop, the commit on the
        intake thread. The transaction's place in this process's writer queue (``writer_lock``)
        is held until the commit has returned: no other writer of the process comes between.

        Raises:
            Busy: a writer of this process or another is ahead (nothing was written).
        """
        with transaction_now(self._engine) as session:
            new = _take(session, events)
            await self._on_thread(session.commit)  # what is left to commit at the end is nothing
        return new

    async def _on_thread(self, work: Callable[[], object]) -> None:
        """``work`` on the intake thread, awaited to its end even if the caller is cancelled
        (the session it commits must not be rolled back on the loop meanwhile)."""
        done = asyncio.get_running_loop().run_in_executor(self._thread, work)
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.wait([done])
            raise

    def _write(self, events: list[Event]) -> set[tuple[str, str]]:
        with transaction(self._engine) as session:
            return _take(session, events)


def _take(session: Session, events: list[Event]) -> set[tuple[str, str]]:
    unique = {(e.platform, e.delivery_key): e for e in reversed(events)}  # first of each key wins
    return inbound.take(session, [(p, k, e.to_json()) for (p, k), e in unique.items()], clock_now())
