"""Stored deliveries are handled in rounds (issue 20 item 2): several in one transaction,
each in its own savepoint, in the order they came. A handler that fails undoes only its
own delivery, which is tried again later; the others of its round are done and answered
once. A task's batch is loaded without its large columns, which are still there for
whatever reads them."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from bot import outbox_keys
from bot.batches.inspection import open_team_locked
from bot.batches.records import find_batch
from bot.chat import pipeline as pipeline_module
from bot.chat.events import CardAction, Event
from bot.chat.pipeline import Pipeline
from bot.outbound import USER, Destination
from handlers import router as full_router
from storage import inbound
from storage.db import transaction
from storage.models import AuditEntry, Batch, InboundDelivery, OutboxMessage
from tests.support.batch_district import seed_district
from tests.support.results_district import drawn_batch
from tests.support.wecom_bot import ADMIN, fake_wecom, link_inspectors, wecom_settings


def _seats(engine) -> list[tuple[int, str, str, int]]:
    """Each standing place of the drawn batch: (task, inspector, WeCom user, assignment), by task and position."""
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT a.task_id, i.id, i.wecom_userid, a.id FROM assignments a JOIN inspectors i ON i.id = a.inspector_id"
            " WHERE a.status <> 'recused' ORDER BY a.task_id, a.position"))]


@pytest.fixture
def district(engine, tmp_path):
    seed_district(engine, tmp_path)
    link_inspectors(engine)
    batch_id = drawn_batch(engine, count=2)
    return batch_id, _seats(engine)


def _typed(key: str, user: str, words: str, at: datetime) -> Event:
    return Event("wecom", key, user, "private", Destination("wecom", USER, user), at, text=words)


def _clicked(key: str, user: str, task: int, assignment: int, at: datetime) -> Event:
    click = CardAction(f"ss-t{task}-a{assignment}", "confirm", str(task), update_token=f"rc-{key}")
    return Event("wecom", key, user, "private", Destination("wecom", USER, user), at, action=click)


def _store(engine, events: list[Event], at: datetime) -> None:
    with transaction(engine) as session:
        inbound.take(session, [(e.platform, e.delivery_key, e.to_json()) for e in events], at)


def _pipeline(engine, failing: set[str] = frozenset()) -> Pipeline:
    """The bot's router; 帮助 fails (a bug, not a refusal) for the delivery keys in ``failing``."""
    joined = full_router()
    help_route = joined.commands["帮助"]

    def show_help_or_fail(ctx):
        if ctx.event.delivery_key in failing:
            raise RuntimeError("a bug in one handler")
        help_route.handler(ctx)
    broken = replace(help_route, handler=show_help_or_fail)
    for name in help_route.names:
        joined.commands[name.lower()] = broken
    fake = fake_wecom()
    fake.base_url = "http://127.0.0.1:9"  # nothing is sent here
    return Pipeline(engine, wecom_settings(fake), joined, "me")


def _rows(engine) -> dict[str, InboundDelivery]:
    with Session(engine) as session:
        return {row.delivery_key: row for row in session.exec(select(InboundDelivery))}


def _replies(engine) -> dict[str, int]:
    """Delivery key → how many first answers it has in the outbox."""
    with Session(engine) as session:
        keys = [m.idempotency_key for m in session.exec(select(OutboxMessage))]
    counted: dict[str, int] = {}
    for key in keys:
        for delivery in ("h0", "h1", "h2", "h3", "h4"):
            if key == outbox_keys.reply("wecom", delivery, 0).value:
                counted[delivery] = counted.get(delivery, 0) + 1
    return counted


def _counting_transactions(monkeypatch) -> list[int]:
    """Count the transactions the pipeline opens (the claim's, a round's, a failure's)."""
    opened: list[int] = []
    real = pipeline_module.transaction

    def counted(engine):
        opened.append(1)
        return real(engine)
    monkeypatch.setattr(pipeline_module, "transaction", counted)
    return opened


async def test_one_failing_handler_in_a_round_leaves_the_others_done_and_answered_once(engine, district,
                                                                                       monkeypatch):
    _, seats = district
    (task, _, first, place), (same_task, _, second, _) = seats[0], seats[1]
    assert task == same_task
    now = datetime.now(UTC)
    _store(engine, [_typed("h0", ADMIN, "帮助", now), _clicked("h1", first, task, place, now),
                    _typed("h2", ADMIN, "帮助", now), _typed("h3", second, f"确认 任务={task}", now),
                    _typed("h4", ADMIN, "帮助", now)], now)
    pipeline = _pipeline(engine, failing={"h2"})
    monkeypatch.setattr(pipeline_module, "ROUND_SECONDS", 60.0)  # one round, however slow the machine
    opened = _counting_transactions(monkeypatch)

    assert await pipeline.process() == 5
    rows = _rows(engine)
    assert {key: rows[key].status for key in rows} == {"h0": "done", "h1": "done", "h2": "pending",
                                                       "h3": "done", "h4": "done"}
    assert rows["h2"].error == "RuntimeError" and rows["h2"].attempts == 1
    assert _replies(engine) == {"h0": 1, "h1": 1, "h3": 1, "h4": 1}, "the failed delivery was answered"
    assert len(opened) == 2, f"the five deliveries took {len(opened) - 1} transactions after the claim, not one"
    with Session(engine) as session:  # both confirmations stand: the task is accepted
        assert [e.subject for e in session.exec(select(AuditEntry).where(AuditEntry.action == "task.confirmed"))] \
            == [str(task), str(task)]

    # tried again later (it works now), answered once; the others are not handled again
    later = _pipeline(engine)
    monkeypatch.setattr(pipeline_module, "clock_now", lambda: now + timedelta(minutes=1))
    assert await later.process() == 1
    assert _rows(engine)["h2"].status == "done"
    assert _replies(engine) == {"h0": 1, "h1": 1, "h2": 1, "h3": 1, "h4": 1}


async def test_two_deliveries_on_one_task_in_a_round_are_handled_in_the_order_they_came(engine, district,
                                                                                       monkeypatch):
    _, seats = district
    (task, first_id, first, place), (_, second_id, second, _) = seats[0], seats[1]
    now = datetime.now(UTC)
    _store(engine, [_clicked("h0", first, task, place, now), _typed("h1", second, f"确认 任务={task}", now)], now)
    monkeypatch.setattr(pipeline_module, "ROUND_SECONDS", 60.0)
    opened = _counting_transactions(monkeypatch)
    assert await _pipeline(engine).process() == 2
    assert len(opened) == 2  # the claim, and one round
    with Session(engine) as session:
        confirmed = [e.detail for e in session.exec(select(AuditEntry).where(AuditEntry.action == "task.confirmed")
                                                    .order_by(AuditEntry.seq))]
        answers = {m.idempotency_key: m.payload for m in session.exec(select(OutboxMessage))}
    # the first to come confirmed first; the second's confirmation completed the team
    assert [(d["inspector"], d["accepted"]) for d in confirmed] == [(first_id, False), (second_id, True)]
    first_answer = str(answers[outbox_keys.reply("wecom", "h0", 0).value])
    second_answer = str(answers[outbox_keys.reply("wecom", "h1", 0).value])
    assert "任务已接受" not in first_answer and "任务已接受" in second_answer


async def test_deliveries_on_the_same_task_keep_their_order_across_rounds_of_one_delivery(engine, district,
                                                                                           monkeypatch):
    """A round closes after ROUND_SECONDS: the rest go in the next one, still in order."""
    _, seats = district
    (task, first_id, first, place), (_, second_id, second, _) = seats[0], seats[1]
    now = datetime.now(UTC)
    _store(engine, [_clicked("h0", first, task, place, now), _typed("h1", second, f"确认 任务={task}", now)], now)
    monkeypatch.setattr(pipeline_module, "ROUND_SECONDS", 0.0)  # one delivery a round
    opened = _counting_transactions(monkeypatch)
    assert await _pipeline(engine).process() == 2
    assert len(opened) == 3  # the claim, and a round each
    with Session(engine) as session:
        confirmed = [e.detail["inspector"] for e in session.exec(
            select(AuditEntry).where(AuditEntry.action == "task.confirmed").order_by(AuditEntry.seq))]
    assert confirmed == [first_id, second_id]


async def test_a_round_whose_transaction_fails_is_handled_one_delivery_at_a_time(engine, district, monkeypatch):
    now = datetime.now(UTC)
    _store(engine, [_typed(f"h{n}", ADMIN, "帮助", now) for n in range(3)], now)
    pipeline = _pipeline(engine)

    def lost(*args, **kwargs):
        raise ConnectionError("the round's connection was lost")
    monkeypatch.setattr(pipeline, "_round", lost)
    assert await pipeline.process() == 3
    assert {row.status for row in _rows(engine).values()} == {"done"}
    assert _replies(engine) == {"h0": 1, "h1": 1, "h2": 1}


def test_the_team_lock_leaves_the_batch_s_large_columns_unloaded_yet_readable(engine, district):
    batch_id, seats = district
    task, inspector = seats[0][0], seats[0][1]
    with Session(engine) as session:
        stored = session.get_one(Batch, batch_id)
        inputs, roster, sealed = stored.matching_inputs, stored.roster, stored.secret_encrypted
    assert inputs and roster and sealed  # the draw stored them
    with transaction(engine) as session:
        _, batch, _, _ = open_team_locked(session, task, inspector)
        unloaded = {"matching_inputs", "roster", "secret_encrypted"} - set(batch.__dict__)
        assert unloaded == {"matching_inputs", "roster", "secret_encrypted"}, "the team lock loaded the large columns"
        assert find_batch(session, batch_id) is batch  # whoever reads the batch next in the transaction …
        assert (batch.matching_inputs, batch.roster, batch.secret_encrypted) == (inputs, roster, sealed)  # … gets them


async def test_a_round_shares_its_transaction_but_not_its_answers_between_platform_users(engine, district,
                                                                                          monkeypatch):
    """Every delivery of a round is answered to its own sender, in the order each sent them."""
    _, seats = district
    now = datetime.now(UTC)
    users = [seats[0][2], seats[1][2]]
    events = [_typed(f"h{n}", users[n % 2], "帮助", now + timedelta(seconds=n)) for n in range(4)]
    _store(engine, events, now)
    monkeypatch.setattr(pipeline_module, "ROUND_SECONDS", 60.0)
    assert await _pipeline(engine).process() == 4
    with Session(engine) as session:
        sent = [(m.recipient, m.idempotency_key)
                for m in session.exec(select(OutboxMessage).order_by(OutboxMessage.id))]
    for user in users:
        mine = [key for recipient, key in sent if recipient == user]
        expected = [outbox_keys.reply("wecom", f"h{n}", 0).value for n in range(4) if users[n % 2] == user]
        assert mine == expected


async def test_concurrent_processing_of_the_same_backlog_handles_each_delivery_once(engine, district):
    now = datetime.now(UTC)
    _store(engine, [_typed(f"h{n}", ADMIN, "帮助", now) for n in range(5)], now)
    pipeline = _pipeline(engine)
    counts = await asyncio.gather(pipeline.process(), pipeline.process())
    assert sum(counts) == 5
    assert _replies(engine) == {f"h{n}": 1 for n in range(5)}


class _Deadlock(Exception):
    sqlstate = "40P01"  # PostgreSQL's deadlock_detected, as psycopg raises it


async def test_a_delivery_that_meets_a_deadlock_ends_its_round_and_comes_first_in_the_next(engine, district,
                                                                                            monkeypatch):
    """Two instances' rounds holding rows the other needs: PostgreSQL aborts one statement.
    What the round did stands; the delivery is handled again at once, no attempt spent."""
    from sqlalchemy.exc import OperationalError

    now = datetime.now(UTC)
    _store(engine, [_typed(f"h{n}", ADMIN, "帮助", now) for n in range(4)], now)
    pipeline = _pipeline(engine)
    help_route = pipeline.router.commands["帮助"]
    met = []

    def deadlocked_once(ctx):
        if ctx.event.delivery_key == "h2" and not met:
            met.append(1)
            raise OperationalError("SELECT … FOR UPDATE", {}, _Deadlock())
        help_route.handler(ctx)
    for name in help_route.names:
        pipeline.router.commands[name.lower()] = replace(help_route, handler=deadlocked_once)
    monkeypatch.setattr(pipeline_module, "ROUND_SECONDS", 60.0)
    opened = _counting_transactions(monkeypatch)
    assert await pipeline.process() == 4
    assert met and len(opened) == 3  # the claim, the round ended before h2, the next round
    rows = _rows(engine)
    assert {key: (row.status, row.attempts, row.error) for key, row in rows.items()} == {
        f"h{n}": ("done", 1, None) for n in range(4)}
    assert _replies(engine) == {f"h{n}": 1 for n in range(4)}
