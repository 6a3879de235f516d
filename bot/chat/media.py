"""Evidence downloads, the same on every platform: the bytes (at most what the bot
keeps), the file name the platform gives, and the content type."""

from __future__ import annotations

import math

import aiohttp

from bot.chat.events import MediaGone

MAX_MEDIA = 50 * 1024 * 1024  # bytes kept of one piece of evidence (WeCom's videos are at most 20 MB)
MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=120)
LABEL_CHARS = 500  # of a location's label kept


async def read_media(response: aiohttp.ClientResponse) -> tuple[bytes, str, str]:
    """Content, file name and content type of a download answered 200.

    Raises:
        MediaGone: larger than the bot keeps.
    """
    data = await response.content.read(MAX_MEDIA + 1)
    if len(data) > MAX_MEDIA:
        raise MediaGone("larger than the bot keeps")
    name = response.content_disposition.filename if response.content_disposition else ""
    return data, name or "", response.content_type


def valid_coordinates(latitude: float | None, longitude: float | None) -> bool:
    """A location's coordinates are degrees on the Earth (a platform's or a typed one)."""
    return (latitude is not None and longitude is not None and math.isfinite(latitude) and math.isfinite(longitude)
            and -90 <= latitude <= 90 and -180 <= longitude <= 180)
