"""Telling DingTalk where HTTP card callbacks go (PROTOCOLS.md C.5): our
``card_callback_path`` registered under ``[dingtalk] card_route_key``, which every
card the bot sends names. Done at start-up by each instance (the same URL each time)."""

from __future__ import annotations

import asyncio
import logging

from bot.dingtalk.api import DingTalkAPI, Refused, Unreachable
from bot.settings import Settings

log = logging.getLogger(__name__)

RETRY_AFTER = 60.0


async def register_card_callback(api: DingTalkAPI, settings: Settings, api_secret: str, stop: asyncio.Event) -> None:
    """Register until DingTalk accepts it (or the instance stops)."""
    dingtalk = settings.dingtalk
    url = settings.server.public_base_url.rstrip("/") + dingtalk.card_callback_path
    body = {"callbackRouteKey": dingtalk.card_route_key, "callbackUrl": url, "apiSecret": api_secret,
            "forceUpdate": True}
    while not stop.is_set():
        try:
            await api.call("POST", "/v1.0/card/callbacks/register", body)
            log.info("DingTalk card callbacks go to %s", url)
            return
        except (Unreachable, Refused) as exc:
            log.warning("registering the DingTalk card callback failed (%s); again in %.0f s", exc, RETRY_AFTER)
        try:
            await asyncio.wait_for(stop.wait(), timeout=RETRY_AFTER)
        except TimeoutError:
            pass
