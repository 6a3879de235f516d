"""``/public/``: the disclosure pages, served read-only from the database."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import Engine

from bot.public.cache import PublicCache
from bot.settings import Settings
from bot.texts import page, say

#: Static pages: no script, no framing, nothing fetched from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


#: Public rendering has its own threads, apart from message handling (the default pool):
#: WORKERS render at once, up to QUEUE more wait, and beyond that a request gets a 503.
WORKERS = 2
QUEUE = 16
RETRY_AFTER = "5"  # seconds


class PublicServer:
    """``/public/``: kept files from the cache (bot.public.cache) on the event loop, the rest
    rendered on a bounded executor of its own."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.settings = settings
        self.cache = PublicCache(engine, settings)
        self.executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="public")
        self.busy = 0  # requests rendering or waiting for a worker (event loop only)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/public", to_index), web.get("/public/", to_index), web.get("/public/{path:.+}", self.public)]

    async def close(self, app: web.Application | None = None) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def public(self, request: web.Request) -> web.Response:
        settings = self.settings
        path = request.match_info["path"]
        if "\x00" in path or any(part in ("", ".", "..") for part in path.split("/")):
            raise _missing(settings)
        query = {"q": request.query.get("q", "").replace("\x00", "")}
        found = self.cache.fresh(path)
        if found is None:
            if self.busy >= WORKERS + QUEUE:
                raise web.HTTPServiceUnavailable(text=say("public", "busy"), content_type="text/plain",
                                                 headers={**SECURITY_HEADERS, "Retry-After": RETRY_AFTER})
            self.busy += 1
            try:
                found = await asyncio.get_running_loop().run_in_executor(self.executor, self.cache.render, path,
                                                                         query)
            finally:
                self.busy -= 1
        if found is None:
            raise _missing(settings)
        headers = {**SECURITY_HEADERS, "Content-Type": found.content_type, "Cache-Control": "public, max-age=60"}
        if not found.content_type.startswith("text/html"):
            name = quote(found.path.rsplit("/", 1)[-1], safe="")
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{name}"
        return web.Response(body=found.body, headers=headers)


def routes(engine: Engine, settings: Settings) -> list[web.RouteDef]:
    """The routes of a PublicServer whose executor lives as long as the process (the app
    closes its own: bot.app)."""
    return PublicServer(engine, settings).routes()


async def to_index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/public/index.html")


def _missing(settings: Settings) -> web.HTTPNotFound:
    html = page("public/missing.html.j2", root="/public/", static=False, bureau=settings.bureau.name)
    return web.HTTPNotFound(text=html, content_type="text/html", headers=SECURITY_HEADERS)

