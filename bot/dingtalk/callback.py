"""The DingTalk HTTP endpoints, thin: verify, parse, hand to the pipeline, answer.

- robot messages (``callback_path``): ``timestamp``/``sign`` headers (C.1);
- card clicks (``card_callback_path``): our own action token (C.5, ``bot.dingtalk.cards``);
- event subscription (``event_callback_path``): the C.6 crypto, answered with an
  encrypted ``success``.

Every failure before the pipeline is a clean 4xx with nothing stored; the answer is
given as soon as the delivery is durably taken (DingTalk waits about 1.5 s).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Collection, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import Engine

from bot.callback_crypto import CallbackCryptoError, MsgCrypt
from bot.chat import platforms
from bot.chat.ingress import Take, hand_over, read_body
from bot.dingtalk.cards import ForgedAction
from bot.dingtalk.parse import MalformedDelivery, card_event, json_body, robot_event
from bot.dingtalk.sign import ROBOT_WINDOW_MS, WINDOW_MS, BadSignature, StaleTimestamp, check_robot_headers, millis
from bot.settings import DingTalkSettings
from storage import signatures
from storage.db import transaction

log = logging.getLogger(__name__)


def routes(settings: DingTalkSettings, take: Take, keys: Sequence[bytes], entries: Collection[str],
           engine: Engine) -> list[web.RouteDef]:
    """The HTTP callback routes of the DingTalk ``entries`` open (``bot.chat.platforms.entries``);
    ``engine`` remembers the robot signatures seen."""
    found = []
    if platforms.DINGTALK_HTTP in entries:
        assert settings.app_secret is not None  # opened only when DingTalk sends (platforms.sends)
        secret = settings.app_secret.get_secret_value()
        found += [web.post(settings.callback_path, _robot_message(secret, take, settings.oapi_base, engine)),
                  web.post(settings.card_callback_path, _card_click(keys, take))]
    if platforms.DINGTALK_EVENTS in entries:
        token, aes_key = settings.event_token, settings.event_aes_key
        assert token is not None and aes_key is not None  # platforms.entries opens it with both only
        crypt = MsgCrypt(token.get_secret_value(), aes_key.get_secret_value(),
                         settings.app_key)  # the ownerKey of an internal app is its appKey (C.6)
        found.append(web.post(settings.event_callback_path, _event_push(crypt)))
    return found


def _robot_message(secret: str, take: Take, oapi_base: str, engine: Engine) -> Handler:
    async def robot_message(request: web.Request) -> web.Response:
        timestamp, sign = request.headers.get("timestamp", ""), request.headers.get("sign", "")
        now_ms = int(time.time() * 1000)
        try:
            check_robot_headers(timestamp, sign, secret, now_ms)
        except StaleTimestamp:
            log.warning("DingTalk robot message refused: timestamp outside the window")
            raise web.HTTPForbidden(text="timestamp outside the accepted window") from None
        except BadSignature:
            log.warning("DingTalk robot message refused: bad sign")
            raise web.HTTPUnauthorized(text="bad sign") from None
        try:
            data = json_body(await read_body(request))
            event = robot_event(data, oapi_base)
        except MalformedDelivery as exc:
            log.warning("DingTalk robot message refused: %s", exc)
            raise web.HTTPBadRequest(text="malformed delivery") from None
        # The sign covers the timestamp only: the pair carries one message (its msgId,
        # checked by robot_event), sent again only as DingTalk's own retry of it.
        sent_ms = millis(timestamp)
        assert sent_ms is not None  # check_robot_headers read it
        try:
            fresh = await asyncio.to_thread(_claim, engine, sent_ms, sign, data["msgId"], now_ms - ROBOT_WINDOW_MS)
        except Exception as exc:
            log.error("could not check a DingTalk robot signature: %s", type(exc).__name__)
            raise web.HTTPServiceUnavailable(text="try again") from None
        if not fresh:
            log.warning("DingTalk robot message refused: its timestamp and sign came with another message")
            raise web.HTTPForbidden(text="timestamp and sign already used for another message") from None
        await hand_over(take, event, "DingTalk")
        return web.Response(text="")
    return robot_message


def _claim(engine: Engine, sent_ms: int, sign: str, msg_id: str, stale_before_ms: int) -> bool:
    with transaction(engine) as session:
        return signatures.claim(session, sent_ms, sign, msg_id, stale_before_ms=stale_before_ms)


def _card_click(keys: Sequence[bytes], take: Take) -> Handler:
    async def card_click(request: web.Request) -> web.Response:
        try:
            event = card_event(json_body(await read_body(request)), keys)
        except MalformedDelivery as exc:
            log.warning("DingTalk card callback refused: %s", exc)
            raise web.HTTPBadRequest(text="malformed delivery") from None
        except ForgedAction:
            log.warning("DingTalk card callback refused: the action token does not verify")
            raise web.HTTPForbidden(text="not a card of ours for this user") from None
        await hand_over(take, event, "DingTalk")
        return web.json_response({})  # no immediate card change: the update follows from the outbox
    return card_click


def _event_push(crypt: MsgCrypt) -> Handler:
    async def event_push(request: web.Request) -> web.Response:
        """An event-subscription push (C.6), the URL check included: answered with an
        encrypted ``success``. The bot subscribes to no event it acts on yet."""
        query = request.query
        signature = query.get("msg_signature") or query.get("signature", "")
        timestamp = query.get("timestamp") or query.get("timeStamp", "")
        nonce = query.get("nonce", "")
        if not (signature and timestamp and nonce):
            raise web.HTTPBadRequest(text="missing msg_signature, timestamp or nonce")
        sent = millis(timestamp)
        if sent is None or abs(time.time() * 1000 - sent) > WINDOW_MS:
            raise web.HTTPForbidden(text="timestamp outside the accepted window")
        try:
            encrypted = json_body(await read_body(request)).get("encrypt")
            if not isinstance(encrypted, str) or not encrypted:
                raise MalformedDelivery("no encrypt field")
            event = json_body(crypt.verify(signature, timestamp, nonce, encrypted))
        except CallbackCryptoError as exc:
            log.warning("DingTalk event refused: crypto error %s", exc.code)
            raise (web.HTTPUnauthorized if exc.code == CallbackCryptoError.SIGNATURE
                   else web.HTTPBadRequest)(text=f"error {exc.code}") from None
        except MalformedDelivery as exc:
            log.warning("DingTalk event refused: %s", exc)
            raise web.HTTPBadRequest(text="malformed delivery") from None
        kind = event.get("EventType")
        log.info("DingTalk event %s acknowledged", kind if isinstance(kind, str) and kind.isidentifier() else "?")
        reply_time, reply_nonce = str(int(time.time() * 1000)), secrets.token_hex(8)
        encrypt = crypt.encrypt("success")
        return web.json_response({"msg_signature": crypt.signature(reply_time, reply_nonce, encrypt),
                                  "timeStamp": reply_time, "nonce": reply_nonce, "encrypt": encrypt})
    return event_push

