"""``/public/``: the disclosure pages, served read-only from the database."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import Engine

from bot.public.site import File, Site
from bot.settings import Settings
from bot.texts import page
from storage.db import reading

#: Static pages: no script, no framing, nothing fetched from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def routes(engine: Engine, settings: Settings) -> list[web.RouteDef]:
    async def public(request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if "\x00" in path or any(part in ("", ".", "..") for part in path.split("/")):
            raise _missing(settings)
        query = {"q": request.query.get("q", "").replace("\x00", "")}
        found = await asyncio.to_thread(_render, engine, settings, path, query)
        if found is None:
            raise _missing(settings)
        headers = {**SECURITY_HEADERS, "Content-Type": found.content_type, "Cache-Control": "public, max-age=60"}
        if not found.content_type.startswith("text/html"):
            name = quote(found.path.rsplit("/", 1)[-1], safe="")
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{name}"
        return web.Response(body=found.body, headers=headers)

    async def to_index(request: web.Request) -> web.Response:
        raise web.HTTPFound("/public/index.html")

    return [web.get("/public", to_index), web.get("/public/", to_index), web.get("/public/{path:.+}", public)]


def _render(engine: Engine, settings: Settings, path: str, query: dict[str, str]) -> File | None:
    with reading(engine) as session:
        return Site(session, settings).get(path, query)


def _missing(settings: Settings) -> web.HTTPNotFound:
    html = page("public/missing.html.j2", root="/public/", static=False, bureau=settings.bureau.name)
    return web.HTTPNotFound(text=html, content_type="text/html", headers=SECURITY_HEADERS)

