"""The local console through its HTTP API: people, typed commands in the group and in
private, cards clicked and updated — the same handlers as WeCom, on the console platform."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from sqlmodel import Session, select

from bot.app import create_app
from bot.console.routes import Console
from bot.settings import Settings
from storage.models import Assignment, ConsoleMessage
from storage.sealing import new_key
from tests.support.batch_district import seed_district
from tests.support.wecom_bot import eventually

ROLES = {"admins": ["console:admin"], "units": {"S-DC": {"approvers": ["console:approver"]},
                                                "S-XC": {"approvers": ["console:approver"]}}}


@pytest.fixture
async def console(engine, tmp_path, aiohttp_client):
    seed_district(engine, tmp_path)
    settings = Settings(console={"enabled": True}, roles=ROLES, security={"keys": [new_key()]},
                        bureau={"default_lead": "U-XY"})
    return await aiohttp_client(create_app(settings, engine, ticker=False))


def messages(engine, conversation: str) -> list[ConsoleMessage]:
    with Session(engine) as session:
        return list(session.exec(select(ConsoleMessage).where(ConsoleMessage.conversation == conversation,
                                                              ConsoleMessage.author == "bot")
                                 .order_by(ConsoleMessage.id)))


async def say(client, engine, user: str, text: str, chat: str = "private") -> str:
    conversation = "group" if chat == "group" else user
    before = len(messages(engine, conversation))
    response = await client.post("/console/api/send", json={"user": user, "chat": chat, "text": text})
    assert response.status == 200
    new = await eventually(lambda: messages(engine, conversation)[before:])
    return new[-1].payload.get("text", "")


async def test_the_page_and_the_people(console):
    page = await (await console.get("/console/")).text()
    assert "本地控制台" in page and "<script>" in page
    people = await (await console.get("/console/api/people")).json()
    by_id = {p["id"]: p for p in people}
    assert by_id["admin"]["roles"] == ["管理员"]
    assert "审批人（东城所）" in by_id["approver"]["roles"][0]
    assert by_id["I01"]["name"] == "检查员1" and "执法检查人员" in by_id["I01"]["roles"][0]


async def test_a_draw_from_the_group_and_a_card_clicked(console, engine):
    command = "@双随 新建抽查 名称=控制台演示 事项=A01 数量=2 方式=交叉随机 截止=2026-12-31"
    created = await say(console, engine, "admin", command, chat="group")
    batch = created.split("批次 ", 1)[1].split("「", 1)[0]
    await say(console, engine, "admin", f"公示方案 批次={batch}", chat="group")
    await say(console, engine, "admin", f"抽取 批次={batch}", chat="group")
    with Session(engine) as session:
        first = session.exec(select(Assignment).order_by(Assignment.id)).first()
    cards = await eventually(lambda: [m for m in messages(engine, first.inspector_id) if m.kind == "card"])
    card = cards[0].payload
    assert card["buttons"][0]["label"] == "无利害关系"
    response = await console.post("/console/api/click", json={
        "user": first.inspector_id, "card_id": card["card_id"], "action": "confirm",
        "value": card["buttons"][0]["value"]})
    assert response.status == 200
    update = await eventually(lambda: [m for m in messages(engine, first.inspector_id) if m.kind == "card_update"])
    assert update[0].payload["closed"] == "已确认无利害关系"
    listing = await (await console.get(f"/console/api/messages?user={first.inspector_id}&after=0")).json()
    assert {m["conversation"] for m in listing} == {"group", "private"}


async def test_bad_requests_are_refused(console):
    assert (await console.post("/console/api/send", data=b"not json")).status == 400
    assert (await console.post("/console/api/send", json={"user": "", "text": "x"})).status == 400
    assert (await console.post("/console/api/click", json={"user": "a", "card_id": "", "action": ""})).status == 400
    assert (await console.get("/console/api/messages?user=a&after=x")).status == 400


async def test_only_loopback_may_use_it(engine):
    console = Console(Settings(console={"enabled": True}), engine, take=None)

    class Peer:
        def get_extra_info(self, name, default=None):
            return ("203.0.113.9", 5555) if name == "peername" else default

    request = make_mocked_request("GET", "/console/api/people", transport=Peer())
    with pytest.raises(Exception) as refused:
        await console.people(request)
    assert getattr(refused.value, "status", None) == 403


async def test_disabled_by_default(engine, aiohttp_client):
    client = await aiohttp_client(create_app(Settings(security={"keys": [new_key()]}), engine))
    assert (await client.get("/console/")).status == 404
