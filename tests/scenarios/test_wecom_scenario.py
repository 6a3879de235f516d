"""Scenarios through the real app and the fake WeCom: signed, encrypted callbacks in,
API calls out, judged by what the fake delivered."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from bot.app import DISPATCHER, SETTINGS
from bot.batches import create, draw, publish
from bot.rules.arguments import parse_arguments
from storage.db import transaction
from storage.models import Assignment, AuditEntry, InboundDelivery, OutboxMessage, Task
from tests.support.fakes.wecom import FakeWeCom
from tests.support.wecom_bot import ADMIN, INSPECTOR_IDS, eventually, resign


def count(engine, model) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def texts_to(fake: FakeWeCom, user: str) -> list[str]:
    return [d["content"] for d in fake.delivered_to(user) if d["msgtype"] == "text"]


async def test_url_verification_answers_the_echo(bot, wecom):
    result = await wecom.verify_url("1288432023552776189")
    assert (result.status, result.text) == (200, "1288432023552776189")
    assert (await wecom.verify_url("12+34/56==", aibot=True)).text == "12+34/56=="


async def test_help_in_a_private_chat_lists_what_the_admin_may_do(bot, wecom):
    result = await wecom.send_text(ADMIN, "帮助")
    assert result.status == 200 and result.text == ""  # an empty 200 at once; the answer comes through the API
    # an admin's list is longer than one WeCom text (2,048 bytes): it comes in parts, in order
    text = await eventually(lambda: "".join(texts_to(wecom, ADMIN)) if "汇总" in "".join(texts_to(wecom, ADMIN))
                            else None)
    assert "帮助" in text and "确认" in text
    assert all(len(part.encode()) <= 2048 for part in texts_to(wecom, ADMIN))
    assert not wecom.dropped


async def test_someone_without_a_role_is_refused_politely_and_audited(bot, wecom, engine):
    await wecom.send_text("stranger", "抽取 批次=1")
    (text,) = await eventually(lambda: texts_to(wecom, "stranger"))
    assert "抽取" in text and "管理员" in text
    with Session(engine) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "refused")).one()
    assert entry.actor == "wecom:stranger" and entry.subject == "抽取"


async def test_an_unknown_command_says_so(bot, wecom):
    await wecom.send_text(ADMIN, "抽奖")
    (text,) = await eventually(lambda: texts_to(wecom, ADMIN))
    assert "抽奖" in text and "帮助" in text


@pytest.mark.parametrize("concurrently", [False, True])
async def test_a_retried_callback_is_processed_once(bot, wecom, engine, concurrently):
    params, body = wecom.build_app_message(
        f"<xml><ToUserName>wwfakecorp</ToUserName><FromUserName>{ADMIN}</FromUserName><CreateTime>1700000000"
        "</CreateTime><MsgType>text</MsgType><Content>进度</Content><MsgId>777</MsgId><AgentID>1000002</AgentID></xml>")
    post = lambda: wecom.post_raw(wecom.app_callback_path, params=params, body=body)  # noqa: E731
    if concurrently:
        results = await asyncio.gather(post(), post(), post())
    else:
        results = [await post(), await post(), await post()]
    assert [r.status for r in results] == [200, 200, 200]
    await eventually(lambda: texts_to(wecom, ADMIN))  # 进度: an answer of one message
    await asyncio.sleep(0.5)
    assert len(texts_to(wecom, ADMIN)) == 1
    assert count(engine, InboundDelivery) == 1


async def test_a_callback_waits_out_another_process_writing_without_stalling_the_server(bot, wecom, engine):
    """On SQLite the intake writes on the event loop when the database is free; when
    another process (a CLI import, say) is writing, it waits on its own thread instead."""
    import sqlite3

    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL writers do not lock the database")
    other = sqlite3.connect(engine.url.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        callback = asyncio.create_task(wecom.send_text(ADMIN, "进度"))  # one short answer
        await asyncio.sleep(0.3)
        assert not callback.done()  # not acknowledged before it is stored
        async with aiohttp.ClientSession() as http:  # the loop is free meanwhile
            async with http.get(f"{wecom.bot_url}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as health:
                assert health.status == 200
    finally:
        other.rollback()
        other.close()
    assert (await callback).status == 200
    (text,) = await eventually(lambda: texts_to(wecom, ADMIN))
    assert "没有进行中" in text


async def test_group_command_is_answered_through_the_ai_bot(bot, wecom):
    result = await wecom.aibot_text(ADMIN, "CHAT1", "@双随 帮助")
    assert result.status == 200
    (reply,) = await eventually(lambda: wecom.aibot_replies)
    assert reply["chatid"] == "CHAT1" and reply["msgtype"] == "markdown"
    assert "帮助" in reply["content"] and "群里" in reply["content"]


def _draw_batch(engine, settings) -> str:
    from datetime import UTC, date, datetime

    now, today = datetime(2026, 11, 26, 2, tzinfo=UTC), date(2026, 11, 26)
    with transaction(engine) as session:
        args = parse_arguments("名称=食品抽查 事项=A01,A02 数量=3 方式=交叉随机 截止=2026-12-31", create.NEW_KEYS)
        batch_id = create.new_batch(session, settings, "admin", args, today).batch.id
    with transaction(engine) as session:
        publish.publish(session, settings, "admin", parse_arguments(f"批次={batch_id}", publish.PUBLISH_KEYS), now)
    with transaction(engine) as session:
        draw.draw(session, settings, "admin", parse_arguments(f"批次={batch_id}", draw.DRAW_KEYS), now)
    return batch_id


async def test_a_draw_sends_each_inspector_a_card_and_a_click_confirms(bot, wecom, engine):
    settings = bot[SETTINGS]
    batch_id = await asyncio.to_thread(_draw_batch, engine, settings)
    bot[DISPATCHER].nudge()
    with Session(engine) as session:
        assignments = session.scalars(select(Assignment)).all()
    assert len(assignments) == 6  # 3 tasks × 2 inspectors
    cards = await eventually(lambda: len([d for d in wecom.delivered if d["card"]]) == 6
                             and [d for d in wecom.delivered if d["card"]])
    (announcement,) = await eventually(lambda: wecom.group_messages)
    assert batch_id in json.dumps(announcement, ensure_ascii=False)
    first = assignments[0]
    user = INSPECTOR_IDS[first.inspector_id]
    card = next(c for c in cards if c["user"] == user and c["task_id"].startswith(f"ss-t{first.task_id}-"))
    assert card["card"]["card_type"] == "button_interaction"
    assert [b["text"] for b in card["card"]["button_list"]] == ["无利害关系", "申请回避"]

    result = await wecom.click(user, card["task_id"], f"confirm:{first.task_id}")
    assert result.status == 200
    await eventually(lambda: wecom.updates)
    assert wecom.card_state[card["task_id"]]["replaced"] == "已确认无利害关系"
    (text,) = await eventually(lambda: texts_to(wecom, user))
    assert "无利害关系" in text
    with Session(engine) as session:
        assert session.get(Assignment, first.id).status == "confirmed"

    # the same confirmation by command is idempotent and says so
    await wecom.send_text(user, f"确认 任务={first.task_id}")
    texts = await eventually(lambda: len(texts_to(wecom, user)) == 2 and texts_to(wecom, user))
    assert "无需重复" in texts[1]
    assert not wecom.dropped


async def test_an_inspector_cannot_confirm_someone_elses_task(bot, wecom, engine):
    await asyncio.to_thread(_draw_batch, engine, bot[SETTINGS])
    with Session(engine) as session:
        task = session.scalars(select(Task)).first()
        on_task = set(session.scalars(select(Assignment.inspector_id).where(Assignment.task_id == task.id)))
    outsider = next(i for i in INSPECTOR_IDS if i not in on_task)
    await wecom.send_text(INSPECTOR_IDS[outsider], f"确认 任务={task.id}")
    (text,) = await eventually(lambda: texts_to(wecom, INSPECTOR_IDS[outsider]))
    assert "不是任务" in text
    with Session(engine) as session:
        assert {a.status for a in session.scalars(select(Assignment))} == {"drawn"}


BAD = {
    "wrong signature": (401, lambda p, b: ({**p, "msg_signature": "0" * 40}, b)),
    "truncated base64": (400, "truncate"),
    "malformed XML": (400, lambda p, b: (p, b"<xml><Encrypt>")),
    "entity bomb": (400, lambda p, b: (p, b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>')),
    "no signature": (400, lambda p, b: ({k: v for k, v in p.items() if k != "msg_signature"}, b)),
    "stale timestamp": (403, "stale"),
    "oversize body": (413, lambda p, b: (p, b"<xml>" + b"x" * (70 * 1024) + b"</xml>")),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_deliveries_get_a_clean_4xx_and_store_nothing(bot, wecom, engine, case):
    status, tamper = BAD[case]
    plaintext = (f"<xml><ToUserName>wwfakecorp</ToUserName><FromUserName>{ADMIN}</FromUserName>"
                 "<CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>帮助</Content>"
                 "<MsgId>1</MsgId><AgentID>1000002</AgentID></xml>")
    import time as _time
    if tamper == "stale":
        params, body = wecom.build_app_message(plaintext, timestamp=int(_time.time()) - 7200)
    else:
        params, body = wecom.build_app_message(plaintext)
        if tamper == "truncate":
            params, body = resign(wecom, params, body, lambda e: e[:-7])
        else:
            params, body = tamper(params, body)
    result = await wecom.post_raw(wecom.app_callback_path, params=params, body=body)
    assert result.status == status
    await asyncio.sleep(0.2)
    assert count(engine, InboundDelivery) == 0 and count(engine, OutboxMessage) == 0
