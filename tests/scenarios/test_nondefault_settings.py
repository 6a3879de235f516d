"""Configuration keys set to something other than their default, and the product
following them (issue 19): ``[dingtalk] card_route_key`` and ``event_callback_path``,
``[reminders] sweep_minutes`` and ``approval_days``, and a non-default ``[bureau]
timezone`` for the scheduler (the frequency cap's calendar year in that timezone is in
tests/storage/test_frequency_cap.py)."""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.app import create_app, reminder_ticker
from bot.batches.inspection import team_of
from bot.batches.results import Entry, submit
from bot.reminders.sweep import sweep
from bot.settings import Settings
from storage.calendar import load_calendar
from storage.db import transaction
from storage.models import Deadline, Task
from tests.support.batch_district import seed_district
from tests.support.dingtalk_bot import DingTalkWalk, dingtalk_settings, edge_settings, link_inspectors, sealed_event
from tests.support.reminders import at, inspected_batch, reminder_settings
from tests.support.wecom_bot import ADMIN, INSPECTOR_IDS


async def test_a_card_route_key_of_our_own(engine, tmp_path, dingtalk, aiohttp_server, unused_tcp_port):
    seed_district(engine, tmp_path)
    link_inspectors(engine)
    port = unused_tcp_port
    base = dingtalk_settings(dingtalk, f"http://127.0.0.1:{port}")
    config = base.model_copy(update={"dingtalk": base.dingtalk.model_copy(update={"card_route_key": "bureau-7"})})
    app = create_app(config, engine, ticker=False)
    await aiohttp_server(app, port=port)
    dingtalk.bot_url, dingtalk.mode = f"http://127.0.0.1:{port}", "http"
    for _ in range(200):
        if dingtalk.routes:
            break
        await asyncio.sleep(0.02)
    assert set(dingtalk.routes) == {"bureau-7"}  # registered under the configured key, not "shuangsui"
    assert dingtalk.routes["bureau-7"]["url"] == f"http://127.0.0.1:{port}/dingtalk/card"

    walk = DingTalkWalk(dingtalk, engine, app)
    created = await walk.group(ADMIN, "@双随 新建抽查 名称=路由 事项=A01 数量=1 方式=大随机 截止=2026-12-31")
    batch_id = re.search(r"批次 (\S+)「", created).group(1)
    await walk.group(ADMIN, f"@双随 公示方案 批次={batch_id}")
    await walk.group(ADMIN, f"@双随 抽取 批次={batch_id}")
    with Session(engine) as session:
        task = session.exec(select(Task)).one()
        first = team_of(session, task.id)[0]
    user = INSPECTOR_IDS[first.inspector_id]
    (card,) = walk.cards(user, f"ss-t{task.id}-a{first.id}")
    assert dingtalk.cards[card["id"]]["route_key"] == "bureau-7"  # the card's clicks come back by that route
    assert "无利害关系" in await walk.click(user, card, f"confirm:{task.id}")


async def test_an_event_callback_path_of_our_own(aiohttp_client, engine):
    config = edge_settings(event_callback_path="/hooks/dingtalk-events")
    client = await aiohttp_client(create_app(config, engine, workers=False))
    params, body = sealed_event({"EventType": "check_url"})
    assert (await client.post("/hooks/dingtalk-events", params=params, data=body)).status == 200
    assert (await client.post("/dingtalk/events", params=params, data=body)).status in (404, 405)


def test_sweep_minutes_and_the_bureau_timezone_drive_the_scheduler(engine):
    config = Settings(reminders={"sweep_minutes": 3}, bureau={"timezone": "Asia/Urumqi"},
                      summaries={"daily_at": "17:30"})
    scheduler = reminder_ticker(engine, config, None)  # no dispatcher: nothing is sent here
    assert scheduler.get_job("reminders").trigger.interval == timedelta(minutes=3)
    assert scheduler.timezone == ZoneInfo("Asia/Urumqi")
    daily = scheduler.get_job("daily").trigger
    assert str(daily.timezone) == "Asia/Urumqi" and "hour='17'" in str(daily) and "minute='30'" in str(daily)
    default = reminder_ticker(engine, Settings(), None)
    assert default.get_job("reminders").trigger.interval == timedelta(minutes=10)


def test_approval_days_set_the_approvers_deadline(engine, tmp_path):
    settings = reminder_settings()
    inspected = inspected_batch(engine, tmp_path, settings)
    submitted_on = date(2026, 9, 30)
    with transaction(engine) as session:
        task = session.exec(select(Task).where(Task.batch_id == inspected).order_by(Task.id)).first()
        lead = team_of(session, task.id)[0].inspector_id
        submit(session, "t", task.id, lead, Entry(category=1, signed=True), at(submitted_on))
    with Session(engine) as session:
        calendar = load_calendar(session)
    for days in (2, 7):
        config = settings.model_copy(update={"reminders": settings.reminders.model_copy(
            update={"approval_days": days})})
        sweep(engine, config, at(submitted_on, 11))
        with Session(engine) as session:
            (deadline,) = session.exec(select(Deadline).where(Deadline.kind == "approval")).all()
        assert deadline.due == calendar.working_days_after(submitted_on, days).day, days
    assert calendar.working_days_after(submitted_on, 2).day != calendar.working_days_after(submitted_on, 7).day
    assert deadline.owed_by == [f"approvers:{deadline.unit_id}"]
