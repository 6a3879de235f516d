"""The DingTalk fake itself: its error answers, limits and card rules, and callbacks independent receivers accept.

No bot here. A plain aiohttp client calls the fake's APIs, and a tiny echo app stands in for the bot. The echo app
checks each robot message's signature with hmac, decrypts event pushes with wechatpy, and answers with what it got. On
the Stream side, a bare aiohttp WebSocket client and the official ``dingtalk_stream`` SDK connect to the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading

import aiohttp
import dingtalk_stream
import pytest
from aiohttp import web
from defusedxml import ElementTree
from wechatpy.enterprise.crypto import WeChatCrypto

from tests.support.fakes.dingtalk import (
    CARD_TOPIC,
    DUPLICATE_OUT_TRACK_ID,
    INVALID_AUTH,
    INVALID_CLIENT,
    ROBOT_TOPIC,
    ROUTE_KEY_EXISTS,
    THROTTLED,
    UNKNOWN_OUT_TRACK_ID,
    FakeClock,
    FakeDingTalk,
    InvalidReply,
)

APP_KEY, APP_SECRET, TEMPLATE, GROUP = "dingfakeappkey", "fake-app-secret", "shuangsui_task.schema", "cidGROUP1=="
EVENT_TOKEN, EVENT_AES_KEY = "fakeeventtoken", "FakeDingTalkEventEncodingAESKeyForTests0123"
TOKEN_PATH = "/v1.0/oauth2/accessToken"
BATCH = "/v1.0/robot/oToMessages/batchSend"
GROUP_SEND = "/v1.0/robot/groupMessages/send"
DOWNLOAD = "/v1.0/robot/messageFiles/download"
CARDS = "/v1.0/card/instances"
CREATE_AND_DELIVER = "/v1.0/card/instances/createAndDeliver"
REGISTER = "/v1.0/card/callbacks/register"
OPEN = "/v1.0/gateway/connections/open"
ROBOT_SUBSCRIPTIONS = [{"type": "CALLBACK", "topic": ROBOT_TOPIC}]
PNG = b"\x89PNG\r\n\x1a\n fake chart"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def dingtalk(clock):
    fake = FakeDingTalk(clock=clock)
    yield fake
    await fake.close()


@pytest.fixture
async def api(aiohttp_client, dingtalk):
    """A plain client of the fake's APIs."""
    client = await aiohttp_client(dingtalk.app())
    dingtalk.base_url = str(client.make_url("")).rstrip("/")
    return client


@pytest.fixture
async def bot(aiohttp_server, dingtalk, api):
    """The echo bot; the returned dict steers it (``delays``, ``card_answer``, ``event_reply``) and logs it."""
    behaviour = {"delays": [], "card_answer": None, "event_reply": "good", "received": []}
    server = await aiohttp_server(echo_bot(behaviour))
    dingtalk.bot_url = str(server.make_url("")).rstrip("/")
    return behaviour


def echo_bot(behaviour: dict) -> web.Application:
    crypto = WeChatCrypto(EVENT_TOKEN, EVENT_AES_KEY, APP_KEY)

    async def robot(request):
        if behaviour["delays"]:
            await asyncio.sleep(behaviour["delays"].pop(0))
        signed = f"{request.headers.get('timestamp')}\n{APP_SECRET}".encode()
        expected = base64.b64encode(hmac.new(APP_SECRET.encode(), signed, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(request.headers.get("sign", ""), expected):
            return web.Response(status=403, text="bad sign")
        message = await request.json()
        behaviour["received"].append(message)
        return web.json_response(message)

    async def card(request):
        behaviour["received"].append(await request.json())
        return web.json_response(behaviour["card_answer"] or {})

    async def events(request):
        query = request.query
        plain = crypto.decrypt_message({"Encrypt": (await request.json())["encrypt"]}, query["msg_signature"],
                                       query["timestamp"], query["nonce"])
        behaviour["received"].append(json.loads(plain))
        if behaviour["event_reply"] == "plain":
            return web.Response(text="success")
        sealed = ElementTree.fromstring(crypto.encrypt_message("success", "replynonce", query["timestamp"]))
        timestamp = sealed.findtext("TimeStamp")
        if behaviour["event_reply"] == "bad":
            timestamp = str(int(timestamp) + 1)
        return web.json_response({"msg_signature": sealed.findtext("MsgSignature"), "timeStamp": timestamp,
                                  "nonce": sealed.findtext("Nonce"), "encrypt": sealed.findtext("Encrypt")})

    app = web.Application()
    app.router.add_post("/dingtalk/callback", robot)
    app.router.add_post("/dingtalk/card", card)
    app.router.add_post("/dingtalk/events", events)
    return app


async def token_of(api, secret=APP_SECRET) -> dict:
    return await (await api.post(TOKEN_PATH, json={"appKey": APP_KEY, "appSecret": secret})).json()


@pytest.fixture
async def token(api) -> str:
    return (await token_of(api))["accessToken"]


async def call(api, token: str | None, path: str, body: dict, method: str = "POST") -> tuple[int, dict]:
    headers = {"x-acs-dingtalk-access-token": token} if token else {}
    response = await api.request(method, path, headers=headers, json=body)
    return response.status, await response.json()


def batch(users: list[str], content: str = "hi", msg_key: str = "sampleText", **param: str) -> dict:
    return {"robotCode": APP_KEY, "userIds": users, "msgKey": msg_key,
            "msgParam": json.dumps(param or {"content": content}, ensure_ascii=False)}


def card_params(buttons=(("agree", "同意"), ("recuse", "回避")), **variables: str) -> dict[str, str]:
    options = [{"id": "ok", "text": "正常"}, {"id": "bad", "text": "异常"}]
    choice = {"key": "result", "title": "结果", "options": options}
    return {"title": "抽查任务", "body": "**A 公司**",
            "fields": json.dumps([{"label": "单位", "value": "市场监管局"}], ensure_ascii=False),
            "buttons": json.dumps([{"id": key, "text": text, "style": "primary", "params": {"task": "T1",
                                                                                          "action": key}}
                                   for key, text in buttons], ensure_ascii=False),
            "choice": json.dumps(choice, ensure_ascii=False), "closed": "", "link": "", **variables}


def card_body(out_track_id: str, *spaces: str, **extra) -> dict:
    return {"cardTemplateId": TEMPLATE, "outTrackId": out_track_id, "cardData": {"cardParamMap": card_params()},
            "callbackType": "STREAM", "openSpaceId": "dtv1.card//" + ";".join(spaces), "userIdType": 1,
            "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"}, "imGroupOpenDeliverModel": {"robotCode": APP_KEY},
            **extra}


def media_form(content: bytes = PNG) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("media", content, filename="chart.png", content_type="image/png")
    return form


async def open_stream(api, secret=APP_SECRET, subscriptions=ROBOT_SUBSCRIPTIONS) -> tuple[int, dict]:
    response = await api.post(OPEN, json={"clientId": APP_KEY, "clientSecret": secret, "subscriptions": subscriptions,
                                          "ua": "tiny-client/1.0", "localIp": "127.0.0.1"})
    return response.status, await response.json()


async def until(check, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


# ----- tokens -----------------------------------------------------------------------------------------------------


async def test_the_token_is_json_only_reused_within_its_window_and_needed_in_a_header(api, dingtalk, clock):
    form = await api.post(TOKEN_PATH, data={"appKey": APP_KEY, "appSecret": APP_SECRET})
    assert form.status == 400
    wrong = await api.post(TOKEN_PATH, json={"appKey": APP_KEY, "appSecret": "wrong"})
    assert wrong.status == 400 and (await wrong.json())["code"] == INVALID_CLIENT
    first = await token_of(api)
    assert first["expireIn"] == 7200
    clock.advance(7000)
    assert (await token_of(api))["accessToken"] == first["accessToken"]  # the same token, extended
    clock.advance(7000)
    token = first["accessToken"]
    assert (await call(api, token, BATCH, batch(["lisi"])))[0] == 200
    assert dingtalk.token_calls == 4

    status, answer = await call(api, None, BATCH, batch(["lisi"]))
    assert status == 401 and answer["code"] == INVALID_AUTH and answer["requestid"]
    in_query = await api.post(BATCH, params={"access_token": token}, json=batch(["lisi"]))
    assert in_query.status == 401
    dingtalk.expire_tokens()
    assert (await call(api, token, BATCH, batch(["lisi"])))[0] == 401
    fresh = (await token_of(api))["accessToken"]
    assert fresh != token and (await call(api, fresh, BATCH, batch(["lisi"])))[0] == 200
    clock.advance(7200)
    assert (await call(api, fresh, BATCH, batch(["lisi"])))[0] == 401
    assert len(dingtalk.delivered) == 2


# ----- robot messages -------------------------------------------------------------------------------------------


async def test_batch_send_checks_its_body_and_reports_unknown_users(api, dingtalk, token):
    status, answer = await call(api, token, BATCH, batch([f"user{n}" for n in range(21)]))
    assert status == 400 and answer["code"] and answer["message"] and answer["requestid"]
    assert (await call(api, token, BATCH, {**batch(["lisi"]), "msgParam": {"content": "hi"}}))[0] == 400
    assert (await call(api, token, BATCH, {**batch(["lisi"]), "robotCode": "dingother"}))[0] == 400
    assert (await call(api, token, BATCH, {**batch(["lisi"]), "msgKey": "sampleVoice"}))[0] == 400
    assert (await call(api, token, BATCH, batch(["lisi"], msg_key="sampleMarkdown", text="no title")))[0] == 400
    assert (await call(api, token, BATCH, batch([])))[0] == 400
    assert (await call(api, token, BATCH, {**batch(["lisi"]), "msgParam": "{not json"}))[0] == 400
    assert not dingtalk.delivered

    status, answer = await call(api, token, BATCH, batch(["lisi", "ghost", "zhangsan", "lisi"], "抽查提醒"))
    assert status == 200 and answer["processQueryKey"]
    assert (answer["invalidStaffIdList"], answer["flowControlledStaffIdList"]) == (["ghost"], [])
    assert [record["user"] for record in dingtalk.delivered] == ["lisi", "zhangsan"]
    assert dingtalk.delivered_to("lisi")[0] | {"at": None} == {
        "api": "batchSend", "user": "lisi", "msgKey": "sampleText", "param": {"content": "抽查提醒"},
        "content": "抽查提醒", "card": None, "out_track_id": None, "at": None}
    markdown = batch(["wangwu"], msg_key="sampleMarkdown", title="任务", text="**已抽取**")
    assert (await call(api, token, BATCH, markdown))[0] == 200
    assert dingtalk.delivered_to("wangwu")[0]["content"] == "**已抽取**"


async def test_the_21st_private_message_a_minute_is_flow_controlled(api, dingtalk, token, clock):
    for n in range(20):
        assert (await call(api, token, BATCH, batch(["lisi"], f"m{n}")))[1]["flowControlledStaffIdList"] == []
    status, answer = await call(api, token, BATCH, batch(["lisi", "zhangsan"], "m20"))
    assert status == 200 and answer["flowControlledStaffIdList"] == ["lisi"]
    assert len(dingtalk.delivered_to("lisi")) == 20 and dingtalk.delivered[-1]["user"] == "zhangsan"
    clock.advance(59)
    assert (await call(api, token, BATCH, batch(["lisi"], "m21")))[1]["flowControlledStaffIdList"] == ["lisi"]
    clock.advance(1)
    assert (await call(api, token, BATCH, batch(["lisi"], "a minute later")))[1]["flowControlledStaffIdList"] == []
    assert dingtalk.delivered_to("lisi")[-1]["content"] == "a minute later"


async def test_group_messages_need_a_known_group_and_stop_at_20_a_minute(api, dingtalk, token, clock):
    body = {"robotCode": APP_KEY, "openConversationId": GROUP, "msgKey": "sampleMarkdown",
            "msgParam": json.dumps({"title": "公告", "text": "## 抽查"}, ensure_ascii=False)}
    assert (await call(api, token, GROUP_SEND, {**body, "openConversationId": "cidOTHER=="}))[0] == 400
    assert (await call(api, token, GROUP_SEND, {**body, "msgParam": {"title": "公告", "text": "x"}}))[0] == 400
    for _ in range(20):
        status, answer = await call(api, token, GROUP_SEND, body)
        assert status == 200 and answer["processQueryKey"]
    status, answer = await call(api, token, GROUP_SEND, body)
    assert status == 403 and answer["code"] == THROTTLED
    assert len(dingtalk.group_messages) == 20
    assert dingtalk.group_messages[0] | {"at": None} == {
        "api": "groupMessages/send", "conversation": GROUP, "msgKey": "sampleMarkdown",
        "param": {"title": "公告", "text": "## 抽查"}, "content": "## 抽查", "card": None, "out_track_id": None,
        "at": None}
    clock.advance(60)
    assert (await call(api, token, GROUP_SEND, body))[0] == 200


async def test_an_uploaded_image_can_be_sent_by_its_media_id(api, dingtalk, token):
    bad = await (await api.post("/media/upload", params={"access_token": "nope", "type": "image"},
                                data=media_form())).json()
    assert bad["errcode"] == 40014
    answer = await (await api.post("/media/upload", params={"access_token": token, "type": "image"},
                                   data=media_form())).json()
    assert answer["errcode"] == 0 and answer["type"] == "image" and answer["media_id"].startswith("@lA")
    media_id = answer["media_id"]
    assert dingtalk.media[media_id]["content"] == PNG and dingtalk.media[media_id]["content_type"] == "image/png"
    missing = await api.post("/media/upload", params={"access_token": token}, data={"other": "x"})
    assert (await missing.json())["errcode"] != 0

    assert (await call(api, token, BATCH, batch(["lisi"], msg_key="sampleImageMsg", photoURL=media_id)))[0] == 200
    assert dingtalk.delivered_to("lisi")[0]["param"] == {"photoURL": media_id}
    assert dingtalk.delivered_to("lisi")[0]["content"] is None
    assert (await call(api, token, BATCH, batch(["lisi"], msg_key="sampleImageMsg", photoURL="@lAunknown")))[0] == 400
    url = batch(["lisi"], msg_key="sampleImageMsg", photoURL="https://example.com/chart.png")
    assert (await call(api, token, BATCH, url))[0] == 200


# ----- interactive cards ----------------------------------------------------------------------------------------


async def test_create_and_deliver_reports_every_space_inside_a_200(api, dingtalk, token):
    status, answer = await call(api, token, CREATE_AND_DELIVER, card_body(
        "task-1", "IM_ROBOT.lisi", "IM_ROBOT.ghost", f"IM_GROUP.{GROUP}", "IM_GROUP.cidOTHER=="))
    assert status == 200 and answer["success"] is True and answer["result"]["outTrackId"] == "task-1"
    results = {(r["spaceType"], r["spaceId"]): r for r in answer["result"]["deliverResults"]}
    assert [(key, r["success"]) for key, r in results.items()] == [
        (("IM_ROBOT", "lisi"), True), (("IM_ROBOT", "ghost"), False), (("IM_GROUP", GROUP), True),
        (("IM_GROUP", "cidOTHER=="), False)]
    assert results["IM_ROBOT", "ghost"]["errorMsg"] and not results["IM_ROBOT", "lisi"]["errorMsg"]
    assert results["IM_ROBOT", "lisi"]["carrierId"] and not results["IM_ROBOT", "ghost"]["carrierId"]

    assert [(r["api"], r["user"], r["out_track_id"]) for r in dingtalk.delivered] == [("card", "lisi", "task-1")]
    assert dingtalk.delivered[0]["card"] == card_params()
    assert [(r["api"], r["conversation"]) for r in dingtalk.group_messages] == [("card", GROUP)]
    card = dingtalk.cards["task-1"]
    assert (card["template"], card["callback_type"], card["route_key"]) == (TEMPLATE, "STREAM", None)
    assert card["spaces"] == [("IM_ROBOT", "lisi"), ("IM_GROUP", GROUP)] and card["private"] == {}
    view = dingtalk.card_view("task-1", "lisi")
    assert [button["id"] for button in view["buttons"]] == ["agree", "recuse"]
    assert view["fields"] == [{"label": "单位", "value": "市场监管局"}] and view["choice"]["key"] == "result"


async def test_card_creation_is_validated_and_an_out_track_id_is_used_once(api, dingtalk, token):
    bad = card_body("task-1", "IM_ROBOT.lisi")
    bad["cardData"] = {"cardParamMap": {"title": "x", "count": 3}}
    assert (await call(api, token, CREATE_AND_DELIVER, bad))[0] == 400
    for change in ({"cardTemplateId": "other.schema"}, {"callbackType": "HTTP"}, {"callbackType": "WEBHOOK"},
                   {"outTrackId": ""}, {"openSpaceId": "IM_ROBOT.lisi"}, {"openSpaceId": "dtv1.card//ONE_BOX.x"},
                   {"imGroupOpenDeliverModel": {}, "openSpaceId": f"dtv1.card//IM_GROUP.{GROUP}"},
                   {"imRobotOpenDeliverModel": {}}, {"privateData": {"lisi": {"cardParamMap": {"n": 1}}}}):
        status, answer = await call(api, token, CREATE_AND_DELIVER, {**card_body("task-1", "IM_ROBOT.lisi"),
                                                                      **change})
        assert status == 400, change
    assert not dingtalk.cards and not dingtalk.delivered  # a refused createAndDeliver creates nothing

    created = {key: value for key, value in card_body("task-1").items() if key != "openSpaceId"}
    assert await call(api, token, CARDS, created) == (200, {"success": True, "result": "task-1"})
    for path in (CARDS, CREATE_AND_DELIVER):
        status, answer = await call(api, token, path, card_body("task-1", "IM_ROBOT.lisi"))
        assert status == 400 and answer["code"] == DUPLICATE_OUT_TRACK_ID
        assert "outTrackId" in answer["code"] and "already exists" in answer["message"]
    assert not dingtalk.delivered

    deliver = {"outTrackId": "task-1", "openSpaceId": "dtv1.card//IM_ROBOT.zhangsan;IM_ROBOT.ghost",
               "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"}, "userIdType": 1}
    status, answer = await call(api, token, f"{CARDS}/deliver", deliver)
    assert status == 200 and answer["success"] is True
    assert [(r["spaceId"], r["success"]) for r in answer["result"]] == [("zhangsan", True), ("ghost", False)]
    status, answer = await call(api, token, f"{CARDS}/deliver", {**deliver, "outTrackId": "task-9"})
    assert status == 400 and answer["code"] == UNKNOWN_OUT_TRACK_ID

    http = card_body("task-2", "IM_ROBOT.lisi", callbackType="HTTP", callbackRouteKey="not-registered-yet")
    assert (await call(api, token, CREATE_AND_DELIVER, http))[0] == 200
    assert (dingtalk.cards["task-2"]["callback_type"], dingtalk.cards["task-2"]["route_key"]) == (
        "HTTP", "not-registered-yet")


async def test_card_deliveries_count_towards_the_flow_limit(api, dingtalk, token):
    dingtalk.flow_limit_per_minute = 1
    assert (await call(api, token, BATCH, batch(["lisi"])))[0] == 200
    status, answer = await call(api, token, CREATE_AND_DELIVER, card_body("task-1", "IM_ROBOT.lisi",
                                                                          "IM_ROBOT.zhangsan"))
    assert status == 200
    assert [(r["spaceId"], r["success"]) for r in answer["result"]["deliverResults"]] == [
        ("lisi", False), ("zhangsan", True)]
    assert (await call(api, token, BATCH, batch(["zhangsan"])))[1]["flowControlledStaffIdList"] == ["zhangsan"]


async def test_an_update_merges_by_key_or_replaces(api, dingtalk, token):
    private = {"lisi": {"cardParamMap": {"note": "仅你可见"}}}
    assert (await call(api, token, CREATE_AND_DELIVER, card_body("task-1", "IM_ROBOT.lisi",
                                                                 privateData=private)))[0] == 200
    assert dingtalk.delivered[0]["card"]["note"] == "仅你可见"

    async def put(body: dict) -> tuple[int, dict]:
        return await call(api, token, CARDS, {"outTrackId": "task-1", **body}, method="PUT")

    merged = {"cardData": {"cardParamMap": {"closed": "已确认"}}, "cardUpdateOptions": {"updateCardDataByKey": True}}
    assert await put(merged) == (200, {"success": True, "result": True})
    assert dingtalk.cards["task-1"]["param_map"] == card_params(closed="已确认")
    assert (await put({"cardData": {"cardParamMap": {"title": "新"}}}))[0] == 200
    assert dingtalk.cards["task-1"]["param_map"] == {"title": "新"}

    more = {"privateData": {"lisi": {"cardParamMap": {"extra": "1"}}},
            "cardUpdateOptions": {"updatePrivateDataByKey": True}}
    assert (await put(more))[0] == 200
    assert dingtalk.cards["task-1"]["private"] == {"lisi": {"note": "仅你可见", "extra": "1"}}
    assert (await put({"privateData": {"lisi": {"cardParamMap": {"only": "this"}}}}))[0] == 200
    assert dingtalk.cards["task-1"]["private"] == {"lisi": {"only": "this"}}

    assert (await put({"cardData": {"cardParamMap": {"closed": False}}}))[0] == 400
    assert (await put({"cardData": "closed=yes"}))[0] == 400
    status, answer = await call(api, token, CARDS, {"outTrackId": "task-9", **merged}, method="PUT")
    assert status == 400 and answer["code"] == UNKNOWN_OUT_TRACK_ID
    assert [(u["api"], u["by_key"]) for u in dingtalk.updates] == [
        ("PUT", (True, False)), ("PUT", (False, False)), ("PUT", (False, True)), ("PUT", (False, False))]


async def test_a_callback_route_is_registered_once_unless_forced(api, dingtalk, token):
    body = {"callbackRouteKey": "shuangsui", "callbackUrl": "https://bot.example/dingtalk/card",
            "apiSecret": "s3cret"}
    assert await call(api, token, REGISTER, body) == (200, {"success": True, "result": {
        "callbackUrl": "https://bot.example/dingtalk/card", "apiSecret": "s3cret"}})
    status, answer = await call(api, token, REGISTER, {**body, "callbackUrl": "https://other.example/card"})
    assert status == 400 and answer["code"] == ROUTE_KEY_EXISTS
    assert dingtalk.routes["shuangsui"]["url"] == "https://bot.example/dingtalk/card"
    forced = {**body, "callbackUrl": "https://other.example/card", "forceUpdate": True}
    assert (await call(api, token, REGISTER, forced))[0] == 200
    assert dingtalk.routes["shuangsui"] == {"url": "https://other.example/card", "api_secret": "s3cret"}
    assert (await call(api, token, REGISTER, {"callbackRouteKey": "x", "callbackUrl": "not a url"}))[0] == 400


@pytest.mark.parametrize("method, path", [
    ("POST", BATCH), ("POST", GROUP_SEND), ("POST", DOWNLOAD), ("POST", CARDS), ("PUT", CARDS),
    ("POST", f"{CARDS}/deliver"), ("POST", CREATE_AND_DELIVER), ("POST", REGISTER), ("POST", OPEN)])
async def test_a_malformed_body_gets_a_400_never_a_500(api, dingtalk, token, method, path):
    shapes = {"robotCode": APP_KEY, "msgKey": ["sampleText"], "openConversationId": [GROUP], "downloadCode": {},
              "cardTemplateId": TEMPLATE, "outTrackId": {"id": 1}, "cardData": "x", "openSpaceId": 1,
              "callbackRouteKey": [], "clientId": APP_KEY, "subscriptions": "all"}
    for body in ([], "x", 1, shapes):
        assert (await call(api, token, path, body, method))[0] == 400, body
    assert not (dingtalk.delivered or dingtalk.group_messages or dingtalk.cards or dingtalk.routes)


# ----- card clicks ----------------------------------------------------------------------------------------------


async def test_only_recipients_click_buttons_the_card_shows_while_it_is_open(api, dingtalk, token):
    assert (await call(api, token, CREATE_AND_DELIVER, card_body("task-1", "IM_ROBOT.lisi")))[0] == 200
    with pytest.raises(LookupError):
        await dingtalk.click("zhangsan", "task-1", "agree")
    with pytest.raises(LookupError):
        await dingtalk.click("lisi", "task-9", "agree")
    with pytest.raises(ValueError):
        await dingtalk.click("lisi", "task-1", "appeal")
    with pytest.raises(ValueError):
        await dingtalk.click("lisi", "task-1", "agree", form={"result": "maybe"})
    with pytest.raises(ValueError):
        await dingtalk.click("lisi", "task-1", "agree", form={"other": "ok"})

    result = await dingtalk.click("lisi", "task-1", "agree", form={"result": "bad"})  # no Stream client connected
    assert result.status is None and dingtalk.callbacks[-1]["mode"] == "stream"
    assert json.loads(result.sent["content"]) == {"cardPrivateData": {
        "actionIds": ["agree"], "params": {"task": "T1", "action": "agree", "result": "bad"}}}

    mine = card_params(buttons=(("agree", "同意"), ("appeal", "申诉")))["buttons"]
    update = {"outTrackId": "task-1", "privateData": {"lisi": {"cardParamMap": {"buttons": mine}}},
              "cardUpdateOptions": {"updatePrivateDataByKey": True}}
    assert (await call(api, token, CARDS, update, method="PUT"))[0] == 200
    assert (await dingtalk.click("lisi", "task-1", "appeal")).sent["spaceType"] == "IM_ROBOT"
    with pytest.raises(ValueError):
        await dingtalk.click("lisi", "task-1", "recuse")  # lisi's own buttons replace the public ones
    closed = {"outTrackId": "task-1", "cardData": {"cardParamMap": {"closed": "已确认"}},
              "cardUpdateOptions": {"updateCardDataByKey": True}}
    assert (await call(api, token, CARDS, closed, method="PUT"))[0] == 200
    with pytest.raises(ValueError):
        await dingtalk.click("lisi", "task-1", "agree")

    assert (await call(api, token, CREATE_AND_DELIVER, card_body("task-2", f"IM_GROUP.{GROUP}")))[0] == 200
    result = await dingtalk.click("wangwu", "task-2", "recuse")  # any member of the group
    assert (result.sent["spaceType"], result.sent["spaceId"], result.sent["userId"]) == ("IM_GROUP", GROUP, "wangwu")
    with pytest.raises(LookupError):
        await dingtalk.click("ghost", "task-2", "recuse")

    broken = card_body("task-3", "IM_ROBOT.lisi")
    broken["cardData"]["cardParamMap"]["buttons"] = "[{'id': 'agree'}]"
    assert (await call(api, token, CREATE_AND_DELIVER, broken))[0] == 200  # DingTalk takes any string
    with pytest.raises(ValueError):
        dingtalk.card_view("task-3", "lisi")
    with pytest.raises(ValueError):
        await dingtalk.click("lisi", "task-3", "agree")


async def test_an_http_click_goes_to_the_registered_route_and_its_answer_updates_the_card(api, dingtalk, bot, token):
    body = card_body("task-1", "IM_ROBOT.lisi", callbackType="HTTP", callbackRouteKey="shuangsui")
    assert (await call(api, token, CREATE_AND_DELIVER, body))[0] == 200
    result = await dingtalk.click("lisi", "task-1", "agree")
    assert result.status is None and dingtalk.callbacks[-1]["path"] is None and not bot["received"]

    route = {"callbackRouteKey": "shuangsui", "callbackUrl": f"{dingtalk.bot_url}/dingtalk/card", "apiSecret": "s"}
    assert (await call(api, token, REGISTER, route))[0] == 200
    bot["card_answer"] = {"cardUpdateOptions": {"updateCardDataByKey": True},
                          "cardData": {"cardParamMap": {"closed": "已同意"}}}
    result = await dingtalk.click("lisi", "task-1", "agree", form={"result": "ok"})
    assert result.status == 200
    params = {"task": "T1", "action": "agree", "result": "ok"}
    assert bot["received"] == [{
        "outTrackId": "task-1", "corpId": "dingfakecorp", "userId": "lisi", "userIdType": 1,
        "type": "actionCallback", "spaceType": "IM_ROBOT", "spaceId": "lisi",
        "content": json.dumps({"cardPrivateData": {"actionIds": ["agree"], "params": params}}),
        "value": json.dumps(params), "extension": "{}"}]
    assert dingtalk.callbacks[-1]["path"] == f"{dingtalk.bot_url}/dingtalk/card"
    assert dingtalk.cards["task-1"]["param_map"]["closed"] == "已同意"
    assert dingtalk.updates[-1] | {"at": None} == {
        "api": "callback", "out_track_id": "task-1", "user": "lisi", "card_data": {"closed": "已同意"},
        "private_data": {}, "by_key": (True, False), "at": None}
    with pytest.raises(ValueError):
        await dingtalk.click("lisi", "task-1", "recuse")

    assert (await call(api, token, CREATE_AND_DELIVER, {**body, "outTrackId": "task-2"}))[0] == 200
    bot["card_answer"] = {"userPrivateData": {"cardParamMap": {"closed": True}}}
    with pytest.raises(InvalidReply):
        await dingtalk.click("lisi", "task-2", "agree")
    assert dingtalk.cards["task-2"]["private"] == {}


# ----- robot callbacks ------------------------------------------------------------------------------------------


def test_the_robot_callback_signature_matches_the_published_vector():
    assert FakeDingTalk(app_secret="testAppSecret123").sign(1690362102194) == (
        "ZbWotKGCR+Iwl2egJ17Im1ZnBL+RUrRcoqpNBTp+NQs=")


async def test_a_robot_message_is_signed_and_shaped_as_dingtalk_sends_it(dingtalk, bot, clock):
    result = await dingtalk.send_text("lisi", "帮助", msg_id="msgA1")
    assert result.status == 200
    message = json.loads(result.text)
    assert message == result.sent == bot["received"][0]
    created = int(clock() * 1000)
    assert set(message) == {
        "conversationId", "chatbotCorpId", "chatbotUserId", "msgId", "senderNick", "isAdmin", "senderStaffId",
        "sessionWebhookExpiredTime", "createAt", "senderCorpId", "conversationType", "senderId", "sessionWebhook",
        "robotCode", "msgtype", "text"}
    assert (message["conversationType"], message["msgtype"], message["text"]) == ("1", "text", {"content": "帮助"})
    assert (message["senderStaffId"], message["msgId"], message["createAt"]) == ("lisi", "msgA1", created)
    assert message["sessionWebhookExpiredTime"] == created + 5_400_000
    assert message["senderId"].startswith("$:LWCP_v1:$") and message["conversationId"].startswith("cid")
    assert (message["robotCode"], message["chatbotCorpId"], message["senderCorpId"]) == (
        APP_KEY, "dingfakecorp", "dingfakecorp")
    assert message["sessionWebhook"].startswith(f"{dingtalk.base_url}/robot/sendBySession?session=")
    headers = dingtalk.callbacks[-1]["headers"]
    assert headers["timestamp"] == str(created) and headers["sign"] == dingtalk.sign(created)

    again = (await dingtalk.send_text("lisi", "再来")).sent
    assert again["conversationId"] == message["conversationId"] and again["msgId"] != message["msgId"]
    assert again["sessionWebhook"] != message["sessionWebhook"]

    group = (await dingtalk.send_text("zhangsan", "新建抽查 2025-3", conversation=GROUP)).sent
    assert (group["conversationId"], group["conversationType"], group["conversationTitle"]) == (
        GROUP, "2", "抽查工作群")
    assert group["text"] == {"content": " 新建抽查 2025-3"} and group["isInAtList"] is True
    assert group["atUsers"] == [{"dingtalkId": group["chatbotUserId"]}]
    chatter = await dingtalk.send_text("zhangsan", "闲聊", conversation=GROUP, at_bot=False)
    assert (chatter.status, chatter.sent) == (None, None) and len(bot["received"]) == 3
    with pytest.raises(LookupError):
        await dingtalk.send_text("zhangsan", "hi", conversation="cidOTHER==")


async def test_a_built_message_can_be_replayed_or_tampered_with(dingtalk, bot):
    headers, body = dingtalk.build_robot_message("lisi", "hi", timestamp=1690362102194)
    assert headers["timestamp"] == "1690362102194" and headers["sign"] == dingtalk.sign(1690362102194)
    assert json.loads(body)["text"] == {"content": "hi"}
    assert (await dingtalk.post_raw(dingtalk.robot_path, headers=headers, body=body)).status == 200
    assert (await dingtalk.post_raw(dingtalk.robot_path, headers=headers, body=body)).status == 200
    tampered = {**headers, "timestamp": "1690362102195"}
    assert (await dingtalk.post_raw(dingtalk.robot_path, headers=tampered, body=body)).status == 403
    assert [callback["kind"] for callback in dingtalk.callbacks] == ["raw", "raw", "raw"]


async def test_a_slow_bot_gets_no_retry(dingtalk, bot):
    dingtalk.callback_timeout = 0.2
    bot["delays"] = [1]
    result = await dingtalk.send_text("lisi", "hi")
    assert result.status is None and result.sent["text"] == {"content": "hi"}
    assert len(dingtalk.callbacks) == 1


async def test_a_session_webhook_answers_until_it_expires(api, dingtalk, bot, clock):
    message = (await dingtalk.send_text("zhangsan", "进度", conversation=GROUP)).sent
    path = message["sessionWebhook"].removeprefix(dingtalk.base_url)

    async def reply(body: dict, to: str = path) -> dict:
        return await (await api.post(to, json=body)).json()

    markdown = {"msgtype": "markdown", "markdown": {"title": "进度", "text": "## 3/5"},
                "at": {"atUserIds": ["zhangsan"]}}
    assert await reply(markdown) == {"errcode": 0, "errmsg": "ok"}
    assert dingtalk.session_replies[0] | {"at": None} == {
        "session": path.split("session=")[1], "conversation": GROUP, "conversation_type": "2", "user": "zhangsan",
        "msgtype": "markdown", "content": "## 3/5", "mentions": {"atUserIds": ["zhangsan"]}, "at": None}
    assert (await reply({"msgtype": "text", "text": {}}))["errcode"] != 0
    assert (await reply({"msgtype": "actionCard", "actionCard": {}}))["errcode"] != 0
    clock.advance(5399)
    assert (await reply({"msgtype": "text", "text": {"content": "还在"}}))["errcode"] == 0
    clock.advance(1)
    assert (await reply({"msgtype": "text", "text": {"content": "晚了"}}))["errcode"] == 300001
    assert (await reply({"msgtype": "text", "text": {"content": "x"}}, "/robot/sendBySession?session=nope"))[
        "errcode"] == 300001
    assert [r["content"] for r in dingtalk.session_replies] == ["## 3/5", "还在"]


async def test_a_photo_is_fetched_through_its_download_code(api, dingtalk, bot, token):
    result = await dingtalk.send_media("lisi", "picture", PNG, file_name="chart.png", content_type="image/png")
    assert result.status == 200 and result.sent["msgtype"] == "picture"
    assert set(result.sent["content"]) == {"downloadCode", "pictureDownloadCode"} and "text" not in result.sent
    code = result.sent["content"]["downloadCode"]
    assert (await call(api, None, DOWNLOAD, {"downloadCode": code, "robotCode": APP_KEY}))[0] == 401
    assert (await call(api, token, DOWNLOAD, {"downloadCode": "nope", "robotCode": APP_KEY}))[0] == 400
    status, answer = await call(api, token, DOWNLOAD, {"downloadCode": code, "robotCode": APP_KEY})
    assert status == 200 and answer["downloadUrl"].startswith(f"{dingtalk.base_url}/files/")
    fetched = await api.get(answer["downloadUrl"].removeprefix(dingtalk.base_url))  # no token: the URL suffices
    assert fetched.status == 200 and fetched.content_type == "image/png" and await fetched.read() == PNG
    assert (await api.get("/files/unknown")).status == 404

    report = (await dingtalk.send_media("lisi", "file", b"%PDF", file_name="报告.pdf",
                                        content_type="application/pdf")).sent["content"]
    assert report["fileName"] == "报告.pdf" and report["fileId"] and report["spaceId"]
    video = (await dingtalk.send_media("lisi", "video", b"mp4", content_type="video/mp4")).sent["content"]
    assert video["videoType"] == "mp4" and video["duration"]
    with pytest.raises(ValueError):
        await dingtalk.send_media("lisi", "sticker", b"")


async def test_an_event_push_is_encrypted_with_ms_timestamps_and_wants_an_encrypted_success(dingtalk, bot, clock):
    result = await dingtalk.push_event("/dingtalk/events", {"EventType": "check_url"}, token=EVENT_TOKEN,
                                       aes_key=EVENT_AES_KEY)
    assert (result.status, result.reply) == (200, "success")
    assert bot["received"] == [{"EventType": "check_url"}]
    attempt = dingtalk.callbacks[-1]
    assert attempt["params"]["timestamp"] == str(int(clock() * 1000)) and len(attempt["params"]["timestamp"]) == 13
    assert set(json.loads(attempt["body"])) == {"encrypt"}

    bot["event_reply"] = "bad"
    with pytest.raises(InvalidReply):
        await dingtalk.push_event("/dingtalk/events", {"EventType": "x"}, token=EVENT_TOKEN, aes_key=EVENT_AES_KEY)
    bot["event_reply"] = "plain"
    with pytest.raises(InvalidReply):
        await dingtalk.push_event("/dingtalk/events", {"EventType": "x"}, token=EVENT_TOKEN, aes_key=EVENT_AES_KEY)


# ----- fault injection ------------------------------------------------------------------------------------------


async def test_fail_next_answers_http_errors_error_codes_and_delays(api, dingtalk, token):
    dingtalk.fail_next("oToMessages/batchSend", status=502)
    response = await api.post(BATCH, headers={"x-acs-dingtalk-access-token": token}, json=batch(["lisi"], "a"))
    assert response.status == 502
    dingtalk.fail_next("oauth2/accessToken", times=2, status=503, code="ServiceUnavailable")
    statuses = [(await api.post(TOKEN_PATH, json={"appKey": APP_KEY, "appSecret": APP_SECRET})).status
                for _ in range(3)]
    assert statuses == [503, 503, 200]
    dingtalk.fail_next("/media/upload", errcode=-1)
    answer = await api.post("/media/upload", params={"access_token": token}, data=media_form())
    assert (await answer.json())["errcode"] == -1 and not dingtalk.media

    dingtalk.fail_next("oToMessages/batchSend", delay=0.3)
    with pytest.raises(TimeoutError):
        await api.post(BATCH, headers={"x-acs-dingtalk-access-token": token}, json=batch(["lisi"], "slow"),
                       timeout=aiohttp.ClientTimeout(total=0.05))
    await asyncio.sleep(0.6)
    assert [record["content"] for record in dingtalk.delivered] == ["slow"]  # a slow server still delivers
    assert [call["body"]["userIds"] for call in dingtalk.calls if call["path"] == BATCH] == [["lisi"], ["lisi"]]


# ----- the Stream gateway ---------------------------------------------------------------------------------------


async def test_a_stream_ticket_opens_one_connection_within_90_seconds(api, dingtalk, clock):
    assert (await open_stream(api, secret="wrong"))[0] == 400
    assert (await open_stream(api, subscriptions=[{"type": "WHATEVER", "topic": "x"}]))[0] == 400
    status, answer = await open_stream(api)
    assert status == 200 and answer["endpoint"] == f"ws://{api.server.host}:{api.server.port}/connect"
    ws = await api.ws_connect("/connect", params={"ticket": answer["ticket"]})
    await dingtalk.wait_for_stream(1)
    client = dingtalk.stream_clients[0]
    assert (client["subscriptions"], client["ua"], client["local_ip"]) == (
        ROBOT_SUBSCRIPTIONS, "tiny-client/1.0", "127.0.0.1")
    with pytest.raises(aiohttp.WSServerHandshakeError) as reused:
        await api.ws_connect("/connect", params={"ticket": answer["ticket"]})
    assert reused.value.status == 401

    late = (await open_stream(api))[1]["ticket"]
    clock.advance(90)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await api.ws_connect("/connect", params={"ticket": late})
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await api.ws_connect("/connect")
    assert dingtalk.stream_connections == 1
    await ws.close()
    await until(lambda: not dingtalk.stream_clients)


async def tiny_client(api, seen: list, *, echo_pings: bool = True, subscriptions=ROBOT_SUBSCRIPTIONS):
    """A bare Stream client: it acks every frame except disconnect, answering callbacks with {"response": null}."""
    _, answer = await open_stream(api, subscriptions=subscriptions)
    ws = await api.ws_connect("/connect", params={"ticket": answer["ticket"]})

    async def run():
        async for message in ws:
            frame = message.json()
            seen.append(frame)
            if frame["headers"]["topic"] == "disconnect":
                continue  # it needs no ack; the server closes the connection soon
            data = json.loads(frame["data"]) if echo_pings else {"opaque": "wrong"}
            ack_data = data if frame["type"] == "SYSTEM" else {"response": None}
            await ws.send_json({"code": 200, "message": "OK", "data": json.dumps(ack_data),
                                "headers": {"messageId": frame["headers"]["messageId"],
                                            "contentType": "application/json"}})

    return ws, asyncio.create_task(run())


async def test_stream_pushes_pings_and_disconnects_reach_a_tiny_client(api, dingtalk):
    seen = []
    ws, task = await tiny_client(api, seen)
    await dingtalk.wait_for_stream()
    ack = await dingtalk.stream_push(ROBOT_TOPIC, {"msgId": "m1"})
    frame = seen[0]
    assert ack["code"] == 200 and ack["headers"]["messageId"] == frame["headers"]["messageId"]
    assert (frame["specVersion"], frame["type"], frame["headers"]["topic"], frame["headers"]["contentType"]) == (
        "1.0", "CALLBACK", ROBOT_TOPIC, "application/json")
    assert frame["headers"]["time"].isdigit() and json.loads(frame["data"]) == {"msgId": "m1"}
    with pytest.raises(LookupError):
        await dingtalk.stream_push(CARD_TOPIC, {})
    acks = await dingtalk.stream_ping()
    assert len(acks) == 1 and seen[-1]["type"] == "SYSTEM" and seen[-1]["headers"]["topic"] == "ping"

    dingtalk.mode = "stream"
    result = await dingtalk.send_text("lisi", "帮助")
    assert (result.status, result.text, result.ack["code"]) == (200, json.dumps({"response": None}), 200)
    assert json.loads(seen[-1]["data"]) == result.sent and result.sent["text"] == {"content": "帮助"}
    assert dingtalk.callbacks[-1] | {"at": None} == {"kind": "robot", "mode": "stream", "path": ROBOT_TOPIC,
                                                     "params": None, "headers": None, "body": result.sent, "at": None}

    await dingtalk.stream_disconnect(grace=0.05)
    await asyncio.wait_for(task, 5)  # the server closed the connection
    assert seen[-1]["headers"]["topic"] == "disconnect" and json.loads(seen[-1]["data"])["reason"]
    assert ws.closed and not dingtalk.stream_clients
    assert (await dingtalk.send_text("lisi", "nobody there")).status is None


async def test_stream_pushes_are_spread_over_connections_and_a_silent_client_times_out(api, dingtalk):
    first, second = [], []
    connections = [await tiny_client(api, first), await tiny_client(api, second)]
    await dingtalk.wait_for_stream(2)
    for n in range(40):
        await dingtalk.stream_push(ROBOT_TOPIC, {"n": n})
    assert first and second and len(first) + len(second) == 40

    _, answer = await open_stream(api, subscriptions=[{"type": "CALLBACK", "topic": CARD_TOPIC}])
    silent = await api.ws_connect("/connect", params={"ticket": answer["ticket"]})
    await dingtalk.wait_for_stream(3)
    with pytest.raises(TimeoutError):
        await dingtalk.stream_push(CARD_TOPIC, {"x": 1}, timeout=0.1)
    with pytest.raises(TimeoutError):
        await dingtalk.stream_ping(timeout=0.1)
    await silent.close()
    await until(lambda: len(dingtalk.stream_clients) == 2)

    liar, _ = await tiny_client(api, [], echo_pings=False)
    await dingtalk.wait_for_stream(3)
    with pytest.raises(InvalidReply):
        await dingtalk.stream_ping()
    for ws in (liar, *(ws for ws, _ in connections)):
        await ws.close()


class Recorder(dingtalk_stream.CallbackHandler):
    """An SDK callback handler that keeps what it got and answers ``answer``."""

    def __init__(self, answer: dict | None = None) -> None:
        super().__init__()
        self.received: list[dict] = []
        self.answer = answer

    async def process(self, callback):
        self.received.append(callback.data)
        return dingtalk_stream.AckMessage.STATUS_OK, self.answer


class SdkThread:
    """The official Stream SDK client, in its own thread and event loop, since it opens connections with blocking
    ``requests`` calls."""

    def __init__(self, client: dingtalk_stream.DingTalkStreamClient) -> None:
        self.client = client
        self.started = threading.Event()
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def start(self) -> None:
        self.thread.start()
        assert self.started.wait(5)

    async def _main(self) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        self.started.set()
        task = asyncio.create_task(self.client.start())
        await self.stopping.wait()
        while not task.done():  # start() swallows a cancellation once and sleeps before reconnecting
            task.cancel()
            await asyncio.wait([task], timeout=0.1)

    async def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        await asyncio.to_thread(self.thread.join, 10)
        assert not self.thread.is_alive()


async def test_the_official_stream_sdk_connects_receives_and_reconnects(api, dingtalk, token, monkeypatch):
    monkeypatch.setattr(dingtalk_stream.DingTalkStreamClient, "OPEN_CONNECTION_API", f"{dingtalk.base_url}{OPEN}")
    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential(APP_KEY, APP_SECRET))
    robot = Recorder()
    cards = Recorder({"cardUpdateOptions": {"updateCardDataByKey": True},
                      "cardData": {"cardParamMap": {"closed": "已同意"}}})
    client.register_callback_handler(dingtalk_stream.ChatbotMessage.TOPIC, robot)
    client.register_callback_handler(dingtalk_stream.CallbackHandler.TOPIC_CARD_CALLBACK, cards)
    sdk = SdkThread(client)
    sdk.start()
    try:
        await dingtalk.wait_for_stream()
        assert dingtalk.stream_clients[0]["subscriptions"] == [{"type": "CALLBACK", "topic": ROBOT_TOPIC},
                                                               {"type": "CALLBACK", "topic": CARD_TOPIC}]
        assert dingtalk.stream_clients[0]["ua"].startswith("dingtalk-sdk-python")
        dingtalk.mode = "stream"
        result = await dingtalk.send_text("lisi", "帮助", conversation=GROUP)
        assert result.status == 200
        message = dingtalk_stream.ChatbotMessage.from_dict(robot.received[0])
        assert (message.text.content, message.sender_staff_id, message.conversation_type) == (" 帮助", "lisi", "2")
        assert message.session_webhook == result.sent["sessionWebhook"] and message.conversation_title == "抽查工作群"
        assert len(await dingtalk.stream_ping()) == 1  # the SDK echoes the opaque

        assert (await call(api, token, CREATE_AND_DELIVER, card_body("task-1", "IM_ROBOT.lisi")))[0] == 200
        click = await dingtalk.click("lisi", "task-1", "agree")
        assert click.status == 200
        assert json.loads(cards.received[0]["content"])["cardPrivateData"]["actionIds"] == ["agree"]
        assert dingtalk.cards["task-1"]["param_map"]["closed"] == "已同意"  # the answer in the ack took effect

        await dingtalk.stream_disconnect(grace=0.1)
        await dingtalk.wait_for_stream(1)  # the SDK reconnected with a new ticket
        assert dingtalk.stream_connections == 2
        assert (await dingtalk.send_text("lisi", "再来")).status == 200
        assert dingtalk_stream.ChatbotMessage.from_dict(robot.received[1]).text.content == "再来"
    finally:
        await sdk.stop()
