"""GET /metrics: deliveries, acknowledgement latency, sends and the outbox gauges, in the
Prometheus text format, from the real app on the fake WeCom (and DingTalk Stream)."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import timedelta

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from bot import outbox_keys
from bot.app import DISPATCHER, METRICS, create_app
from bot.clock import now as clock_now
from bot.metrics import Metrics, allowed, error_code
from bot.outbound import USER, Destination, Text
from bot.settings import ConfigError, Settings, load_settings
from storage import outbox
from storage.db import transaction
from storage.models import OutboxMessage
from tests.support.wecom_bot import ADMIN, Walk, eventually


async def scrape(base_url: str, **headers) -> tuple[int, dict[tuple[str, tuple], float]]:
    """The status, and every sample as (name, sorted labels) → value."""
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/metrics", headers=headers) as response:
        if response.status != 200:
            return response.status, {}
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return 200, samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_deliveries_duplicates_refusals_and_latency_by_platform(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    await walk.say(ADMIN, "帮助")
    taken = wecom.callbacks[-1]
    assert (await wecom.post_raw(taken["path"], params=taken["params"], body=taken["body"])).status == 200
    forged = {**taken["params"], "msg_signature": "0" * 40}
    assert (await wecom.post_raw(taken["path"], params=forged, body=taken["body"])).status == 401
    await wecom.verify_url()  # a GET: URL verification, not a delivery

    status, samples = await scrape(wecom.bot_url)
    assert status == 200
    deliveries = "shuangsui_inbound_deliveries_total"
    assert value(samples, deliveries, platform="wecom", result="taken", status="2xx") == 1
    assert value(samples, deliveries, platform="wecom", result="duplicate", status="2xx") == 1
    assert value(samples, deliveries, platform="wecom", result="refused", status="4xx") == 1
    assert sum(v for (name, _), v in samples.items() if name == deliveries) == 3
    # Latency of the two acknowledgements (the refusal is not one), each well inside WeCom's 5 s.
    assert value(samples, "shuangsui_ack_latency_seconds_count", platform="wecom") == 2
    assert value(samples, "shuangsui_ack_latency_seconds_bucket", platform="wecom", le="5.0") == 2
    assert 0 < value(samples, "shuangsui_ack_latency_seconds_sum", platform="wecom") < 10
    # The answer went out; nothing is waiting; the database gauges were read.
    assert value(samples, "shuangsui_outbox_sent_total", platform="wecom") >= 1
    assert value(samples, "shuangsui_outbox_depth", platform="wecom") == 0
    assert value(samples, "shuangsui_outbox_oldest_age_seconds", platform="wecom") == 0
    assert value(samples, "shuangsui_metrics_database_up") == 1
    # Operational numbers only: no user, no message text among the labels.
    labels = {v for _, pairs in samples for _, v in pairs}
    assert not labels & {ADMIN, "帮助"}
    assert "shuangsui_reminder_sweep_lag_seconds" not in {name for name, _ in samples}  # ticker=False


async def test_outbox_depth_and_age_and_send_failures(bot, wecom, engine):
    with transaction(engine) as session:
        outbox.queue(session, Destination("wecom", USER, "nobody"), Text("你好"), "metrics:unknown-user")
        # No DingTalk sender here: these wait (retried every minute) and show as depth.
        reminder = outbox_keys.reminder_digest("dingtalk:u1", 1)
        outbox.queue(session, Destination("dingtalk", USER, "u1"), Text("提醒"), reminder)
        outbox.queue(session, Destination("dingtalk", USER, "u2"), Text("通知"), "metrics:other")
        session.execute(update(OutboxMessage).where(OutboxMessage.platform == "dingtalk")
                        .values(created_at=clock_now() - timedelta(minutes=10)))
    bot[DISPATCHER].nudge()

    async def counted():
        _, samples = await scrape(wecom.bot_url)
        failed = value(samples, "shuangsui_send_failures_total", platform="wecom", code="errcode_81013")
        retried = value(samples, "shuangsui_send_retries_total", platform="dingtalk", code="platform_disabled")
        return samples if failed and retried >= 2 else None

    samples = None
    for _ in range(100):
        samples = await counted()
        if samples:
            break
        await asyncio.sleep(0.1)
    assert samples, "the failure and the retries were not counted"
    assert value(samples, "shuangsui_send_failures_total", platform="wecom", code="errcode_81013") == 1
    assert value(samples, "shuangsui_outbox_depth", platform="dingtalk") == 2
    assert 590 < value(samples, "shuangsui_outbox_oldest_age_seconds", platform="dingtalk") < 900
    assert 590 < value(samples, "shuangsui_reminder_oldest_undelivered_age_seconds", platform="dingtalk") < 900
    assert value(samples, "shuangsui_reminder_oldest_undelivered_age_seconds", platform="wecom") == 0
    # The admin was told of the failure, through the outbox (sent, then nothing left on WeCom).
    await eventually(lambda: [d for d in wecom.delivered_to(ADMIN) if "nobody" in d["content"]])


async def test_stream_deliveries_are_counted_like_callbacks(dingtalk_stream_walk, dingtalk, dingtalk_stream_bot):
    await dingtalk_stream_walk.say(ADMIN, "帮助")
    last = dingtalk.callbacks[-1]
    assert last["mode"] == "stream"
    await dingtalk.stream_push(last["path"], last["body"])  # the same frame again
    await dingtalk.stream_push(last["path"], {"not": "a message"})
    _, samples = await scrape(dingtalk.bot_url)
    deliveries = "shuangsui_inbound_deliveries_total"
    assert value(samples, deliveries, platform="dingtalk", result="taken", status="2xx") == 1
    assert value(samples, deliveries, platform="dingtalk", result="duplicate", status="2xx") == 1
    assert value(samples, deliveries, platform="dingtalk", result="refused", status="4xx") == 1
    assert value(samples, "shuangsui_ack_latency_seconds_count", platform="dingtalk") == 2


async def test_metrics_are_for_loopback_and_the_listed_networks_only(bot, wecom):
    assert (await scrape(wecom.bot_url))[0] == 200
    # Relayed by a reverse proxy on this machine: the real client is unknown, so no.
    assert (await scrape(wecom.bot_url, **{"X-Forwarded-For": "203.0.113.9"}))[0] == 404
    nets = [ipaddress.ip_network("10.0.1.0/24"), ipaddress.ip_network("2001:db8::/32")]
    assert allowed("127.0.0.1", []) and allowed("::1", []) and allowed("::ffff:127.0.0.1", [])
    assert not allowed("203.0.113.9", []) and not allowed("10.0.1.7", []) and not allowed(None, nets)
    assert allowed("10.0.1.7", nets) and allowed("2001:db8::5", nets) and not allowed("10.0.2.7", nets)
    assert not allowed("127.0.0.1", nets, proxied=True)


def test_metrics_from_is_checked_at_start(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[server]\nmetrics_from = ["10.0.0.0/24", " 192.0.2.5 "]\n', encoding="utf-8")
    assert load_settings(path).server.metrics_from == ["10.0.0.0/24", "192.0.2.5"]
    path.write_text('[server]\nmetrics_from = ["10.0.0.300"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="metrics_from"):
        load_settings(path)


def test_each_app_has_its_own_registry(engine):
    first, second = create_app(Settings(), engine, workers=False), create_app(Settings(), engine, workers=False)
    first[METRICS].delivered("wecom", 200, True, 0.01)
    assert first[METRICS].deliveries.labels("wecom", "taken", "2xx")._value.get() == 1
    assert second[METRICS].deliveries.labels("wecom", "taken", "2xx")._value.get() == 0


def test_sweep_lag_counts_from_the_schedule(engine):
    metrics = Metrics(engine, Settings())
    assert metrics.sweep_lag() is None
    metrics.sweeping(600, first_at=1000.0)
    assert metrics.sweep_lag(at=990.0) == 0 and metrics.sweep_lag(at=1030.0) == 30
    metrics._sweep[1] = 1000.0  # swept at 1000: due again at 1600
    assert metrics.sweep_lag(at=1500.0) == 0 and metrics.sweep_lag(at=1900.0) == 300


@pytest.mark.parametrize(("error", "code"), [
    ("errcode 81013: invalid user", "errcode_81013"),
    ("errcode 45009", "errcode_45009"),
    ("sessionWebhook errcode 310000", "errcode_310000"),
    ("HTTP 400 invalidParameter", "http_400_invalidParameter"),
    ("HTTP 429 Forbidden.AccessDenied.QpsLimit", "http_429_Forbidden.AccessDenied.QpsLimit"),
    ("HTTP 502", "http_502"),
    ("TimeoutError", "TimeoutError"),
    ("invalid user zhangsan", "invalid_user"),
    ("card flow controlled: 限流", "flow_controlled"),
    ("card not delivered: user zhangsan has no robot", "not_delivered"),
    ("platform dingtalk not enabled here", "platform_disabled"),
    ("no group robot configured ([wecom] webhook_key)", "not_configured"),
    ("something else with text in it", "other"),
])
def test_error_codes_are_short_and_bounded(error, code):
    assert error_code(error) == code
