"""The Stream connection loop on its own (no bot around it), against the fake gateway:
the acks it gives each kind of frame, a retry with backoff when connections/open
fails, and a clean stop that still acks the frame it was taking."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

import bot.dingtalk.stream as stream_module
from bot.chat.events import Event
from bot.dingtalk.stream import CARD_TOPIC, ROBOT_TOPIC, StreamIngress
from bot.settings import DingTalkSettings
from storage.sealing import new_key

KEY = new_key().encode()


def robot_message(msg_id: str = "m1", text: str = "帮助") -> dict:
    return {"conversationId": "cidP", "conversationType": "1", "msgId": msg_id, "createAt": int(time.time() * 1000),
            "senderStaffId": "lisi", "senderId": "$:LWCP_v1:$x", "msgtype": "text", "text": {"content": text}}


class Taker:
    """The pipeline's ``take``: keeps what it got; ``hold`` makes it wait until released."""

    def __init__(self) -> None:
        self.taken: list[Event] = []
        self.hold: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    async def __call__(self, event: Event) -> bool:
        if self.hold is not None:
            self.waiting.set()
            await self.hold.wait()
        self.taken.append(event)
        return True


@pytest.fixture
async def ingress(dingtalk):
    settings = DingTalkSettings(app_key=dingtalk.app_key, app_secret=dingtalk.app_secret, api_base=dingtalk.base_url,
                                oapi_base=dingtalk.base_url, mode="stream")
    taker = Taker()
    async with aiohttp.ClientSession() as http:
        ingress = StreamIngress(settings, taker, [KEY], http)
        ingress.taker = taker
        yield ingress


async def running(ingress: StreamIngress):
    stop = asyncio.Event()
    return stop, asyncio.create_task(ingress.run(stop))


async def test_each_frame_gets_the_ack_the_protocol_asks_for(ingress):
    ping = {"type": "SYSTEM", "headers": {"topic": "ping", "messageId": "p1"}, "data": json.dumps({"opaque": "o1"})}
    assert await ingress.ack_for(ping) == {"code": 200, "message": "OK", "data": ping["data"],
                                           "headers": {"messageId": "p1", "contentType": "application/json"}}
    robot = {"type": "CALLBACK", "headers": {"topic": ROBOT_TOPIC, "messageId": "r1"},
             "data": json.dumps(robot_message())}
    answer = await ingress.ack_for(robot)
    assert (answer["code"], answer["headers"]["messageId"], json.loads(answer["data"])) == (200, "r1",
                                                                                            {"response": "OK"})
    assert len(ingress.taker.taken) == 1
    forged = {"type": "CALLBACK", "headers": {"topic": CARD_TOPIC, "messageId": "c1"}, "data": "not json"}
    assert (await ingress.ack_for(forged))["code"] == 400
    unknown = {"type": "CALLBACK", "headers": {"topic": "/v1.0/something/else", "messageId": "u1"}, "data": "{}"}
    assert await ingress.ack_for(unknown) is None
    assert await ingress.ack_for({"type": "EVENT", "headers": {"topic": "*", "messageId": "e1"}}) is None
    assert len(ingress.taker.taken) == 1


async def test_a_refused_connections_open_is_tried_again_after_a_pause(ingress, dingtalk, monkeypatch):
    monkeypatch.setattr(stream_module, "RETRY_AFTER", (0.05, 0.1))
    dingtalk.fail_next("gateway/connections/open", times=3, status=502)
    started = time.monotonic()
    stop, run = await running(ingress)
    try:
        await dingtalk.wait_for_stream(1)
        assert time.monotonic() - started >= 0.05 + 0.1 + 0.1  # the last pause is repeated
        opens = [call for call in dingtalk.calls if call["path"].endswith("connections/open")]
        assert len(opens) == 4
        client = dingtalk.stream_clients[0]
        assert client["subscriptions"] == [{"type": "CALLBACK", "topic": ROBOT_TOPIC},
                                           {"type": "CALLBACK", "topic": CARD_TOPIC}]
        assert client["ua"] == "shuangsui"
    finally:
        stop.set()
        await asyncio.wait_for(run, 5)


async def test_a_stop_acks_the_frame_being_taken_then_closes(ingress, dingtalk):
    stop, run = await running(ingress)
    await dingtalk.wait_for_stream(1)
    ingress.taker.hold = asyncio.Event()
    push = asyncio.create_task(dingtalk.stream_push(ROBOT_TOPIC, robot_message("m-held")))
    await asyncio.wait_for(ingress.taker.waiting.wait(), 5)
    stop.set()
    await asyncio.sleep(0.05)
    assert not run.done()  # it waits for the frame being taken
    ingress.taker.hold.set()
    ack = await asyncio.wait_for(push, 5)
    assert ack["code"] == 200 and len(ingress.taker.taken) == 1
    await asyncio.wait_for(run, 5)
    async with asyncio.timeout(5):
        while dingtalk.stream_clients:
            await asyncio.sleep(0.01)
    assert dingtalk.stream_connections == 1


async def test_a_disconnect_frame_makes_it_connect_again_at_once(ingress, dingtalk):
    stop, run = await running(ingress)
    try:
        await dingtalk.wait_for_stream(1)
        disconnecting = asyncio.create_task(dingtalk.stream_disconnect(grace=5))
        async with asyncio.timeout(3):  # well before the server closes the old connection
            while not (dingtalk.stream_connections == ingress.connections == 2 and len(dingtalk.stream_clients) == 1):
                await asyncio.sleep(0.01)
        assert not disconnecting.done()
        disconnecting.cancel()
        assert (await dingtalk.stream_push(ROBOT_TOPIC, robot_message("m2")))["code"] == 200
    finally:
        stop.set()
        await asyncio.wait_for(run, 5)


async def test_a_stop_does_not_wait_for_ever_on_a_frame_stuck_in_take(ingress, dingtalk, monkeypatch):
    monkeypatch.setattr(stream_module, "DRAIN", 0.1)
    stop, run = await running(ingress)
    await dingtalk.wait_for_stream(1)
    ingress.taker.hold = asyncio.Event()  # never released
    push = asyncio.create_task(dingtalk.stream_push(ROBOT_TOPIC, robot_message("m-stuck")))
    await asyncio.wait_for(ingress.taker.waiting.wait(), 5)
    stop.set()
    await asyncio.wait_for(run, 5)
    with pytest.raises(ConnectionResetError):  # never acked: the connection went away
        await asyncio.wait_for(push, 5)
    assert not ingress.taker.taken
