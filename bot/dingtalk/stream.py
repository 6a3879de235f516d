"""Stream mode (PROTOCOLS.md C.7): robot messages and card clicks over one outbound
WebSocket, fed into the same pipeline as the HTTP callbacks.

The protocol is small, so the connection loop is ours, on aiohttp's WebSocket client:
``connections/open`` gives an endpoint and a one-time ticket; on ``endpoint?ticket=``
DingTalk sends JSON frames ``{type, headers{topic, messageId}, data: "<JSON>"}``; the
client acks each by its ``messageId``; a SYSTEM ``ping`` is acked with its data echoed;
after a SYSTEM ``disconnect`` the server closes the socket about ten seconds later and
the client connects again with a new ticket. (The official ``dingtalk-stream`` SDK opens
its connection with a blocking ``requests`` call, reads its endpoint from the environment
once at import and swallows cancellation: it could neither share this server's loop nor
be stopped cleanly.)

A robot message is acked once it is durably taken; DingTalk does not resend robot
messages, so it is taken before the ack. A connection that is told to disconnect, or
stopped, first lets the frames it is handling finish and send their acks, then closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable, Sequence

import aiohttp

from bot.chat.events import Event
from bot.chat.ingress import Take
from bot.dingtalk.cards import ForgedAction
from bot.dingtalk.parse import MalformedDelivery, card_event, robot_event
from bot.settings import DingTalkSettings

log = logging.getLogger(__name__)

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
CARD_TOPIC = "/v1.0/card/instances/callback"

# The ack's code (C.7): taken, refused, or failed here (DingTalk may push it again).
OK, BAD_REQUEST, SYSTEM_EXCEPTION = 200, 400, 500

RETRY_AFTER = (1, 2, 5, 10, 30)  # seconds between failed connection attempts
HEARTBEAT = 20.0  # seconds between WebSocket pings; no pong within half of it closes the connection
DRAIN = 5.0  # seconds a closing connection waits for the frames it is handling to be acked (then drops them)

#: (platform, the ack's status, what ``take`` said or None, seconds): bot.metrics.Metrics.delivered
Observe = Callable[[str, int, bool | None, float], None]


class Topic:
    """One callback topic: parse a frame's data into an event, take it, say how to ack."""

    def __init__(self, parse: Callable[[dict], Event | None], take: Take, answer: object, observe: Observe) -> None:
        self._parse, self._take, self._answer, self._observe = parse, take, answer, observe

    async def process(self, data: object) -> tuple[int, object]:
        """The ack's code and the answer it carries (a card callback's answer updates the card)."""
        started = time.perf_counter()
        status, answer, took = await self._process(data if isinstance(data, dict) else {})
        self._observe("dingtalk", status, took, time.perf_counter() - started)  # counted like an HTTP callback
        return status, answer

    async def _process(self, data: dict) -> tuple[int, object, bool | None]:
        """The ack's code and answer, and what ``take`` said (None: not called)."""
        try:
            event = self._parse(data)
        except (MalformedDelivery, ForgedAction) as exc:
            log.warning("DingTalk stream frame refused: %s", type(exc).__name__)
            return BAD_REQUEST, "refused", None
        took = None
        if event is not None:
            try:
                took = await self._take(event)
            except Exception as exc:
                log.error("could not take a DingTalk stream delivery: %s", type(exc).__name__)
                return SYSTEM_EXCEPTION, "try again", None
        return OK, self._answer, took


def ack(frame: dict, code: int, message: str, data: str) -> dict:
    """The client's answer to one frame, matched to it by ``messageId`` (C.7 step 4)."""
    return {"code": code, "headers": {"messageId": _headers(frame).get("messageId"), "contentType": "application/json"},
            "message": message, "data": data}


class StreamIngress:
    """This instance's Stream connection; DingTalk spreads frames over all instances'."""

    def __init__(self, settings: DingTalkSettings, take: Take, keys: Sequence[bytes],
                 http: aiohttp.ClientSession, observe: Observe = lambda *delivery: None) -> None:
        self.settings, self.http = settings, http
        self.topics = {ROBOT_TOPIC: Topic(lambda data: robot_event(data, settings.oapi_base), take, "OK", observe),
                       CARD_TOPIC: Topic(lambda data: card_event(data, keys), take, {}, observe)}
        self.connections = 0  # opened so far (tests and logs)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set."""
        failures = 0
        while not stop.is_set():
            try:
                await self._connect_once(stop)
                failures = 0
            except (OSError, TimeoutError, aiohttp.ClientError, ValueError) as exc:
                wait = RETRY_AFTER[min(failures, len(RETRY_AFTER) - 1)]
                failures += 1
                log.warning("DingTalk stream connection failed (%s); again in %d s", type(exc).__name__, wait)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                except TimeoutError:
                    pass

    async def _connect_once(self, stop: asyncio.Event) -> None:
        endpoint, ticket = await self._open_connection()
        async with self.http.ws_connect(endpoint, params={"ticket": ticket}, heartbeat=HEARTBEAT) as ws:
            self.connections += 1
            log.info("DingTalk stream connected")
            frames: set[asyncio.Task] = set()
            try:
                await self._read(ws, stop, frames)
            finally:
                if frames:  # their acks go out on this connection before it closes
                    _, late = await asyncio.wait(frames, timeout=DRAIN)
                    for task in late:
                        task.cancel()
                    if late:
                        log.warning("DingTalk stream connection closed with %d frames not acked", len(late))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event, frames: set[asyncio.Task]) -> None:
        """Hand each frame to a task of its own until the connection ends, is to end, or ``stop`` is set."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                receiving = asyncio.ensure_future(ws.receive())
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()
                    await asyncio.gather(receiving, return_exceptions=True)
                    return
                message = receiving.result()
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.ERROR):
                    return  # closed by the server (after a disconnect frame) or no pong: connect again
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(message.data)
                except ValueError:
                    frame = None
                if not isinstance(frame, dict):
                    log.warning("DingTalk stream frame is not a JSON object; ignored")
                    continue
                if frame.get("type") == "SYSTEM" and _headers(frame).get("topic") == "disconnect":
                    log.info("DingTalk stream asked to reconnect")
                    return
                task = asyncio.create_task(self._answer(frame, ws))
                frames.add(task)
                task.add_done_callback(frames.discard)
        finally:
            stopping.cancel()

    async def _answer(self, frame: dict, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            answer = await self.ack_for(frame)
            if answer is not None:
                await ws.send_str(json.dumps(answer, ensure_ascii=False))
        except ConnectionError:
            log.warning("DingTalk stream connection closed before a frame was acked")
        except Exception:
            log.exception("DingTalk stream frame could not be handled")

    async def ack_for(self, frame: dict) -> dict | None:
        """The ack of one frame; None for a frame that gets none (a topic not subscribed to)."""
        kind, topic = frame.get("type"), _headers(frame).get("topic")
        if kind == "SYSTEM":  # ping: echo its opaque
            data = frame.get("data")
            return ack(frame, OK, "OK", data if isinstance(data, str) and data else "{}")
        handler = self.topics.get(topic) if kind == "CALLBACK" and topic is not None else None
        if handler is None:
            log.warning("DingTalk stream frame of type %s, topic %s, not subscribed to; ignored", kind, topic)
            return None
        code, answer = await handler.process(_data(frame))
        return ack(frame, code, "", json.dumps({"response": answer}, ensure_ascii=False))

    async def _open_connection(self) -> tuple[str, str]:
        """connections/open (C.7): a WebSocket endpoint and a one-time ticket."""
        secret = self.settings.app_secret.get_secret_value() if self.settings.app_secret else ""
        body = {"clientId": self.settings.app_key, "clientSecret": secret,
                "subscriptions": [{"type": "CALLBACK", "topic": topic} for topic in self.topics],
                "ua": "shuangsui", "localIp": _local_ip()}
        url = f"{self.settings.api_base.rstrip('/')}/v1.0/gateway/connections/open"
        async with self.http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                raise ValueError(f"connections/open HTTP {response.status}")
            answer = await response.json(content_type=None)
        if not isinstance(answer, dict) or not answer.get("endpoint") or not answer.get("ticket"):
            raise ValueError("connections/open gave no endpoint")
        return answer["endpoint"], answer["ticket"]


def _headers(frame: dict) -> dict:
    headers = frame.get("headers")
    return headers if isinstance(headers, dict) else {}


def _data(frame: dict) -> object:
    """A frame's data, a JSON document in a string; None if it is not one."""
    try:
        return json.loads(frame.get("data") or "null")
    except (TypeError, ValueError):
        return None


def _local_ip() -> str:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: it only picks the interface
            return probe.getsockname()[0]
    except OSError:
        return ""
