"""The aiohttp application: health endpoints, platform callbacks, and per instance the
loops that finish inbound work and drain the outbox."""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import hdrs, web, web_urldispatcher
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine, func
from sqlmodel import col, select

import handlers
from bot import logs
from bot.chat import platforms
from bot.chat.dispatcher import Dispatcher, Sender
from bot.chat.pipeline import Pipeline
from bot.clock import bureau_today
from bot.console import routes as console
from bot.console.sender import ConsoleSender
from bot.dingtalk import callback as dingtalk_callback
from bot.dingtalk.api import DingTalkAPI
from bot.dingtalk.cards import action_keys
from bot.dingtalk.registration import register_card_callback
from bot.dingtalk.sender import DingTalkSender
from bot.dingtalk.stream import StreamIngress
from bot.metrics import Metrics, noting
from bot.platform_xml import check_expat
from bot.public.routes import PublicServer
from bot.retention import EVERY_MINUTES as RETENTION_MINUTES
from bot.retention import run_once as run_retention
from bot.settings import ConfigError, Settings
from bot.texts import page, say
from bot.wecom import callback as wecom_callback
from bot.wecom.api import WeComAPI
from bot.wecom.sender import WeComSender
from storage import schema
from storage.db import engine_for, reading, transaction
from storage.sealing import Sealer

log = logging.getLogger(__name__)

MAX_REQUEST = 1024 * 1024  # bytes; platform callbacks are far smaller
SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", Engine)


PIPELINE = web.AppKey("pipeline", Pipeline)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
TICKER = web.AppKey("ticker", bool)
STREAM = web.AppKey("stream", StreamIngress)
METRICS = web.AppKey("metrics", Metrics)
CONSOLE_TOKEN = web.AppKey("console_token", str)  # this start's, when the console is on


def create_app(settings: Settings, engine: Engine | None = None, *, workers: bool = True,
               ticker: bool = True, console_token: str | None = None) -> web.Application:
    """The bot: health endpoints, platform callbacks, and (``workers``) the loops that
    finish inbound work and drain the outbox, and (``ticker``) the reminder sweeps and
    scheduled summaries (scenario tests run those by hand, at the instants they choose).

    Without ``engine``, the app opens ``[database] url`` with the sealer of ``[security]
    keys``; an engine given carries its own (``storage.db.make_engine``)."""
    app = web.Application(client_max_size=MAX_REQUEST, middlewares=[logs.with_request_id])
    app[SETTINGS] = settings
    app[ENGINE] = engine or engine_for(settings.database.url, Sealer(settings.security.keys))
    owner = instance_name()
    app[PIPELINE] = pipeline = Pipeline(app[ENGINE], settings, handlers.router(), owner)
    app[METRICS] = metrics = Metrics(app[ENGINE], settings)
    app.middlewares.append(metrics.middleware())  # deliveries and acknowledgement latency per platform
    take = noting(pipeline.take)  # tells the middleware a new delivery from a duplicate
    app.router.add_get("/", home)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics.page)
    entries = platforms.entries(settings)
    metrics.watch("wecom", app.router.add_routes(wecom_callback.routes(settings.wecom, take, entries)))
    metrics.watch("dingtalk", app.router.add_routes(dingtalk_callback.routes(
        settings.dingtalk, take, card_keys(settings), entries, app[ENGINE])))
    public = PublicServer(app[ENGINE], settings)  # its own bounded threads (issue 17 item 13)
    app.router.add_routes(public.routes())
    app.on_cleanup.append(public.close)
    if platforms.CONSOLE_PAGE in entries:
        if problem := console.exposed(settings):
            raise ConfigError(problem)
        app[CONSOLE_TOKEN] = token = console_token or console.new_token()
        metrics.watch("console", app.router.add_routes(console.routes(settings, app[ENGINE], take, token)))
    app.on_startup.append(remind_missing_arrangements)
    app.on_startup.append(warn_ambiguous_roles)
    app.on_startup.append(warn_work_that_will_be_refused)
    app[TICKER] = ticker
    if workers:
        app.cleanup_ctx.append(_workers)
    app.on_cleanup.append(_close_pipeline)  # after the workers' teardown (cleanup_ctx runs first)
    return app


_AIOHTTP_EXPECT = web_urldispatcher._default_expect_handler


async def expect_handler(request: web.Request) -> None:
    """The ``Expect`` handler of every route, the app's and aiohttp's own (404, 405).

    aiohttp runs it before any middleware, and its default echoes an unknown value into a
    text it cannot encode when the header is not UTF-8: a 500 on every route. Such a value
    is a 417 here, never echoed; ``100-continue`` is aiohttp's answer as before."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version == aiohttp.HttpVersion11 and expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text="Unsupported Expect header: send Expect: 100-continue or none.")
    await _AIOHTTP_EXPECT(request)


# Routes without an ``expect_handler`` (every one, including the 404 and 405 aiohttp builds
# per request) look the default up in this module when they are made.
web_urldispatcher._default_expect_handler = expect_handler


async def _close_pipeline(app: web.Application) -> None:
    await app[PIPELINE].close()


def card_keys(settings: Settings) -> list[bytes]:
    """Keys for the tokens on DingTalk card buttons: from ``[security] keys`` (the first
    signs, all verify); the app secret only where no key is configured."""
    secrets_ = [key.get_secret_value() for key in settings.security.keys]
    if not secrets_ and settings.dingtalk.app_secret:
        secrets_ = [settings.dingtalk.app_secret.get_secret_value()]
    return action_keys(secrets_)


def reminder_ticker(engine: Engine, settings: Settings, dispatcher: Dispatcher,
                    metrics: Metrics | None = None) -> AsyncIOScheduler:
    """APScheduler as this instance's ticker only: what is due lives in the database and a
    sweep is safe to run on every instance at once (bot.reminders.sweep)."""
    async def tick() -> None:
        try:
            queued = await asyncio.to_thread(_sweep_once, engine, settings)
        except Exception:
            log.exception("reminder sweep failed; the next tick tries again")
            if metrics:
                metrics.swept(ok=False)
            return
        if metrics:
            metrics.swept()
        if queued:
            dispatcher.nudge()

    async def summary(kind: str) -> None:
        try:
            if await asyncio.to_thread(_summaries_once, engine, settings, kind):
                dispatcher.nudge()
        except Exception:
            log.exception("%s summary failed", kind)

    async def retention() -> None:
        try:
            await asyncio.to_thread(run_retention, engine, settings)
        except Exception:
            log.exception("retention run failed; the next one tries again")

    zone = settings.bureau.timezone
    scheduler = AsyncIOScheduler(timezone=zone)
    # Blanks what people typed and deletes old messages (bot.retention); idempotent, so
    # every instance may run it (on PostgreSQL one at a time, the others skip).
    scheduler.add_job(retention, "interval", minutes=RETENTION_MINUTES, id="retention",
                      next_run_time=datetime.now(UTC) + timedelta(minutes=1), coalesce=True, max_instances=1)
    first = datetime.now(UTC) + timedelta(seconds=30)
    scheduler.add_job(tick, "interval", minutes=settings.reminders.sweep_minutes, id="reminders",
                      next_run_time=first, coalesce=True, max_instances=1)
    if metrics:
        metrics.sweeping(settings.reminders.sweep_minutes * 60, first.timestamp())
    async def anchor() -> None:
        try:
            await asyncio.to_thread(_anchor_once, engine, settings)
        except Exception:
            log.exception("audit anchor failed; the next hour tries again")

    # The audit head on the public index, at least daily (bot.public.anchors; draws add their own).
    scheduler.add_job(anchor, "interval", hours=1, id="anchor", next_run_time=first, coalesce=True, max_instances=1)
    if settings.summaries.daily_at:
        hour, minute = settings.summaries.daily_at.split(":")
        scheduler.add_job(summary, "cron", args=["daily"], hour=int(hour), minute=int(minute), id="daily",
                          coalesce=True, max_instances=1, misfire_grace_time=3600)
    if settings.summaries.weekly_on:
        hour, minute = settings.summaries.weekly_at.split(":")
        scheduler.add_job(summary, "cron", args=["weekly"], day_of_week=settings.summaries.weekly_on,
                          hour=int(hour), minute=int(minute), id="weekly", coalesce=True, max_instances=1,
                          misfire_grace_time=3600)
    return scheduler


def _summaries_once(engine: Engine, settings: Settings, kind: str) -> int:
    """One summary of ``kind``; the daily one only on working days (queued once per
    period whichever instances run it)."""
    from bot.clock import bureau_date, now
    from bot.reports.summary import send_summaries
    from storage.calendar import load_calendar

    with transaction(engine) as session:
        today = bureau_date(now(), settings.bureau.timezone)
        if kind == "daily" and not load_calendar(session).is_working_day(today):
            return 0
        return len(send_summaries(session, settings, kind, now()))


def _anchor_once(engine: Engine, settings: Settings) -> None:
    from bot.clock import now
    from bot.public.anchors import anchor_if_due

    anchor_if_due(engine, settings.bureau.timezone, now())


def _sweep_once(engine: Engine, settings: Settings) -> int:
    from bot.clock import now
    from bot.reminders.sweep import sweep

    return len(sweep(engine, settings, now()))


def instance_name() -> str:
    """Who claims rows: unique per process, readable in the database."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def _workers(app: web.Application) -> AsyncIterator[None]:
    """The dispatcher and the inbound sweeper, for as long as the app runs."""
    settings, engine, pipeline = app[SETTINGS], app[ENGINE], app[PIPELINE]
    entries = platforms.entries(settings)
    async with aiohttp.ClientSession() as http:
        senders: list[Sender] = []
        if platforms.sends(settings, platforms.WECOM):
            wecom_api = WeComAPI(settings.wecom, engine, pipeline.owner, http)
            senders.append(WeComSender(settings, wecom_api))
            pipeline.fetchers["wecom"] = wecom_api.media
        stop = asyncio.Event()
        loops = []
        dingtalk = settings.dingtalk
        if platforms.sends(settings, platforms.DINGTALK):
            keys = card_keys(settings)
            dingtalk_api = DingTalkAPI(dingtalk, engine, pipeline.owner, http)
            senders.append(DingTalkSender(settings, dingtalk_api, keys[0]))
            pipeline.fetchers["dingtalk"] = dingtalk_api.media
            if platforms.DINGTALK_STREAM in entries:
                app[STREAM] = stream = StreamIngress(dingtalk, pipeline.take, keys, http,
                                                     observe=app[METRICS].delivered)
                loops.append(asyncio.create_task(stream.run(stop)))
            else:
                # Its own secret, derived one way: never the key that signs our card tokens.
                api_secret = base64.urlsafe_b64encode(hmac.new(keys[0], b"apiSecret", "sha256").digest()[:24]).decode()
                loops.append(asyncio.create_task(register_card_callback(dingtalk_api, settings, api_secret, stop)))
        if platforms.sends(settings, platforms.CONSOLE):
            senders.append(ConsoleSender(engine))
        app[DISPATCHER] = dispatcher = Dispatcher(engine, settings, senders, pipeline.owner,
                                                  observe=app[METRICS].send_outcome)
        pipeline.on_processed = dispatcher.nudge
        loops += [asyncio.create_task(dispatcher.run(stop)), asyncio.create_task(pipeline.run(stop))]
        ticker = reminder_ticker(engine, settings, dispatcher, app[METRICS]) if app[TICKER] else None
        if ticker:
            ticker.start()
        yield
        if ticker:
            ticker.shutdown(wait=False)
        await pipeline.drain()  # finish what was acknowledged, so a clean stop leaves nothing pending
        stop.set()
        dispatcher.nudge()
        pipeline.wake()
        await asyncio.gather(*loops, return_exceptions=True)
        await dispatcher.flush(budget=8.0)  # and send the answers it queued, within the stop timeout


async def warn_ambiguous_roles(app: web.Application) -> None:
    """A bare ``[roles]`` id with both WeCom and DingTalk on may be two people (bot.chat.platforms)."""
    platforms.warn_ambiguous_entries(app[SETTINGS])


def refused_later(settings: Settings) -> list[str]:
    """Configuration that starts fine but refuses or degrades work later, in the words a
    start-up log line uses: no ``[security] keys`` (publishing refused), DingTalk without a
    card template (task notices as private texts, SPEC §5)."""
    found = []
    if not settings.security.keys:
        found.append(say("startup", "no_keys"))
    if platforms.sends(settings, platforms.DINGTALK) and not settings.dingtalk.card_template_id:
        found.append(say("startup", "no_card_template"))
    return found


async def warn_work_that_will_be_refused(app: web.Application) -> None:
    """Say at start what an operator would otherwise learn from the first refusal."""
    for line in refused_later(app[SETTINGS]):
        log.warning(line)


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

    with reading(engine) as session:
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
    from storage.models import InspectionObject, Inspector, Item, Listed, Team, Unit

    labels = say("pages", "directory_labels").split(",")
    models: tuple[type[Listed], ...] = (Unit, InspectionObject, Inspector, Team, Item)
    with reading(engine) as session:
        return [(label, session.exec(select(func.count()).select_from(m).where(col(m.listed))).one())
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
    if not request.app[SETTINGS].security.keys:  # ready, but 公示方案 would be refused: say so
        return web.json_response({"status": "ok", "publishing": "refused",
                                  "reason": say("startup", "no_keys_short")})
    return web.json_response({"status": "ok"})


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS): the same code on a faster loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(settings: Settings) -> None:
    """Run the server until interrupted."""
    check_expat()  # platform XML is parsed by expat after a DTD check (STYLE.md): refuse an old one
    app = create_app(settings)
    if CONSOLE_TOKEN in app:  # on standard error, never in a log: whoever reads it may act as anyone
        print(say("console", "url", url=console.url(settings, app[CONSOLE_TOKEN])), file=sys.stderr, flush=True)
    # No access log: a line per callback costs a tenth of the acknowledgement's time, and
    # the pipeline logs what matters (refusals, failures) itself.
    web.run_app(app, host=settings.server.host, port=settings.server.port, print=None, access_log=None,
                handle_signals=True, shutdown_timeout=10, loop=event_loop())
