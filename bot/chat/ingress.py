"""What every platform's HTTP callback does the same way: read a bounded body, and hand
the parsed event to the pipeline (a 503 the platform retries if it cannot be stored)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from bot.chat.events import Event

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # platform callbacks are small; anything larger is refused unread

Take = Callable[[Event], Awaitable[bool]]


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused with a 413 past ``limit`` bytes (declared or actual), and
    with a 400 when it cannot be read as sent (e.g. gzip that is not gzip)."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        body = await request.content.read(limit + 1)
    except RequestPayloadError:
        raise web.HTTPBadRequest(text="unreadable body") from None
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return body


async def hand_over(take: Take, event: Event | None, platform: str) -> None:
    """Hand the event to the pipeline; a duplicate is acknowledged like a new one."""
    if event is None:
        return
    try:
        await take(event)
    except Exception as exc:
        log.error("could not take a %s delivery: %s", platform, type(exc).__name__)
        raise web.HTTPServiceUnavailable(text="try again") from None


class NotStorable(ValueError):
    """JSON that is not an object, too deeply nested, or with text no database column takes."""


def json_object(raw: bytes | str) -> dict:
    """A JSON object from a platform, fit to store: no lone surrogates (``"\\ud800"``)
    and no NUL (PostgreSQL text takes neither), not nested beyond what ``json`` reads.

    Raises:
        NotStorable: anything else.
    """
    try:
        data = json.loads(raw)
        text = json.dumps(data, ensure_ascii=False)
        text.encode("utf-8")
    except (ValueError, UnicodeError, RecursionError):
        raise NotStorable("not JSON text a database can hold") from None
    if not isinstance(data, dict):
        raise NotStorable("not a JSON object")
    if "\\u0000" in text:  # json.dumps spells a NUL so
        raise NotStorable("NUL in the body")
    return data
