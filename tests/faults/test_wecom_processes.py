"""Real ``shuangsui serve`` processes against the fake WeCom: killed with SIGKILL in the
middle of the work, or running two at once on one database — judged at the fake: every
message delivered, none twice."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from bot.outbound import USER, Card, Destination, Text
from storage import outbox
from storage.db import transaction
from storage.sealing import new_key
from tests.support.wecom_bot import ADMIN, eventually, fake_wecom, wecom_env

SHUANGSUI = str(Path(sys.executable).parent / "shuangsui")
USERS = [f"user{n:03d}" for n in range(100)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    """One ``shuangsui serve`` process."""

    def __init__(self, fake, db_url: str, key: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **wecom_env(fake, db_url, self.port, key)}
        self.log = log.open("ab")
        self.process = subprocess.Popen([SHUANGSUI, "serve"], env=env, stdout=self.log, stderr=self.log)

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if self.process.poll() is not None:
                    raise AssertionError("serve exited at start")
                await asyncio.sleep(0.1)
        raise AssertionError("serve did not start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
async def platform(aiohttp_server):
    fake = fake_wecom(users=(ADMIN, *USERS))
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("")).rstrip("/")
    yield fake
    await fake.close()


@pytest.fixture
def instances(platform, db_url, tmp_path):
    started: list[Instance] = []
    key = new_key()

    async def start() -> Instance:
        instance = Instance(platform, db_url, key, tmp_path / "serve.log")
        started.append(instance)
        await instance.ready()
        platform.bot_url = instance.url
        return instance

    yield start
    for instance in started:
        instance.stop()


def fan_out(engine, per_user: int, users=USERS) -> list[tuple]:
    """Texts and cards to many people, as a draw's notices are queued: in one transaction."""
    messages = []
    for n in range(per_user):
        for user in users:
            if n % 2:
                messages.append((Destination("wecom", USER, user), Card(f"ss-{user}-{n}", f"任务 {n}"), f"c{user}{n}"))
            else:
                messages.append((Destination("wecom", USER, user), Text(f"{user} 第{n}条"), f"t{user}{n}"))
    with transaction(engine) as session:
        outbox.queue_many(session, messages)
    return messages


def delivered_once(fake, messages) -> None:
    seen = Counter(d["task_id"] or d["content"] for d in fake.delivered)
    expected = {m.card_id if isinstance(m, Card) else m.text for _, m, _ in messages}
    assert set(seen) == expected, f"missing {len(expected - set(seen))}"
    assert max(seen.values()) == 1, [k for k, v in seen.items() if v > 1][:5]
    assert not fake.dropped


@pytest.mark.pg
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_two_instances_deliver_a_thousand_messages_once_each(platform, instances, engine):
    await instances()
    await instances()
    messages = fan_out(engine, per_user=10)  # both are polling when the fan-out lands
    assert len(messages) == 1000
    await eventually(lambda: len(platform.delivered) >= 1000, timeout=90, every=0.2)
    await asyncio.sleep(1)
    delivered_once(platform, messages)
    with engine.connect() as connection:
        owners = connection.exec_driver_sql("SELECT DISTINCT owner FROM outbox").scalars().all()
    assert len(owners) == 2  # both instances took part
    assert platform.token_calls == 1  # and shared one access token


async def test_killed_in_the_middle_of_a_fan_out_nothing_is_lost_or_doubled(platform, instances, engine):
    messages = fan_out(engine, per_user=10, users=USERS[:30])
    platform.fail_next("message/send", times=10**6, delay=0.03)  # slow enough to be caught mid-way
    first = await instances()
    await eventually(lambda: len(platform.delivered) >= 40, timeout=60)
    first.kill()
    assert len(platform.delivered) < len(messages)
    await asyncio.sleep(0.5)
    await instances()  # takes over the dead instance's claims once their lease has run out
    await eventually(lambda: len(platform.delivered) >= len(messages), timeout=90, every=0.2)
    await asyncio.sleep(1)
    delivered_once(platform, messages)


@pytest.mark.parametrize("moment", ["after the acknowledgement", "while sending the answer"])
async def test_killed_between_the_callback_and_the_send_the_answer_arrives_once(platform, instances, moment):
    first = await instances()
    if moment == "while sending the answer":
        platform.fail_next("message/send", delay=2.0)
    # 进度: an answer of one message (an admin's 帮助 is longer than WeCom's 2048 bytes: two parts)
    result = await platform.send_text(ADMIN, "进度")
    assert result.status == 200
    if moment == "while sending the answer":
        await eventually(lambda: any(c["path"].endswith("message/send") for c in platform.calls))
    first.kill()
    await instances()
    await eventually(lambda: platform.delivered_to(ADMIN), timeout=90, every=0.2)
    await asyncio.sleep(3)
    assert len(platform.delivered_to(ADMIN)) == 1 and not platform.dropped


async def test_a_stopped_instance_finishes_what_it_acknowledged(platform, instances, engine):
    """SIGTERM right after a burst of acknowledged messages: the instance handles them and
    sends their answers before it exits; nothing is left for another instance."""
    from sqlalchemy import func, select
    from sqlmodel import Session

    from storage.models import InboundDelivery, OutboxMessage

    instance = await instances()
    # 25: within WeCom's 30-a-minute budget, so every answer may go out before the exit
    burst = await asyncio.gather(*(platform.send_text(ADMIN, "进度") for _ in range(25)))  # one message each
    assert all(result.status == 200 for result in burst)
    instance.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(instance.process.wait, 30) == 0
    with Session(engine) as session:
        states = dict(session.execute(select(InboundDelivery.status, func.count())
                                      .group_by(InboundDelivery.status)).all())
        left = session.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status.in_(("pending", "sending")))).scalar_one()
    assert states == {"done": 25}
    assert left == 0
    assert len([d for d in platform.delivered_to(ADMIN) if d["msgtype"] == "text"]) == 25
