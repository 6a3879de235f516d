"""The aiohttp application: health endpoints now; platform callbacks, the scheduler
and the outbox dispatcher join it as they are built."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from bot.clock import bureau_today
from bot.settings import Settings
from bot.texts import page, say
from storage import schema
from storage.db import engine_for

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", Engine)


def create_app(settings: Settings, engine: Engine | None = None) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[ENGINE] = engine or engine_for(settings.database.url)
    app.router.add_get("/", home)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.on_startup.append(remind_missing_arrangements)
    return app


async def remind_missing_arrangements(app: web.Application) -> None:
    """Say so when deadlines this year or next can only be counted provisionally."""
    try:
        years = await asyncio.to_thread(_years_needing_arrangement, app[ENGINE], app[SETTINGS].bureau.timezone)
    except Exception as exc:  # an unready database is /readyz's business, not start-up's
        log.warning("calendar check skipped: %s", type(exc).__name__)
        return
    if years:
        log.warning(say("calendar", "arrangement_missing", years=years))


def _years_needing_arrangement(engine: Engine, timezone: str) -> list[int]:
    from storage.calendar import load_calendar

    with Session(engine) as session:
        return load_calendar(session).years_needing_arrangement(bureau_today(timezone))


async def home(request: web.Request) -> web.Response:
    """The front page: what the directories hold, and whether the calendar is official."""
    engine, settings = request.app[ENGINE], request.app[SETTINGS]
    counts = await asyncio.to_thread(_directory_counts, engine)
    years = await asyncio.to_thread(_years_needing_arrangement, engine, settings.bureau.timezone)
    html = page("pages/index.html.j2", bureau=settings.bureau.name, counts=counts,
                biggest=max((n for _, n in counts), default=0), missing_years=years)
    return web.Response(text=html, content_type="text/html")


def _directory_counts(engine: Engine) -> list[tuple[str, int]]:
    from storage.models import InspectionObject, Inspector, Item, Team, Unit

    labels = say("pages", "directory_labels").split(",")
    models = (Unit, InspectionObject, Inspector, Team, Item)
    with Session(engine) as session:
        return [(label, session.exec(select(func.count()).select_from(m).where(m.listed)).one())
                for label, m in zip(labels, models, strict=True)]


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The database answers and its schema is at the newest migration."""
    engine = request.app[ENGINE]
    try:
        at_head = await asyncio.to_thread(schema.is_at_head, engine)  # one query: the revision row
    except Exception as exc:  # any database failure means "not ready", never a 500
        log.warning("readiness check failed: %s", type(exc).__name__)
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    if not at_head:
        return web.json_response({"status": "unavailable", "database": "schema behind"}, status=503)
    return web.json_response({"status": "ok"})


def serve(settings: Settings) -> None:
    """Run the server until interrupted."""
    app = create_app(settings)
    web.run_app(app, host=settings.server.host, port=settings.server.port, print=None,
                handle_signals=True, shutdown_timeout=10)
