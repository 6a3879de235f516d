"""Stream mode (PROTOCOLS.md C.7): robot messages and card clicks over one outbound
WebSocket, fed into the same pipeline as the HTTP callbacks.

The official ``dingtalk-stream`` SDK routes the frames, answers pings and builds the
acks (``DingTalkStreamClient.route_message`` with our handlers). The connection loop is
ours: the SDK's ``start()`` opens the connection with a blocking ``requests`` call (it
would stall every callback of this server), reads its endpoint from the environment
once at import, and swallows cancellation, so it cannot be stopped cleanly.

A robot message is acked once it is durably taken; DingTalk does not resend robot
messages, so it is taken before the ack. After a ``disconnect`` frame the server
closes the socket and the loop connects again with a new ticket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable, Sequence
from urllib.parse import quote_plus

import aiohttp
import dingtalk_stream
import websockets
from dingtalk_stream import AckMessage, CallbackHandler, ChatbotMessage, Credential

from bot.chat.events import Event
from bot.chat.ingress import Take
from bot.dingtalk.cards import ForgedAction
from bot.dingtalk.parse import MalformedDelivery, card_event, robot_event
from bot.settings import DingTalkSettings

log = logging.getLogger(__name__)
# The SDK logs every ping frame as "unknown message topic" at warning level: keep its errors only.
_sdk_log = logging.getLogger(f"{__name__}.sdk")
_sdk_log.setLevel(logging.ERROR)

RETRY_AFTER = (1, 2, 5, 10, 30)  # seconds between failed connection attempts

#: (platform, the ack's status, what ``take`` said or None, seconds): bot.metrics.Metrics.delivered
Observe = Callable[[str, int, bool | None, float], None]


class _Handler(CallbackHandler):
    """One topic: parse the frame's data into an event, take it, ack."""

    def __init__(self, parse: Callable[[dict], Event | None], take: Take, answer, observe: Observe) -> None:
        super().__init__()
        self.logger = log
        self._parse, self._take, self._answer, self._observe = parse, take, answer, observe

    async def process(self, message):
        started = time.perf_counter()
        status, answer, took = await self._process(message)
        self._observe("dingtalk", status, took, time.perf_counter() - started)  # counted like an HTTP callback
        return status, answer

    async def _process(self, message):
        """The ack's status and answer, and what ``take`` said (None: not called)."""
        try:
            event = self._parse(message.data if isinstance(message.data, dict) else {})
        except (MalformedDelivery, ForgedAction) as exc:
            log.warning("DingTalk stream frame refused: %s", type(exc).__name__)
            return AckMessage.STATUS_BAD_REQUEST, "refused", None
        took = None
        if event is not None:
            try:
                took = await self._take(event)
            except Exception as exc:
                log.error("could not take a DingTalk stream delivery: %s", type(exc).__name__)
                return AckMessage.STATUS_SYSTEM_EXCEPTION, "try again", None
        return AckMessage.STATUS_OK, self._answer, took


class StreamIngress:
    """This instance's Stream connection; DingTalk spreads frames over all instances'."""

    def __init__(self, settings: DingTalkSettings, take: Take, keys: Sequence[bytes],
                 http: aiohttp.ClientSession, observe: Observe = lambda *delivery: None) -> None:
        self.settings, self.http = settings, http
        secret = settings.app_secret.get_secret_value() if settings.app_secret else ""
        self.client = dingtalk_stream.DingTalkStreamClient(Credential(settings.app_key, secret), logger=_sdk_log)
        self.client.register_callback_handler(
            ChatbotMessage.TOPIC, _Handler(lambda data: robot_event(data, settings.oapi_base), take, "OK", observe))
        self.client.register_callback_handler(
            CallbackHandler.TOPIC_CARD_CALLBACK, _Handler(lambda data: card_event(data, keys), take, {}, observe))
        self.client.pre_start()
        self.connections = 0  # opened so far (tests and logs)
        self._frames: set[asyncio.Task] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set."""
        failures = 0
        while not stop.is_set():
            try:
                await self._connect_once(stop)
                failures = 0
            except (OSError, TimeoutError, aiohttp.ClientError, websockets.WebSocketException, ValueError) as exc:
                wait = RETRY_AFTER[min(failures, len(RETRY_AFTER) - 1)]
                failures += 1
                log.warning("DingTalk stream connection failed (%s); again in %d s", type(exc).__name__, wait)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                except TimeoutError:
                    pass
        if self._frames:
            await asyncio.gather(*self._frames, return_exceptions=True)

    async def _connect_once(self, stop: asyncio.Event) -> None:
        endpoint, ticket = await self._open_connection()
        async with websockets.connect(f"{endpoint}?ticket={quote_plus(ticket)}") as socket_:
            self.client.websocket = socket_
            self.connections += 1
            log.info("DingTalk stream connected")
            stopping = asyncio.create_task(stop.wait())
            try:
                while True:
                    receiving = asyncio.create_task(socket_.recv())
                    done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if stopping in done:
                        receiving.cancel()
                        return
                    try:
                        frame = json.loads(receiving.result())
                    except websockets.ConnectionClosed:
                        return  # the server closed it (after a disconnect frame): connect again
                    task = asyncio.create_task(self._route(frame, socket_))
                    self._frames.add(task)
                    task.add_done_callback(self._frames.discard)
            finally:
                stopping.cancel()

    async def _route(self, frame: dict, socket_) -> None:
        try:
            if await self.client.route_message(frame) == self.client.TAG_DISCONNECT:
                await socket_.close()
        except Exception:
            log.exception("DingTalk stream frame could not be handled")

    async def _open_connection(self) -> tuple[str, str]:
        """connections/open (C.7): a WebSocket endpoint and a one-time ticket."""
        topics = [{"type": "CALLBACK", "topic": topic} for topic in self.client.callback_handler_map]
        body = {"clientId": self.client.credential.client_id, "clientSecret": self.client.credential.client_secret,
                "subscriptions": topics, "ua": "shuangsui", "localIp": _local_ip()}
        url = f"{self.settings.api_base.rstrip('/')}/v1.0/gateway/connections/open"
        async with self.http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                raise ValueError(f"connections/open HTTP {response.status}")
            answer = await response.json(content_type=None)
        if not isinstance(answer, dict) or not answer.get("endpoint") or not answer.get("ticket"):
            raise ValueError("connections/open gave no endpoint")
        return answer["endpoint"], answer["ticket"]


def _local_ip() -> str:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: it only picks the interface
            return probe.getsockname()[0]
    except OSError:
        return ""
