"""A location as evidence (issue 19 item 6; art. 14: 监管数据可保留，监管痕迹可查询): sent in
the private chat while a task is chosen with 取证 — a WeCom 位置消息, or the console's
location form — it is kept with the task's evidence (coordinates, label, time), audited,
and counted on the result and approval cards like a photo."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlmodel import select

from bot.chat.events import LOCATION, Event
from bot.wecom.parse import MalformedDelivery, app_event
from storage import evidence
from storage.db import transaction
from storage.models import Assignment, AuditEntry, Evidence
from tests.support.batches import rows, team
from tests.support.chat_tasks import USER_OF, confirmed, drawn
from tests.support.console_bot import console_messages as messages
from tests.support.console_bot import console_say as say
from tests.support.wecom_bot import APPROVER, Walk, eventually

LABEL = "东城区光明路12号 老街坊超市"


async def location(walk: Walk, user: str, latitude: str, longitude: str, label: str) -> str:
    before = len(walk.texts(user))
    assert (await walk.fake.send_location(user, latitude, longitude, label)).status == 200
    await walk.quiet()
    return "\n".join(walk.texts(user)[before:])


async def test_a_wecom_location_is_kept_audited_and_counted_like_a_photo(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    await confirmed(engine, task.id)
    user = USER_OF[team(engine, task.id)[0]]
    answer = await location(walk, user, "39.915123", "116.404321", LABEL)
    assert "请先告诉我" in answer and rows(engine, Evidence) == []  # no task chosen: nothing kept

    assert "位置都会归入任务" in await walk.say(user, f"取证 任务={task.id}")
    answer = await location(walk, user, "39.915123", "116.404321", LABEL)
    assert f"已记录位置「{LABEL}」" in answer and "纬度 39.915123" in answer and "经度 116.404321" in answer
    assert f"归入任务 {task.id}" in answer and "现有现场记录 1 份" in answer
    assert "现有现场记录 2 份" in await walk.photo(user, b"\xff\xd8 the shop front")
    (kept,) = rows(engine, Evidence, Evidence.media_type == "location")
    assert (kept.task_id, kept.latitude, kept.longitude, kept.label) == (task.id, 39.915123, 116.404321, LABEL)
    assert kept.located_at is not None and kept.added_by == f"wecom:{user}"
    with transaction(engine) as session:
        data, content_type = evidence.load(session, kept.sha256)
    record = json.loads(data)
    assert (record["type"], record["latitude"], record["longitude"], record["label"]) == (
        "location", 39.915123, 116.404321, LABEL)
    assert datetime.fromisoformat(record["at"]).replace(tzinfo=None) == kept.located_at.replace(tzinfo=None)
    entry = [e for e in rows(engine, AuditEntry, AuditEntry.action == "evidence.added") if e.detail["kind"] == LOCATION]
    assert len(entry) == 1 and entry[0].detail["label"] == LABEL and entry[0].detail["latitude"] == 39.915123

    # counted on the cards like photos
    assert "检查完成" in await walk.say(user, f"完成 任务={task.id}")
    (card,) = walk.cards(user, f"ss-res{task.id}-")
    assert "已附现场记录 2 份" in json.dumps(card["card"], ensure_ascii=False)
    await walk.say(user, f"结果 任务={task.id} 类别=1 签字=是")
    (approval,) = walk.cards(APPROVER, "ss-apr")
    assert "2 份" in json.dumps(approval["card"], ensure_ascii=False)


def test_a_wecom_location_message_parses_and_a_bad_one_is_refused():
    xml = ("<xml><ToUserName>corp</ToUserName><FromUserName>zhangsan</FromUserName><CreateTime>1764900000</CreateTime>"
           "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803"
           "</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>1234567890123456</MsgId>"
           "<AgentID>1</AgentID></xml>")
    event = app_event(xml.encode())
    assert event.chat == "private" and event.delivery_key == "app:msg:1234567890123456"
    assert (event.media.kind, event.media.latitude, event.media.longitude, event.media.label) == (
        "location", 23.134521, 113.358803, "位置信息")
    assert Event.from_json(json.loads(json.dumps(event.to_json()))) == event  # stored and read back whole
    for bad in ("<Location_X>north</Location_X>", "<Location_X>123.5</Location_X>", "<Location_X>nan</Location_X>"):
        broken = xml.replace("<Location_X>23.134521</Location_X>", bad)
        try:
            app_event(broken.encode())
        except MalformedDelivery:
            continue
        raise AssertionError(f"accepted {bad}")


async def test_the_console_sends_a_location_as_evidence(console, engine):
    created = await say(console, engine, "admin", "新建抽查 名称=位置 事项=A01 数量=1 方式=大随机 截止=2026-12-31")
    batch = created.split("批次 ", 1)[1].split("「", 1)[0]
    await say(console, engine, "admin", f"公示方案 批次={batch}")
    await say(console, engine, "admin", f"抽取 批次={batch}")
    with transaction(engine) as session:
        first = session.exec(select(Assignment).order_by(Assignment.id)).first()
        inspector, task_id = first.inspector_id, first.task_id
    assert "位置都会归入任务" in await say(console, engine, inspector, f"取证 任务={task_id}")
    for bad in ({"latitude": "x", "longitude": "1"}, {"latitude": 91, "longitude": 1}, {"longitude": 1}):
        response = await console.post("/console/api/location", json={"user": inspector, "label": "x", **bad})
        assert response.status == 400 and "纬度" in await response.text()
    response = await console.post("/console/api/location", json={
        "user": inspector, "label": "光明路12号", "latitude": "39.9", "longitude": 116.4})
    assert response.status == 200
    answer = await eventually(lambda: [m for m in messages(engine, inspector) if "已记录位置" in
                                       m.payload.get("text", "")])
    assert "「光明路12号」" in answer[0].payload["text"]
    (kept,) = rows(engine, Evidence)
    assert (kept.media_type, kept.latitude, kept.longitude, kept.label, kept.added_by) == (
        "location", 39.9, 116.4, "光明路12号", f"console:{inspector}")
    page = await (await console.get("/console/")).text()
    assert "发送位置" in page


def test_a_location_record_is_canonical():
    at = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    one = evidence.location_record(39.9, 116.4, "甲", at)
    assert one == evidence.location_record(39.9, 116.4, "甲", at) != evidence.location_record(39.9, 116.4, "甲",
                                                                                          at.replace(minute=1))
