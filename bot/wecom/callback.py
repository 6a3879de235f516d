"""The WeCom callback endpoints, thin: verify, parse, hand to the pipeline, answer.

``/wecom/callback`` (self-built app, XML) and ``/wecom/aibot`` (AI bot, JSON, empty
receiveid). Every failure before the pipeline is a clean 4xx with nothing stored; the
answer is an empty 200 as soon as the delivery is durably taken (WeCom waits 5 s).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.callback_crypto import CallbackCryptoError, MsgCrypt
from bot.chat import platforms
from bot.chat.ingress import Take, hand_over, read_body
from bot.settings import WeComSettings
from bot.wecom.parse import MalformedDelivery, aibot_event, app_event, envelope_json, envelope_xml

log = logging.getLogger(__name__)

REPLAY_WINDOW = 3600  # seconds a delivery's timestamp may be from our clock


def routes(settings: WeComSettings, take: Take, entries: Collection[str]) -> list[web.RouteDef]:
    """The callback routes of the WeCom ``entries`` open (``bot.chat.platforms.entries``)."""
    found = []
    if platforms.WECOM_APP in entries:
        token, aes_key = settings.token, settings.encoding_aes_key
        assert token is not None and aes_key is not None  # platforms.entries opens it with both only
        app_crypt = MsgCrypt(token.get_secret_value(), aes_key.get_secret_value(), settings.corp_id)
        found += [web.get(settings.callback_path, _verify_url(app_crypt)),
                  web.post(settings.callback_path, _app_delivery(app_crypt, take))]
    bot = settings.aibot
    if platforms.WECOM_AIBOT in entries:
        assert bot.token is not None and bot.encoding_aes_key is not None  # platforms.entries opens it with both only
        bot_crypt = MsgCrypt(bot.token.get_secret_value(), bot.encoding_aes_key.get_secret_value(), "")
        found += [web.get(bot.callback_path, _verify_url(bot_crypt)),
                  web.post(bot.callback_path, _aibot_delivery(bot_crypt, take, settings.api_base))]
    return found


def _signed(request: web.Request) -> tuple[str, str, str]:
    query = request.query
    signature, timestamp, nonce = (query.get(k, "") for k in ("msg_signature", "timestamp", "nonce"))
    if not (signature and timestamp and nonce):
        raise web.HTTPBadRequest(text="missing msg_signature, timestamp or nonce")
    fresh = (timestamp.isascii() and timestamp.isdecimal() and len(timestamp) <= 12
             and abs(time.time() - int(timestamp)) <= REPLAY_WINDOW)
    if not fresh:
        raise web.HTTPForbidden(text="timestamp outside the accepted window")
    return signature, timestamp, nonce


def _refuse(exc: Exception) -> web.HTTPException:
    if isinstance(exc, CallbackCryptoError):
        log.warning("WeCom callback refused: crypto error %s", exc.code)
        return (web.HTTPUnauthorized if exc.code == -40001 else web.HTTPBadRequest)(text=f"error {exc.code}")
    log.warning("WeCom callback refused: %s", exc)
    return web.HTTPBadRequest(text="malformed delivery")


def _verify_url(crypt: MsgCrypt) -> Handler:
    async def verify_url(request: web.Request) -> web.Response:
        """URL verification (A.4): answer the decrypted echostr, as is."""
        signature, timestamp, nonce = _signed(request)
        try:
            echo = crypt.verify(signature, timestamp, nonce, request.query.get("echostr", ""))
        except CallbackCryptoError as exc:
            raise _refuse(exc) from None
        return web.Response(body=echo, content_type="text/plain")
    return verify_url


def _app_delivery(crypt: MsgCrypt, take: Take) -> Handler:
    async def app_delivery(request: web.Request) -> web.Response:
        signature, timestamp, nonce = _signed(request)
        try:
            event = app_event(crypt.verify(signature, timestamp, nonce, envelope_xml(await read_body(request))))
        except (CallbackCryptoError, MalformedDelivery) as exc:
            raise _refuse(exc) from None
        await hand_over(take, event, "WeCom")
        return web.Response(text="")
    return app_delivery


def _aibot_delivery(crypt: MsgCrypt, take: Take, api_base: str) -> Handler:
    async def aibot_delivery(request: web.Request) -> web.Response:
        signature, timestamp, nonce = _signed(request)
        try:
            event = aibot_event(crypt.verify(signature, timestamp, nonce, envelope_json(await read_body(request))),
                                api_base)
        except (CallbackCryptoError, MalformedDelivery) as exc:
            raise _refuse(exc) from None
        await hand_over(take, event, "WeCom")
        return web.Response(text="")
    return aibot_delivery
