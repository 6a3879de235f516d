"""Operational metrics: ``GET /metrics`` in the Prometheus text format, one registry per app.

This instance's own numbers are counted where they happen: inbound deliveries and the
acknowledgement latency by one middleware around the platform callback routes (and by
the DingTalk Stream handler), sends by the outbox dispatcher, sweeps by the reminder
ticker. What describes shared state (the outbox, undelivered reminder digests) is read
from the database when scraped, with one aggregate query in a worker thread, so every
instance reports the same values for it.

Labels are operational only (platform, result, status class, a short error code): never
a user, a message, a batch. The page is served to loopback and to ``[server]
metrics_from`` only, and never to a request that came through a reverse proxy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from datetime import datetime
from functools import cache

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, select

from bot import outbox_keys
from bot.chat import platforms
from bot.chat.events import Event
from bot.clock import now as clock_now
from bot.settings import Settings
from storage.db import reading
from storage.models import OutboxMessage, table_of

log = logging.getLogger(__name__)

#: Acknowledgement latency buckets (seconds): DingTalk waits about 1.5 s, WeCom 5 s.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0)
#: Headers a reverse proxy adds: such a request's real client is not ``request.remote``.
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")

# What the platform callback handling the current request learned from ``take``: the
# middleware sets a fresh list per request, ``noting`` appends to it.
_takes: ContextVar[list[bool] | None] = ContextVar("shuangsui_takes", default=None)


class Metrics:
    """The metrics of one app: its own registry (several apps in one process, e.g. tests,
    never share a series)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=False)
        self.allowed_from = [ipaddress.ip_network(entry, strict=False) for entry in settings.server.metrics_from]
        self.deliveries = Counter(
            "shuangsui_inbound_deliveries", "Inbound deliveries this instance answered, by platform and result "
            "(taken: new and stored; duplicate: already taken; ignored: acknowledged, nothing to do; "
            "refused: a 4xx/5xx answer) and the answer's status class", ("platform", "result", "status"),
            registry=registry)
        self.ack_seconds = Histogram(
            "shuangsui_ack_latency_seconds", "Time from a delivery's arrival at this instance to its acknowledgement "
            "(the empty 200 of a callback, the ack of a Stream frame), by platform", ("platform",),
            buckets=ACK_BUCKETS, registry=registry)
        self.sent = Counter("shuangsui_outbox_sent", "Outbox messages this instance sent, by platform",
                            ("platform",), registry=registry)
        self.failures = Counter(
            "shuangsui_send_failures", "Outbox messages this instance failed for good (the admins are told), "
            "by platform and error code", ("platform", "code"), registry=registry)
        self.retries = Counter(
            "shuangsui_send_retries", "Send attempts by this instance that will be retried, by platform and "
            "error code", ("platform", "code"), registry=registry)
        self.sweep_failures = Counter("shuangsui_reminder_sweep_failures", "Reminder sweeps on this instance "
                                      "that failed (the next tick tries again)", registry=registry)
        # Each delivery counts in a series found once (``labels`` builds and locks on every call).
        self._ack = cache(self.ack_seconds.labels)
        self._delivery = cache(lambda platform, result, status_class: self.deliveries.labels(
            platform, result, f"{status_class}xx"))
        self._routes: dict[object, str] = {}  # aiohttp route → platform
        self._sweep: list[float | None] | None = None  # [interval, last success, first run] (unix seconds)
        for platform in platforms.enabled(settings):  # series exist from the start, so rate() sees the first one
            self.ack_seconds.labels(platform)
            self.sent.labels(platform)
            for result in ("taken", "duplicate"):
                self.deliveries.labels(platform, result, "2xx")
        registry.register(_SweepLag(self))
        registry.register(_SharedState(engine, platforms.enabled(settings)))

    # --- inbound ---------------------------------------------------------------------------------

    def watch(self, platform: str, routes: Iterable) -> None:
        """Measure the deliveries to these routes (``app.router.add_routes``' answer); POSTs only."""
        for route in routes:
            if route.method == "POST":
                self._routes[route] = platform

    def delivered(self, platform: str, status: int, took: bool | None, seconds: float | None = None) -> None:
        """One delivery answered with ``status``; ``took``: what ``take`` said (None: not called)."""
        if status < 400:
            result = "ignored" if took is None else "taken" if took else "duplicate"
            if seconds is not None:
                self._ack(platform).observe(seconds)
        else:
            result = "refused"
        self._delivery(platform, result, status // 100).inc()

    def middleware(self) -> Middleware:
        """The aiohttp middleware measuring every watched callback route."""
        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            platform = self._routes.get(request.match_info.route)
            if platform is None:
                return await handler(request)
            started, takes = time.perf_counter(), list[bool]()
            token = _takes.set(takes)
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                self.delivered(platform, exc.status, _took(takes), time.perf_counter() - started)
                raise
            except Exception:
                self.delivered(platform, 500, _took(takes))
                raise
            finally:
                _takes.reset(token)
            self.delivered(platform, response.status, _took(takes), time.perf_counter() - started)
            return response
        return measure

    # --- outbound and reminders --------------------------------------------------------------------

    def send_outcome(self, platform: str, done: str, error: str = "") -> None:
        """What the dispatcher recorded: ``sent``, ``retry`` or ``failed`` (for good)."""
        if done == "sent":
            self.sent.labels(platform).inc()
        elif done == "retry":
            self.retries.labels(platform, error_code(error)).inc()
        elif done == "failed":
            self.failures.labels(platform, error_code(error)).inc()

    def sweeping(self, every: float, first_at: float) -> None:
        """This instance sweeps every ``every`` seconds, the first time at ``first_at`` (unix time)."""
        self._sweep = [every, None, first_at]

    def swept(self, ok: bool = True) -> None:
        if not ok:
            self.sweep_failures.inc()
        elif self._sweep is not None:
            self._sweep[1] = time.time()

    def sweep_lag(self, at: float | None = None) -> float | None:
        """Seconds this instance's reminder sweep is behind its schedule: since the last
        successful sweep beyond one interval (before the first, since its scheduled time);
        0 when on time, None when this instance does not sweep."""
        if self._sweep is None:
            return None
        every, last, first = self._sweep
        assert every is not None and first is not None  # sweeping() sets both
        expected = last + every if last is not None else first
        return max(0.0, (time.time() if at is None else at) - expected)

    # --- the page ----------------------------------------------------------------------------------

    def allows(self, request: web.Request) -> bool:
        return allowed(request.remote, self.allowed_from, proxied=any(h in request.headers for h in PROXY_HEADERS))

    async def page(self, request: web.Request) -> web.Response:
        """``GET /metrics``: a 404 to anyone not allowed (the page is not advertised). The
        format is the one the scraper asks for (``Accept``): classic text 0.0.4 by default."""
        if not self.allows(request):
            raise web.HTTPNotFound()
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.to_thread(encode, self.registry)  # the database gauges query in the thread
        return web.Response(body=body, headers={"Content-Type": content_type})


def _took(takes: list[bool]) -> bool | None:
    return any(takes) if takes else None


def noting(take: Callable[[Event], Awaitable[bool]]) -> Callable[[Event], Awaitable[bool]]:
    """``take``, telling the metrics middleware whether the delivery was new or a duplicate."""
    async def noted(event: Event) -> bool:
        new = await take(event)
        seen = _takes.get()
        if seen is not None:
            seen.append(new)
        return new
    return noted


def allowed(remote: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network], *,
            proxied: bool = False) -> bool:
    """Loopback, or an address in ``networks``; never a request relayed by a proxy (its
    remote address is the proxy's)."""
    if proxied:
        return False
    try:
        address = ipaddress.ip_address((remote or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or any(address in network for network in networks)


_ERRCODE = re.compile(r"errcode (-?\d{1,9})")
_HTTP = re.compile(r"^HTTP (\d{3})(?: ([A-Za-z][A-Za-z0-9_.]{0,47}))?")
_EXCEPTION = re.compile(r"^[A-Z][A-Za-z0-9]{2,47}$")  # an exception's class name, as senders report a crash
_PHRASES = (("invalid user", "invalid_user"), ("flow controlled", "flow_controlled"),
            ("access token", "access_token"), ("accesstoken", "access_token"), ("not delivered", "not_delivered"),
            ("not enabled here", "platform_disabled"), ("no longer stored", "media_gone"),
            ("configured", "not_configured"), ("cannot send", "unsupported"), ("cannot answer", "unsupported"))


def error_code(error: str) -> str:
    """A short label for a send error, from a bounded set: the platform's code
    (``errcode_81013``, ``http_400_invalidParameter``), an exception's name, a known
    phrase, else ``other`` — never a user id or any text of the message."""
    if match := _ERRCODE.search(error):
        return f"errcode_{match.group(1)}"
    if match := _HTTP.match(error):
        return "_".join(part for part in ("http", *match.groups()) if part)
    if _EXCEPTION.match(error):
        return error
    lowered = error.lower()
    return next((code for phrase, code in _PHRASES if phrase in lowered), "other")


class _SweepLag(Collector):
    """The in-process reminder sweep lag, computed when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self):
        lag = self.metrics.sweep_lag()
        if lag is None:
            return
        family = GaugeMetricFamily(
            "shuangsui_reminder_sweep_lag_seconds", "How far this instance's reminder sweep is behind its schedule: "
            "seconds since its last successful sweep beyond [reminders] sweep_minutes (0 when on time)")
        family.add_metric([], lag)
        yield family


class _SharedState(Collector):
    """Gauges of the shared outbox, read from the database when scraped (the same on every
    instance): one aggregate query over the unsent rows."""

    def __init__(self, engine: Engine, platforms: Sequence[str]) -> None:
        self.engine, self.platforms = engine, list(platforms)

    def collect(self):
        up = GaugeMetricFamily("shuangsui_metrics_database_up",
                               "Whether this scrape could read the outbox gauges from the database (1) or not (0)")
        try:
            rows = self._read()
        except Exception as exc:  # a scrape never fails: the other numbers still count
            log.warning("metrics: the outbox could not be read: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = clock_now()
        depth = GaugeMetricFamily(
            "shuangsui_outbox_depth", "Outbox messages not yet sent (pending or being sent), by platform; "
            "from the shared database, the same on every instance", labels=("platform",))
        oldest = GaugeMetricFamily(
            "shuangsui_outbox_oldest_age_seconds", "Age of the oldest outbox message not yet sent, by platform "
            "(0 when none); from the shared database, the same on every instance", labels=("platform",))
        reminders = GaugeMetricFamily(
            "shuangsui_reminder_oldest_undelivered_age_seconds", "Age of the oldest reminder digest a sweep queued "
            "that is not yet sent, by platform (0 when none); from the shared database, the same on every "
            "instance", labels=("platform",))
        for platform in sorted(set(self.platforms) | set(rows)):
            count, first, first_reminder = rows.get(platform, (0, None, None))
            depth.add_metric([platform], count)
            oldest.add_metric([platform], _age(now, first))
            reminders.add_metric([platform], _age(now, first_reminder))
        yield from (depth, oldest, reminders)

    def _read(self) -> dict[str, tuple[int, datetime | None, datetime | None]]:
        table = table_of(OutboxMessage)
        query = (select(table.c.platform, func.count(), func.min(table.c.created_at),
                        func.min(case((table.c.subject == outbox_keys.REMINDERS, table.c.created_at))))
                 .where(table.c.status.in_(("pending", "sending"))).group_by(table.c.platform))
        with reading(self.engine) as session:
            return {platform: (count, first, reminder)
                    for platform, count, first, reminder in session.execute(query)}


def _age(now: datetime, instant: datetime | None) -> float:
    return max(0.0, (now - instant).total_seconds()) if instant is not None else 0.0
