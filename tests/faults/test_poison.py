"""Poison and slow work (issue 17 item 18): a delivery that kills its process every time
is given up and the admins are told; a short database outage spends no attempts; an
outbox send keeps its lease however long it takes; 核验 does not hold the write lock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from bot import outbox_keys
from bot.chat import pipeline as pipeline_module
from bot.chat.dispatcher import Dispatcher, Sent
from bot.chat.events import Event
from bot.chat.pipeline import LEASE, MAX_ATTEMPTS, Pipeline
from bot.chat.router import Router
from bot.clock import now as clock_now
from bot.outbound import USER, Destination, Text
from bot.refusal import Refusal
from bot.settings import RolesSettings, Settings
from storage import inbound, outbox
from storage.db import transaction
from storage.models import InboundDelivery, OutboxMessage

ADMIN = "boss"
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def _event(key: str = "k-1") -> Event:
    return Event(platform="console", delivery_key=key, sender=ADMIN, chat="private",
                 reply_to=Destination("console", USER, ADMIN), at=T0, text="试")


def _pipeline(engine, handler) -> Pipeline:
    router = Router()
    router.command("试")(handler)
    settings = Settings(roles=RolesSettings(admins=[ADMIN]))
    return Pipeline(engine, settings, router, "me")


def _take(engine, event: Event, at: datetime) -> None:
    with transaction(engine) as session:
        assert inbound.take(session, [(event.platform, event.delivery_key, event.to_json())], at)


def _row(engine, key: str = "k-1") -> InboundDelivery:
    with Session(engine) as session:
        return session.exec(select(InboundDelivery).where(InboundDelivery.delivery_key == key)).one()


def _outbox(engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage)))


async def test_a_delivery_that_kills_its_process_every_time_is_given_up_and_the_admins_are_told(
        engine, monkeypatch):
    ran = []
    pipeline = _pipeline(engine, lambda ctx: ran.append(ctx.event.delivery_key))
    _take(engine, _event(), T0)
    at = T0
    for _ in range(MAX_ATTEMPTS):  # claimed, then the process died in the handler
        with transaction(engine) as session:
            assert inbound.claim(session, "dead", at, lease=LEASE)
        at += LEASE + timedelta(seconds=1)
    monkeypatch.setattr(pipeline_module, "clock_now", lambda: at)
    assert await pipeline.process() == 1
    assert ran == [], "a delivery claimed MAX_ATTEMPTS times without an end was handled once more"
    row = _row(engine)
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS + 1
    told = {m.idempotency_key: m for m in _outbox(engine)}
    notice = told[outbox_keys.poisoned("console", "k-1", ADMIN).value]
    assert notice.recipient == ADMIN and "消息处理中断" in notice.payload["message"]["text"]
    assert outbox_keys.failed("console", "k-1").value in told  # the sender hears sorry
    # never claimed again
    monkeypatch.setattr(pipeline_module, "clock_now", lambda: at + timedelta(hours=1))
    assert await pipeline.process() == 0


async def test_a_handled_failure_still_gives_up_after_max_attempts(engine, monkeypatch):
    def broken(ctx):
        raise ValueError("a bug")
    pipeline = _pipeline(engine, broken)
    _take(engine, _event(), T0)
    now = T0
    for _ in range(MAX_ATTEMPTS):
        monkeypatch.setattr(pipeline_module, "clock_now", lambda: now)
        assert await pipeline.process() == 1
        now = _row(engine).next_attempt_at.replace(tzinfo=UTC)
    assert _row(engine).status == "failed"


def _outage_until(end: datetime, clock: list[datetime], ran: list[datetime]):
    def handler(ctx):
        if clock[0] < end:
            raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection unexpectedly"))
        ran.append(clock[0])
    return handler


async def test_a_database_outage_of_fifteen_seconds_does_not_exhaust_the_retries(engine, monkeypatch):
    clock, ran = [T0], []
    pipeline = _pipeline(engine, _outage_until(T0 + timedelta(seconds=16), clock, ran))
    monkeypatch.setattr(pipeline_module, "clock_now", lambda: clock[0])
    _take(engine, _event(), T0)
    for _ in range(20):
        await pipeline.process()
        row = _row(engine)
        if row.status != "pending":
            break
        clock[0] = row.next_attempt_at.replace(tzinfo=UTC)
    row = _row(engine)
    assert row.status == "done", f"a 16 s outage made the delivery {row.status} after {row.attempts} attempts"
    assert ran and row.attempts == 1, "the outage spent attempts"


async def test_an_outage_longer_than_the_patience_counts_like_any_failure(engine, monkeypatch):
    clock, ran = [T0], []
    pipeline = _pipeline(engine, _outage_until(T0 + timedelta(days=1), clock, ran))
    monkeypatch.setattr(pipeline_module, "clock_now", lambda: clock[0])
    _take(engine, _event(), T0)
    for _ in range(200):
        await pipeline.process()
        row = _row(engine)
        if row.status != "pending":
            break
        clock[0] = row.next_attempt_at.replace(tzinfo=UTC)
    row = _row(engine)
    assert row.status == "failed" and not ran
    assert clock[0] - T0 >= pipeline_module.OUTAGE_PATIENCE


class _SlowSender:
    """A platform whose send takes longer than the outbox lease (a token fetch, an upload…)."""

    platform = "console"

    def __init__(self, seconds: float) -> None:
        self.seconds, self.sends = seconds, 0

    def limits(self, rate_key):
        return ()

    async def send(self, destination, message, *, in_doubt):
        self.sends += 1
        await asyncio.sleep(self.seconds)
        return Sent({})


async def test_a_send_slower_than_the_lease_is_not_taken_over_and_sent_twice(engine):
    with transaction(engine) as session:
        outbox.queue(session, Destination("console", USER, ADMIN), Text("慢"), "slow-send")
    mine = _SlowSender(1.5)
    first = Dispatcher(engine, Settings(), [mine], "first")
    first.lease = lease = timedelta(seconds=0.6)  # the lease scaled down with the send
    sending = asyncio.create_task(first.run_once())
    await asyncio.sleep(1.0)  # past the lease, the send still under way
    with transaction(engine) as session:  # another instance looks for abandoned rows
        taken = outbox.claim(session, "second", clock_now(), lambda key: (), lease=lease)
    assert taken == [], "another instance took over a row still being sent"
    assert await sending == 1
    (row,) = _outbox(engine)
    assert (row.status, row.attempts, row.in_doubt, mine.sends) == ("sent", 1, False, 1)


def test_the_dispatcher_uses_the_outbox_lease_and_renews_it_in_time(engine):
    dispatcher = Dispatcher(engine, Settings(), [], "x")
    assert dispatcher.lease == outbox.LEASE  # one definition


async def test_verify_recomputes_the_draw_outside_the_write_transaction(bot, wecom, engine, monkeypatch):
    """核验 is long CPU work: while it runs another writer commits (on SQLite it would
    wait for the whole recomputation behind the handler's write lock)."""
    import threading

    from handlers import batches as batch_handlers
    from storage.db import READING
    from tests.support.chat_tasks import drawn
    from tests.support.wecom_bot import ADMIN as WECOM_ADMIN
    from tests.support.wecom_bot import Walk

    batch_id, _ = await drawn(bot, engine)
    seen: list[tuple[bool, bool]] = []
    real_export = batch_handlers.export

    def export(session, *args, **kwargs):
        wrote = threading.Event()

        def writer():
            with transaction(engine) as other:
                other.execute(select(InboundDelivery).limit(1))
            wrote.set()
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        seen.append((bool(session.get_bind().get_execution_options().get(READING)), wrote.wait(5)))
        return real_export(session, *args, **kwargs)

    monkeypatch.setattr(batch_handlers, "export", export)
    answer = await Walk(wecom, engine, bot).say(WECOM_ADMIN, f"核验 批次={batch_id}")
    assert f"核验批次 {batch_id}" in answer and "不一致" not in answer
    assert seen == [(True, True)], "核验 ran in the write transaction (another writer had to wait for it)"


async def test_draw_selects_and_matches_outside_the_write_transaction(bot, wecom, engine, monkeypatch):
    """抽取 scores every pool and matches every task before its write transaction: while
    that runs another writer commits, and the write transaction does not do it again."""
    import threading

    from bot.app import SETTINGS
    from bot.batches import draw as draw_module
    from storage.db import READING
    from tests.support.batches import published_batch
    from tests.support.wecom_bot import ADMIN as WECOM_ADMIN
    from tests.support.wecom_bot import Walk

    batch_id = await asyncio.to_thread(published_batch, engine, bot[SETTINGS], "事项=A01 数量=2 方式=大随机")
    seen: list[tuple[str, bool, bool]] = []
    real_select, real_match = draw_module.select_lines, draw_module.match_recorded

    def other_writer_commits() -> bool:
        wrote = threading.Event()

        def writer():
            with transaction(engine) as other:
                other.execute(select(InboundDelivery).limit(1))
            wrote.set()
        threading.Thread(target=writer, daemon=True).start()
        return wrote.wait(5)

    def reading(session) -> bool:
        return bool(session.get_bind().get_execution_options().get(READING))

    def select_lines(*args, **kwargs):
        seen.append(("select", reading(current[0]), other_writer_commits()))
        return real_select(*args, **kwargs)

    def match_recorded(*args, **kwargs):
        seen.append(("match", reading(current[0]), other_writer_commits()))
        return real_match(*args, **kwargs)

    current: list = [None]
    real_select_of = draw_module._select

    def _select(session, *args, **kwargs):
        current[0] = session
        return real_select_of(session, *args, **kwargs)

    monkeypatch.setattr(draw_module, "select_lines", select_lines)
    monkeypatch.setattr(draw_module, "match_recorded", match_recorded)
    monkeypatch.setattr(draw_module, "_select", _select)
    answer = await Walk(wecom, engine, bot).say(WECOM_ADMIN, f"抽取 批次={batch_id}")
    assert f"已抽取批次 {batch_id}" in answer and "检查任务 2 项" in answer
    assert seen == [("select", True, True), ("match", True, True)], \
        "抽取 worked in the write transaction (another writer had to wait for it), or worked twice"
    with Session(engine) as session:
        from storage.models import Batch, Task
        assert session.get_one(Batch, batch_id).status == "drawn"
        assert len(session.exec(select(Task).where(Task.batch_id == batch_id)).all()) == 2


async def test_a_prepared_draw_is_worked_again_when_the_batch_changed_before_the_write(bot, engine):
    """What ``draw.prepare`` read is used only if the write transaction finds the same
    inputs: an object moved to another unit meanwhile is matched as it now stands, and a
    batch drawn meanwhile is refused — never drawn twice."""
    from bot.app import SETTINGS
    from bot.batches import draw as draw_module
    from bot.rules.arguments import parse_arguments
    from storage.db import reading
    from storage.models import Assignment, Batch, InspectionObject, Task
    from tests.support.batches import published_batch

    settings = bot[SETTINGS]
    batch_id = await asyncio.to_thread(published_batch, engine, settings, "事项=A01 数量=2 方式=小随机")
    text = f"批次={batch_id}"
    with reading(engine) as session:
        prepared = draw_module.prepare(session, settings, text, clock_now())
    assert prepared is not None and not isinstance(prepared.outcome, Exception)
    moved = prepared.selection.tasks[0].object_id
    with transaction(engine) as session:  # the object changes unit after the draw was worked out
        obj = session.get_one(InspectionObject, moved)
        other = next(u for u in ("S-DC", "S-XC") if u != obj.unit_id)
        obj.unit_id = other
        session.add(obj)
    with transaction(engine) as session:
        draw_module.draw(session, settings, "admin", parse_arguments(text, draw_module.DRAW_KEYS), clock_now(),
                         prepared)
    with Session(engine) as session:
        task = session.exec(select(Task).where(Task.batch_id == batch_id, Task.object_id == moved)).one()
        batch = session.get_one(Batch, batch_id)
        staffed = batch.matching_inputs["objects"]
        assert next(o["unit"] for o in staffed if o["id"] == moved) == other
        inspectors = {a.inspector_id for a in session.exec(select(Assignment).where(Assignment.task_id == task.id))}
        units = {i["id"]: i["unit"] for i in batch.matching_inputs["inspectors"]}
        assert {units[i] for i in inspectors} == {other}, "matched on the unit read before the write"
    with transaction(engine) as session, pytest.raises(Refusal) as refused:  # drawn meanwhile
        draw_module.draw(session, settings, "admin", parse_arguments(text, draw_module.DRAW_KEYS), clock_now(),
                         prepared)
    assert refused.value.message == "not_published"
