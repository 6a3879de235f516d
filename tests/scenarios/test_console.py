"""The local console through its HTTP API: people, typed commands in the group and in
private, cards clicked and updated — the same handlers as WeCom, on the console platform."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from sqlmodel import Session, select

from bot.app import create_app
from bot.console.routes import Console
from bot.settings import Settings
from storage.models import Assignment, ConsoleMessage
from storage.sealing import new_key
from tests.support.console_bot import CONSOLE_ROLES as ROLES
from tests.support.console_bot import CONSOLE_TOKEN as TOKEN
from tests.support.console_bot import console_messages as messages
from tests.support.console_bot import console_say as say
from tests.support.wecom_bot import eventually


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


async def test_a_click_posted_again_with_its_id_is_taken_once(console, engine):
    """A page's retry of one click (the same ``click_id``) is a duplicate delivery, as a
    platform's redelivery is: confirmed once and answered once. Without the id each post is a click."""
    command = "新建抽查 名称=重复点击 事项=A01 数量=1 方式=交叉随机 截止=2026-12-31"
    created = await say(console, engine, "admin", command, chat="group")
    batch = created.split("批次 ", 1)[1].split("「", 1)[0]
    await say(console, engine, "admin", f"公示方案 批次={batch}", chat="group")
    await say(console, engine, "admin", f"抽取 批次={batch}", chat="group")
    with Session(engine) as session:
        first = session.exec(select(Assignment).order_by(Assignment.id)).first()
    (card,) = await eventually(lambda: [m.payload for m in messages(engine, first.inspector_id) if m.kind == "card"])
    click = {"user": first.inspector_id, "card_id": card["card_id"], "action": "confirm",
             "value": card["buttons"][0]["value"], "click_id": "page-click-0001"}
    answers = [await (await console.post("/console/api/click", json=click)).json() for _ in range(3)]
    assert [a["duplicate"] for a in answers] == [False, True, True]
    await eventually(lambda: [m for m in messages(engine, first.inspector_id) if m.kind == "card_update"])
    texts = lambda: [m.payload["text"] for m in messages(engine, first.inspector_id) if m.kind == "text"]  # noqa: E731
    await eventually(texts)
    assert sum("无利害关系" in t for t in texts()) == 1
    again = await (await console.post("/console/api/click", json={**click, "click_id": ""})).json()
    assert again["duplicate"] is False  # no id: another click (answered: already confirmed)
    assert (await eventually(lambda: [t for t in texts() if "无需重复" in t]))
    for bad in ("short", "x" * 65, "has space!", 12345678):
        assert (await console.post("/console/api/click", json={**click, "click_id": bad})).status == 400


async def test_bad_requests_are_refused(console):
    assert (await console.post("/console/api/send", data=b"not json",
                               headers={"Content-Type": "application/json"})).status == 400
    assert (await console.post("/console/api/send", json={"user": "", "text": "x"})).status == 400
    assert (await console.post("/console/api/click", json={"user": "a", "card_id": "", "action": ""})).status == 400
    assert (await console.get("/console/api/messages?user=a&after=x")).status == 400


async def test_only_loopback_may_use_it(engine):
    console = Console(Settings(console={"enabled": True}), engine, take=None, token=TOKEN)

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


# ----- issue 17 item 11: the attacks on the console ------------------------------------------------------------------


async def test_a_reverse_proxy_on_this_machine_is_refused(console):
    """Behind a proxy on the same host every request is loopback: what it relays is refused."""
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        response = await console.get("/console/api/people", headers={header: "203.0.113.9"})
        assert response.status == 403 and "反向代理" in await response.text()


async def test_another_site_cannot_post_as_anyone(console, engine):
    """A page elsewhere POSTs text/plain JSON (no preflight), without the cookie (SameSite=
    Strict keeps it home): refused, nothing typed. With the cookie, text/plain is refused too."""
    body = '{"user": "admin", "chat": "group", "text": "抽取 批次=1"}'
    async with aiohttp.ClientSession() as elsewhere:  # a browser sending no cookie to another site's request
        response = await elsewhere.post(console.make_url("/console/api/send"), data=body,
                                        headers={"Content-Type": "text/plain"})
        assert response.status == 403 and "token=" in await response.text()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = await console.post("/console/api/send", data=body, headers={"Content-Type": content_type})
        assert response.status == 415
    with Session(engine) as session:
        assert session.exec(select(ConsoleMessage).where(ConsoleMessage.author == "admin")).first() is None


async def test_the_token_is_needed_and_kept_in_a_strict_cookie(engine, tmp_path, aiohttp_client):
    settings = Settings(console={"enabled": True}, roles=ROLES, security={"keys": [new_key()]})
    client = await aiohttp_client(create_app(settings, engine, ticker=False, console_token=TOKEN))
    for path in ("/console/", "/console/api/people", "/console/api/messages?user=admin&after=0"):
        assert (await client.get(path)).status == 403
    assert (await client.get("/console/?token=wrong")).status == 403
    response = await client.get(f"/console/?token={TOKEN}", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/console/"
    cookie = response.headers["Set-Cookie"]
    assert f"shuangsui_console={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert (await client.get("/console/api/people")).status == 200
    assert (await client.get("/console/?token=wrong")).status == 200  # the good cookie stays
    assert (await client.get("/console/api/people")).status == 200
    assert (await client.get(f"/console/api/people?token={TOKEN}", cookies={"shuangsui_console": "x"})).status == 403
    other = await aiohttp_client(create_app(settings, engine, ticker=False))  # another start: another token
    assert (await other.get(f"/console/?token={TOKEN}")).status == 403


async def test_dns_rebinding_is_refused(console):
    """A page at evil.example whose name now points at 127.0.0.1 sends its own Host."""
    for host in ("evil.example:8080", "evil.example", "127.0.0.1.evil.example:8080", "localhost", "127.0.0.1:1"):
        response = await console.get("/console/api/messages?user=admin&after=0", headers={"Host": host})
        assert response.status == 421, host
    port = console.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1:8080"):  # served, or configured
        assert (await console.get("/console/api/people", headers={"Host": host})).status == 200


async def test_an_uploaded_page_is_never_served_as_a_page(console, engine):
    """Stored XSS: an upload's own content type (HTML, SVG) is not served back; only safe
    image types are shown inline, and nothing is sniffed."""
    from storage import evidence
    from storage.db import transaction

    with transaction(engine) as session:
        page = evidence.store(session, b"<script>alert(1)</script>", "text/html")
        svg = evidence.store(session, b"<svg onload=alert(1)></svg>", "image/svg+xml")
        png = evidence.store(session, b"\x89PNG\r\n\x1a\n", "image/png")
    for digest in (page, svg):
        response = await console.get(f"/console/api/blob/{digest}")
        assert response.status == 200 and response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    response = await console.get(f"/console/api/blob/{png}")
    assert response.headers["Content-Type"] == "image/png" and "Content-Disposition" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_console_pages_send_security_headers(console):
    response = await console.get("/console/")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    refused = await console.get("/console/api/people", headers={"X-Real-IP": "1.2.3.4"})
    assert refused.headers["X-Content-Type-Options"] == "nosniff"


def test_the_console_only_starts_on_loopback(engine):
    """[server] host beyond loopback with the console on: refused at start, naming the key."""
    from bot.cli import main
    from bot.settings import ConfigError

    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        create_app(Settings(console={"enabled": True}, server={"host": host}), engine, workers=False)
    for host in ("0.0.0.0", "192.0.2.7", "::", "example.org"):
        with pytest.raises(ConfigError, match=r"\[server\] host"):
            create_app(Settings(console={"enabled": True}, server={"host": host}), engine, workers=False)
    import os
    from unittest import mock
    with mock.patch.dict(os.environ, {"SHUANGSUI__CONSOLE__ENABLED": "true", "SHUANGSUI__SERVER__HOST": "0.0.0.0"}):
        assert main(["serve"]) == 2
