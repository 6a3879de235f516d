"""Privacy at rest (issue 17 item 16): a conflict declaration lives only sealed.

A recusal's reason never goes into a card text, and the retention job blanks what people
typed in done deliveries and deletes sent messages and console chats after
``[retention] days``; what is younger stays, and so do the records (监管痕迹)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from bot import retention as retention_job
from bot.app import SETTINGS
from bot.chat.events import Event
from bot.clock import now as clock_now
from bot.outbound import USER, Destination, Text
from storage import outbox
from storage.db import transaction
from storage.models import Assignment, ConsoleMessage, Evidence, InboundDelivery, OutboxMessage, Task
from storage.retention import BLANK_AFTER, Purged, purge
from tests.support.batches import rows, team
from tests.support.chat_tasks import drawn
from tests.support.wecom_bot import INSPECTOR_IDS, Walk

REASON = "与该企业法定代表人系表兄弟"  # the declaration: only sealed, never in plaintext at rest
TABLES = ("inbound_deliveries", "outbox", "console_messages")


def _plain(engine, table: str) -> list[str]:
    """Every raw row of ``table`` as the database returns it, as text."""
    with engine.connect() as connection:
        return [repr(tuple(row)) for row in connection.exec_driver_sql(f"SELECT * FROM {table}")]


def _holding(engine, text: str) -> dict[str, int]:
    """How many raw rows of each table hold ``text`` (as typed, or as JSON escapes it)."""
    forms = (text, json.dumps(text)[1:-1], json.dumps(text)[1:-1].replace("\\", "\\\\"))
    return {t: n for t in TABLES if (n := sum(any(f in row for f in forms) for row in _plain(engine, t)))}


async def _recuse_typed(bot, wecom, engine) -> tuple[Walk, Task, str]:
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    leaving = team(engine, task.id)[0]
    assert "请直接回复回避原因" in await walk.say(INSPECTOR_IDS[leaving], f"回避 任务={task.id}")
    assert "替补" in await walk.say(INSPECTOR_IDS[leaving], REASON)
    return walk, task, leaving


def _console(engine, at) -> None:
    with transaction(engine) as session:
        session.add(ConsoleMessage(conversation="u1", author="u1", kind="text",
                                   payload={"text": f"回避 任务=1 原因={REASON}"}, at=at))


async def test_the_task_card_closed_by_a_recusal_does_not_carry_its_reason(bot, wecom, engine):
    walk, task, leaving = await _recuse_typed(bot, wecom, engine)
    (assignment,) = rows(engine, Assignment, Assignment.task_id == task.id, Assignment.inspector_id == leaving)
    (card,) = walk.cards(INSPECTOR_IDS[leaving], f"ss-t{task.id}-a{assignment.id}")
    assert walk.closed(card["id"]) == "已申请回避"
    assert "outbox" not in _holding(engine, REASON), "a card update carries the recusal's reason in plaintext"
    assert [a for a in rows(engine, Assignment) if a.recusal_reason == REASON], "the reason is kept (sealed)"


async def test_a_card_chosen_reason_is_not_in_the_closed_card_either(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    await walk.quiet()  # the task cards are out
    task = tasks[0]
    leaving = team(engine, task.id)[0]
    user = INSPECTOR_IDS[leaving]
    (assignment,) = rows(engine, Assignment, Assignment.task_id == task.id, Assignment.inspector_id == leaving)
    (task_card,) = walk.cards(user, f"ss-t{task.id}-a{assignment.id}")
    await walk.click(user, task_card, f"recuse:{task.id}")
    (reason_card,) = walk.cards(user, f"ss-rr{task.id}-")
    assert "替补" in await walk.click(user, reason_card, f"recuse_reason:{task.id}:kin")
    assert walk.closed(task_card["id"]) == "已申请回避"
    assert walk.closed(reason_card["id"]) == "已申请回避"


async def test_retention_leaves_no_plaintext_declaration_and_keeps_what_is_younger(bot, wecom, engine):
    await _recuse_typed(bot, wecom, engine)
    now = clock_now()
    _console(engine, now - timedelta(days=31))
    assert set(_holding(engine, REASON)) == {"inbound_deliveries", "console_messages"}  # before the job
    sent_before = len(rows(engine, OutboxMessage, OutboxMessage.status == "sent"))
    assert sent_before

    # within the retry window and the retention period: only the month-old console line goes
    with transaction(engine) as session:
        assert purge(session, now, 30) == Purged(blanked=0, outbox=0, console=1)
    assert "inbound_deliveries" in _holding(engine, REASON)
    assert len(rows(engine, OutboxMessage, OutboxMessage.status == "sent")) == sent_before
    _console(engine, now)  # a console line of today

    # a day on: the deliveries are blanked, kept for dedupe; the messages of today stay
    deliveries = len(rows(engine, InboundDelivery))
    with transaction(engine) as session:
        done = purge(session, now + BLANK_AFTER + timedelta(minutes=1), 30)
    assert done is not None and done.blanked and done.console == 0
    assert set(_holding(engine, REASON)) == {"console_messages"}  # only today's console line
    assert len(rows(engine, InboundDelivery)) == deliveries
    assert len(rows(engine, OutboxMessage, OutboxMessage.status == "sent")) == sent_before
    for delivery in rows(engine, InboundDelivery):
        assert delivery.event["text"] is None and Event.from_json(delivery.event).delivery_key

    # past ``[retention] days``: sent messages and console lines go; the records stay
    evidence = len(rows(engine, Evidence))
    with transaction(engine) as session:
        done = purge(session, now + timedelta(days=31), 30)
    assert done is not None and done.outbox and done.console == 1
    assert _holding(engine, REASON) == {}
    assert [a for a in rows(engine, Assignment) if a.recusal_reason == REASON], "the sealed reason is kept"
    assert len(rows(engine, Evidence)) == evidence
    left = rows(engine, OutboxMessage, OutboxMessage.status == "sent")
    assert left and all(m.kind == "card" and m.subject for m in left)  # cards still to be greyed out


async def test_the_scheduler_runs_the_job_and_pending_messages_stay(bot, engine):
    with transaction(engine) as session:
        outbox.queue(session, Destination("wecom", USER, "u1"), Text(REASON), "retention-test")
    with transaction(engine) as session:
        assert purge(session, clock_now() + timedelta(days=90), 30) is not None
    assert rows(engine, OutboxMessage, OutboxMessage.idempotency_key == "retention-test")  # never sent: kept
    assert await asyncio.to_thread(retention_job.run_once, engine, bot[SETTINGS]) is not None


def test_the_ticker_schedules_the_retention_job(engine):
    from bot.app import reminder_ticker
    from bot.settings import Settings

    scheduler = reminder_ticker(engine, Settings(), dispatcher=None)  # type: ignore[arg-type]
    job = scheduler.get_job("retention")
    assert job is not None and job.trigger.interval == timedelta(minutes=retention_job.EVERY_MINUTES)
