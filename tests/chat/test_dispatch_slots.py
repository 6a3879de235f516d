"""The dispatcher settles a send's rate slots when the platform's answer shows it had it, so
the budget in force is the platform's own window (issue 20: answers limited only by the
platform's budget) — and a send in doubt keeps counting from the latest it could land."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlmodel import Session, select

import bot.chat.dispatcher as dispatcher_module
from bot.chat.dispatcher import Dispatcher, Retry, Sent
from bot.outbound import USER, Destination, Text
from bot.settings import Settings
from bot.wecom.api import WeComAPI
from bot.wecom.sender import WeComSender
from storage import outbox
from storage.db import transaction
from storage.models import SendSlot
from storage.outbox import RateLimit
from storage.sealing import new_key
from tests.support.fakes.wecom import FakeClock
from tests.support.wecom_bot import fake_wecom, wecom_settings


@pytest.fixture
async def platform(aiohttp_server):
    fake = fake_wecom(clock=FakeClock(start=time.time()))
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("")).rstrip("/")
    yield fake
    await fake.close()


@pytest.fixture
def clock(monkeypatch):
    now = [datetime.now(UTC) + timedelta(seconds=2)]  # rows queued by the test are due
    monkeypatch.setattr(dispatcher_module, "clock_now", lambda: now[0])
    return now


def queue(engine, user: str, n: int, prefix: str = "k") -> None:
    with transaction(engine) as session:
        outbox.queue_many(session, [(Destination("wecom", USER, user), Text(f"第{i}条"), f"{prefix}{i}")
                                    for i in range(n)])


async def drain(dispatcher) -> None:
    while await dispatcher.run_once():
        pass


def slots(engine, key: str) -> list[datetime]:
    with Session(engine) as session:
        found = session.exec(select(SendSlot.at).where(SendSlot.rate_key == key)).all()
    return sorted(at if at.tzinfo else at.replace(tzinfo=UTC) for at in found)


async def test_a_member_gets_their_next_thirty_a_minute_after_the_first_were_answered(engine, platform, clock):
    """WeCom's own window (a minute), not a minute and a request timeout: after 62 s the next
    30 go, and the fake WeCom, which drops what is over its budget, drops none."""
    settings = wecom_settings(platform)
    async with aiohttp.ClientSession() as http:
        dispatcher = Dispatcher(engine, settings, [WeComSender(settings, WeComAPI(settings.wecom, engine, "t", http))],
                                "t")
        queue(engine, "insp01", 45)
        await drain(dispatcher)
        assert len(platform.delivered_to("insp01")) == 30
        assert slots(engine, "wecom:user:insp01") == [clock[0]] * 30  # settled when WeCom answered
        clock[0] += timedelta(seconds=62)
        platform.clock.advance(62)
        await drain(dispatcher)
    assert [d["content"] for d in platform.delivered_to("insp01")] == [f"第{i}条" for i in range(45)]
    assert not platform.dropped


class Answering:
    """A sender whose every send has one outcome."""

    platform = "wecom"
    reach = timedelta(seconds=10)

    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def limits(self, rate_key: str):
        return (RateLimit(30, timedelta(seconds=61)),)

    async def send(self, destination, message, *, in_doubt):
        return self.outcome


@pytest.mark.parametrize(("outcome", "settled"), [(Sent({}), True), (Retry("errcode -1", after=60), True),
                                                   (Retry("timeout", in_doubt=True), False)])
async def test_only_a_send_in_doubt_keeps_counting_from_its_reach(engine, clock, outcome, settled):
    dispatcher = Dispatcher(engine, Settings(security={"keys": [new_key()]}), [Answering(outcome)], "t")
    queue(engine, "insp02", 2)
    claimed = clock[0]
    await dispatcher.run_once()
    expected = claimed if settled else claimed + Answering.reach
    assert slots(engine, "wecom:user:insp02") == [expected] * 2
    assert slots(engine, "wecom:app") == [expected] * 2
    assert not dispatcher._reserved  # nothing kept for rows whose outcome is recorded
