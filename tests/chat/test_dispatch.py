"""The outbox dispatcher against the fake WeCom: rate limits kept by delaying, tokens
refreshed, transient failures retried, permanent ones surfaced, resends in doubt made
harmless by WeCom's own idempotency — judged by what the fake delivered."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlmodel import Session, select

import bot.chat.dispatcher as dispatcher_module
import bot.wecom.api as api_module
from bot.chat.dispatcher import Dispatcher
from bot.outbound import USER, Card, Destination, Text
from bot.wecom.api import WeComAPI
from bot.wecom.sender import WeComSender
from storage import outbox
from storage.db import transaction
from storage.models import OutboxMessage
from tests.support.fakes.wecom import FakeClock
from tests.support.wecom_bot import ADMIN, fake_wecom, wecom_settings


@pytest.fixture
async def platform(aiohttp_server):
    fake = fake_wecom(clock=FakeClock(start=time.time()))
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("")).rstrip("/")
    yield fake
    await fake.close()


@pytest.fixture
def clock(monkeypatch):
    """The dispatcher's clock, moved by hand together with the fake's."""
    now = [datetime.now(UTC) + timedelta(seconds=2)]  # rows queued by the test are due
    monkeypatch.setattr(dispatcher_module, "clock_now", lambda: now[0])
    return now


@pytest.fixture
async def dispatcher(engine, platform):
    settings = wecom_settings(platform)
    async with aiohttp.ClientSession() as http:
        api = WeComAPI(settings.wecom, engine, "test-instance", http)
        yield Dispatcher(engine, settings, [WeComSender(settings, api)], "test-instance")


def queue(engine, messages) -> None:
    with transaction(engine) as session:
        outbox.queue_many(session, messages)


def to(user: str) -> Destination:
    return Destination("wecom", USER, user)


async def drain(dispatcher) -> None:
    while await dispatcher.run_once():
        pass


def rows(engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_the_member_rate_limit_delays_and_never_drops(engine, platform, clock, dispatcher):
    queue(engine, [(to("insp01"), Text(f"第{i}条"), f"k{i}") for i in range(45)])
    await drain(dispatcher)
    assert len(platform.delivered_to("insp01")) == 30 and not platform.dropped
    clock[0] += timedelta(seconds=80)
    platform.clock.advance(80)
    await drain(dispatcher)
    assert len(platform.delivered_to("insp01")) == 45 and not platform.dropped
    assert [d["content"] for d in platform.delivered_to("insp01")] == [f"第{i}条" for i in range(45)]


async def test_an_expired_token_is_refreshed_once(engine, platform, clock, dispatcher):
    queue(engine, [(to("insp01"), Text("一"), "a")])
    await drain(dispatcher)
    platform.expire_tokens()
    queue(engine, [(to("insp01"), Text("二"), "b")])
    await drain(dispatcher)
    assert [d["content"] for d in platform.delivered_to("insp01")] == ["一", "二"]
    assert platform.token_calls == 2


async def test_two_api_clients_share_one_token(engine, platform):
    settings = wecom_settings(platform)
    async with aiohttp.ClientSession() as http:
        first = WeComAPI(settings.wecom, engine, "one", http)
        second = WeComAPI(settings.wecom, engine, "two", http)
        assert await first.token() == await second.token()
    assert platform.token_calls == 1


async def test_an_unknown_user_fails_for_good_and_the_admin_is_told(engine, platform, clock, dispatcher):
    queue(engine, [(to("nobody"), Text("你好"), "x")])
    await drain(dispatcher)
    failed, notice = rows(engine)
    assert failed.status == "failed" and "81013" in failed.last_error
    assert notice.recipient == ADMIN and notice.status == "sent"
    (text,) = [d["content"] for d in platform.delivered_to(ADMIN)]
    assert "nobody" in text and "名录" in text


async def test_transient_failures_are_retried_until_delivered(engine, platform, clock, dispatcher, monkeypatch):
    monkeypatch.setattr(dispatcher_module, "_backoff", lambda attempts: 0.0)
    platform.fail_next("message/send", times=2, status=502)
    platform.fail_next("message/send", times=1, errcode=-1)
    platform.fail_next("message/send", times=1, errcode=45009)  # WeCom's frequency limit
    queue(engine, [(to("insp01"), Text("终于"), "k")])
    waits = []
    for _ in range(4):
        await drain(dispatcher)
        (row,) = rows(engine)
        waits.append(round((row.next_attempt_at - clock[0]).total_seconds()))
        clock[0] += timedelta(seconds=61)
    assert not platform.delivered_to("insp01")
    assert waits == [20, 20, 60, 60]  # a 502 may have been acted on: wait it out; busy, rate limit: a minute
    await drain(dispatcher)
    assert [d["content"] for d in platform.delivered_to("insp01")] == ["终于"]
    (row,) = rows(engine)
    assert row.status == "sent" and row.attempts == 5


@pytest.mark.parametrize("message", [Text("只一次"), Card("ss-doubt-1", "任务卡片")])
async def test_a_resend_in_doubt_is_delivered_once(engine, platform, clock, dispatcher, monkeypatch, message):
    """The first attempt times out here but lands at WeCom; the resend must not show twice."""
    import asyncio

    monkeypatch.setattr(api_module, "TIMEOUT", aiohttp.ClientTimeout(total=0.3))
    monkeypatch.setattr(dispatcher_module, "_backoff", lambda attempts: 0.0)
    platform.fail_next("message/send", delay=0.5)
    queue(engine, [(to("insp01"), message, "doubt")])
    await drain(dispatcher)
    (row,) = rows(engine)
    assert row.status == "pending" and row.in_doubt
    assert row.next_attempt_at >= clock[0] + timedelta(seconds=0.6)  # not before it would have landed
    await asyncio.sleep(0.8)  # the slow first attempt lands meanwhile
    clock[0] += timedelta(seconds=1)
    await drain(dispatcher)
    assert len(platform.delivered_to("insp01")) == 1
    (row,) = rows(engine)
    assert row.status == "sent"


async def test_card_updates_use_the_one_time_code(engine, platform, clock, dispatcher):
    from bot.outbound import CARD, Button, CardUpdate

    card = Card("ss-upd-1", "任务", buttons=[Button("confirm", "无利害关系", "1")])
    queue(engine, [(to("insp01"), card, "card")])
    await drain(dispatcher)
    code = rows(engine)[0].platform_response["response_code"]
    update = CardUpdate("ss-upd-1", "已确认", code)
    queue(engine, [(Destination("wecom", CARD, "insp01"), update, "u1")])
    await drain(dispatcher)
    assert platform.card_state["ss-upd-1"]["replaced"] == "已确认"
    queue(engine, [(Destination("wecom", CARD, "insp01"), update, "u2")])  # the code is spent
    await drain(dispatcher)
    assert rows(engine)[-1].status == "failed"
    assert not platform.delivered_to(ADMIN)  # a card that could not be greyed out is not an admin's problem


async def test_a_long_text_goes_as_several_messages_in_order(engine, platform, clock, dispatcher):
    from bot.chat.long_text import split_text

    lines = [f"第{n}行：" + "检查" * 40 for n in range(40)]
    text = "\n".join(lines)
    assert len(text.encode()) > 2048
    queue(engine, [(to("insp01"), Text(text), "long")])
    await drain(dispatcher)
    got = [d["content"] for d in platform.delivered_to("insp01")]
    assert len(got) == len(split_text(text, 2048)) > 1
    assert "\n".join(got) == text and all(len(g.encode()) <= 2048 for g in got)
    assert not platform.dropped


async def test_a_chart_goes_to_the_group_robot_and_to_a_member(engine, platform, clock, dispatcher):
    from bot.outbound import GROUP, Image
    from storage import evidence

    png = b"\x89PNG\r\n\x1a\n" + b"chart" * 100
    with transaction(engine) as session:
        digest = evidence.store(session, png, "image/png")
    queue(engine, [(Destination("wecom", GROUP, "default"), Image(digest, "进度图"), "g"),
                   (to("insp01"), Image(digest, "进度图"), "u")])
    await drain(dispatcher)
    (group,) = platform.group_messages
    assert group["msgtype"] == "image"
    (private,) = platform.delivered_to("insp01")
    assert private["msgtype"] == "image"
    uploaded = next(c for c in platform.calls if c["path"].endswith("media/upload"))
    assert uploaded["query"]["type"] == "image"
    assert {r.status for r in rows(engine)} == {"sent"}


async def test_sends_are_many_in_flight_and_each_recipients_stay_in_order(engine, platform, clock, dispatcher):
    """Up to ``[outbox] concurrency`` sends are under way at once (the platform's latency,
    not ours, bounds the rate), never two to one recipient, each recipient's in order."""
    platform.latency = 0.05
    users = [f"insp{n:03d}" for n in range(60)]
    platform.users.update({user: user for user in users})
    queue(engine, [(to(user), Text(f"{user} 第{i}条"), f"{user}:{i}") for i in range(3) for user in users])
    await drain(dispatcher)
    assert dispatcher.concurrency == 16 and platform.peak_in_flight == 16
    assert platform.overlapping == []
    for user in users:
        assert [d["content"] for d in platform.delivered_to(user)] == [f"{user} 第{i}条" for i in range(3)]
    assert {r.status for r in rows(engine)} == {"sent"}


async def test_a_slow_recipient_does_not_hold_up_the_others(engine, platform, clock, dispatcher):
    """The dispatcher claims again as soon as there is room, not when a whole batch is
    done: while one send hangs, the messages queued after it go out."""
    platform.users.update({user: user for user in ["slow", *(f"quick{n}" for n in range(100))]})
    platform.fail_next("message/send", delay=1.0)  # the first send takes a second
    queue(engine, [(to("slow"), Text("慢"), "slow")])
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(0.2)
    queue(engine, [(to(f"quick{n}"), Text("快"), f"quick{n}") for n in range(100)])
    dispatcher.nudge()
    for _ in range(40):
        await asyncio.sleep(0.02)
        if len(platform.delivered) == 100:
            break
    assert len(platform.delivered) == 100 and not platform.delivered_to("slow"), "the others waited for the slow one"
    stop.set()
    await running
    await dispatcher.flush(5)
    assert [d["content"] for d in platform.delivered_to("slow")] == ["慢"]
    assert {r.status for r in rows(engine)} == {"sent"}


async def test_the_concurrency_is_a_setting(engine, platform):
    settings = wecom_settings(platform)
    settings = settings.model_copy(update={"outbox": settings.outbox.model_copy(update={"concurrency": 3})})
    async with aiohttp.ClientSession() as http:
        api = WeComAPI(settings.wecom, engine, "test-instance", http)
        dispatcher = Dispatcher(engine, settings, [WeComSender(settings, api)], "test-instance")
        platform.latency = 0.03
        platform.users.update({f"u{n}": f"u{n}" for n in range(20)})
        queue(engine, [(to(f"u{n}"), Text("通知"), f"n{n}") for n in range(20)])
        await drain(dispatcher)
    assert platform.peak_in_flight == 3 and len(platform.delivered) == 20
