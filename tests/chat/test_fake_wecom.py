"""The WeCom fake itself: its error codes, limits and silent drops, and callbacks a wechatpy receiver accepts.

No bot here: a plain aiohttp client calls the fake's APIs, and a tiny echo app stands in for the bot, verifying
and decrypting each callback with wechatpy and answering with what it decrypted.
"""

from __future__ import annotations

import asyncio
import functools
import json

import aiohttp
import pytest
from aiohttp import web
from defusedxml import ElementTree
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from tests.support.fakes.wecom import (
    AIBOT_AES_KEY,
    APP_AES_KEY,
    DUPLICATE_TASK_ID,
    INVALID_RESPONSE_CODE,
    CallbackResult,
    FakeClock,
    FakeWeCom,
    InvalidReply,
)

CORP, AGENT, SECRET = "wwfakecorp", 1000002, "fake-secret"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def wecom(clock):
    fake = FakeWeCom(clock=clock)
    yield fake
    await fake.close()


@pytest.fixture
async def api(aiohttp_client, wecom):
    """A plain client of the fake's APIs."""
    client = await aiohttp_client(wecom.app())
    wecom.base_url = str(client.make_url("")).rstrip("/")
    return client


@pytest.fixture
async def bot(aiohttp_server, wecom, api):
    """The echo bot; the returned dict steers it (``delays`` per attempt, ``reply`` good/bad) and logs it."""
    behaviour = {"delays": [], "reply": None, "received": []}
    server = await aiohttp_server(echo_bot(behaviour))
    wecom.bot_url = str(server.make_url("")).rstrip("/")
    return behaviour


def echo_bot(behaviour: dict) -> web.Application:
    app_crypto = WeChatCrypto("faketoken123", APP_AES_KEY, CORP)
    aibot_crypto = WeChatCrypto("fakeaibot456", AIBOT_AES_KEY, "")

    def signed(request):
        return request.query["msg_signature"], request.query["timestamp"], request.query["nonce"]

    async def verify(request, crypto):
        try:
            return web.Response(text=crypto.check_signature(*signed(request), request.query["echostr"]))
        except InvalidSignatureException:
            return web.Response(status=403, text="bad signature")

    async def receive(request, crypto, as_json):
        if behaviour["delays"]:
            await asyncio.sleep(behaviour["delays"].pop(0))
        body = await request.text()
        try:
            plain = crypto.decrypt_message({"Encrypt": json.loads(body)["encrypt"]} if as_json else body,
                                           *signed(request))
        except InvalidSignatureException:
            return web.Response(status=403, text="bad signature")
        behaviour["received"].append(plain)
        if not behaviour["reply"]:
            return web.Response(text=plain)
        sealed = crypto.encrypt_message(f"<xml><MsgType>update_button</MsgType><Echo>{len(plain)}</Echo></xml>",
                                        "replynonce", "1700000001")
        if behaviour["reply"] == "bad":
            sealed = sealed.replace("<TimeStamp>1700000001", "<TimeStamp>1700000002")
        if not as_json:
            return web.Response(text=sealed, content_type="text/xml")
        root = ElementTree.fromstring(sealed)
        return web.json_response({"encrypt": root.findtext("Encrypt"), "msgsignature": root.findtext("MsgSignature"),
                                  "timestamp": int(root.findtext("TimeStamp")), "nonce": root.findtext("Nonce")})

    app = web.Application()
    app.router.add_get("/wecom/callback", functools.partial(verify, crypto=app_crypto))
    app.router.add_get("/wecom/aibot", functools.partial(verify, crypto=aibot_crypto))
    app.router.add_post("/wecom/callback", functools.partial(receive, crypto=app_crypto, as_json=False))
    app.router.add_post("/wecom/aibot", functools.partial(receive, crypto=aibot_crypto, as_json=True))
    return app


async def token_of(api, corpid=CORP, secret=SECRET) -> dict:
    response = await api.get("/cgi-bin/gettoken", params={"corpid": corpid, "corpsecret": secret})
    return await response.json()


async def send(api, token: str, body: dict, path="/cgi-bin/message/send") -> dict:
    response = await api.post(path, params={"access_token": token}, json={"agentid": AGENT, **body})
    return await response.json()


def text(touser: str, content: str, **extra) -> dict:
    return {"touser": touser, "msgtype": "text", "text": {"content": content}, **extra}


def card(task_id: str | None, keys=("agree", "recuse"), card_type="button_interaction", **fields) -> dict:
    body = {"card_type": card_type, "main_title": {"title": "抽查任务"}, "card_action": {"type": 1, "url": "http://x"},
            "button_list": [{"text": key, "key": key} for key in keys], **fields}
    if task_id is not None:
        body["task_id"] = task_id
    return {"touser": "lisi", "msgtype": "template_card", "template_card": body}


@pytest.fixture
async def token(api) -> str:
    return (await token_of(api))["access_token"]


# ----- tokens -----------------------------------------------------------------------------------------------------


async def test_tokens_are_issued_expired_and_revoked_with_wecoms_codes(api, wecom, clock):
    assert (await token_of(api, corpid="wwother"))["errcode"] == 40013
    assert (await token_of(api, secret="wrong"))["errcode"] == 40001
    first, second = await token_of(api), await token_of(api)
    assert first["errcode"] == 0 and first["expires_in"] == 7200 and first["access_token"] != second["access_token"]
    assert wecom.token_calls == 4
    assert (await send(api, first["access_token"], text("zhangsan", "hi")))["errcode"] == 0

    wecom.expire_tokens()
    assert (await send(api, first["access_token"], text("zhangsan", "hi")))["errcode"] == 42001
    fresh = (await token_of(api))["access_token"]
    assert (await send(api, fresh, text("zhangsan", "hi")))["errcode"] == 0
    wecom.revoke_tokens()
    assert (await send(api, fresh, text("zhangsan", "hi")))["errcode"] == 40014
    assert (await send(api, "made-up", text("zhangsan", "hi")))["errcode"] == 40014
    missing = await api.post("/cgi-bin/message/send", json={"agentid": AGENT, **text("zhangsan", "hi")})
    assert (await missing.json())["errcode"] == 41001

    aging = (await token_of(api))["access_token"]
    clock.advance(7200)
    assert (await send(api, aging, text("zhangsan", "hi")))["errcode"] == 42001
    assert len(wecom.delivered) == 2


# ----- message/send -----------------------------------------------------------------------------------------------


async def test_a_malformed_body_a_wrong_agent_or_msgtype_is_refused(api, wecom, token):
    response = await api.post("/cgi-bin/message/send", params={"access_token": token}, data=b'{"touser": "lisi",')
    answer = await response.json()
    assert answer["errcode"] != 0 and "Warning: wrong json format." in answer["errmsg"]
    assert (await send(api, token, {**text("lisi", "hi"), "agentid": 1000003}))["errcode"] == 40056
    assert (await send(api, token, {**text("lisi", "hi"), "agentid": None}))["errcode"] == 41011
    assert (await send(api, token, {"touser": "lisi", "msgtype": "voice", "voice": {}}))["errcode"] == 40008
    assert (await send(api, token, text("lisi", "")))["errcode"] == 44004
    assert not wecom.delivered


async def test_unknown_users_go_to_invaliduser_and_all_unknown_is_81013(api, wecom, token):
    answer = await send(api, token, text("zhangsan|Ghost|LiSi|nobody", "hi"))
    assert answer["errcode"] == 0 and answer["invaliduser"] == "ghost|nobody" and answer["msgid"]
    assert [record["user"] for record in wecom.delivered] == ["zhangsan", "lisi"]
    assert wecom.delivered_to("lisi")[0]["content"] == "hi"

    answer = await send(api, token, text("ghost|Nobody", "hi"))
    assert answer["errcode"] == 81013 and answer["invaliduser"] == "ghost|nobody"
    assert (await send(api, token, text("@all", "all hands")))["errcode"] == 0
    assert len(wecom.delivered) == 2 + 4


async def test_long_text_is_truncated_and_long_markdown_silently_dropped(api, wecom, token):
    assert (await send(api, token, text("lisi", "中" * 1000)))["errcode"] == 0
    assert wecom.delivered[0]["content"] == "中" * 682  # 2048 bytes cut on a character boundary
    markdown = {"touser": "lisi", "msgtype": "markdown", "markdown": {"content": "x" * 2049}}
    assert (await send(api, token, markdown))["errcode"] == 0
    assert len(wecom.delivered) == 1 and wecom.dropped[0]["reason"] == "too long"


async def test_interactive_cards_get_a_response_code_and_a_task_id_is_used_once(api, wecom, token):
    first = await send(api, token, card("case-1"))
    assert first["errcode"] == 0 and first["response_code"] and first["msgid"]
    notice = await send(api, token, card("note-1", keys=(), card_type="text_notice"))
    assert notice["errcode"] == 0 and "response_code" not in notice

    again = await send(api, token, card("case-1", keys=("other",)))
    assert again["errcode"] == DUPLICATE_TASK_ID != 0
    assert (await send(api, token, card("note-1")))["errcode"] == DUPLICATE_TASK_ID
    assert [record["card"]["button_list"][0]["key"] for record in wecom.cards("case-1")] == ["agree"]
    assert wecom.response_codes[first["response_code"]]["users"] == ["lisi"]


@pytest.mark.parametrize("task_id", ["has space", "斜杠", "a/b", "a.b", "", "x" * 129])
async def test_task_ids_outside_wecoms_charset_or_length_are_refused(api, wecom, token, task_id):
    assert (await send(api, token, card(task_id)))["errcode"] == 40058
    assert not wecom.delivered


async def test_task_id_rules_that_pass(api, wecom, token):
    assert (await send(api, token, card("Case_42-a@b")))["errcode"] == 0
    assert (await send(api, token, card("x" * 128)))["errcode"] == 0
    assert (await send(api, token, card(None)))["errcode"] == 40058  # interactive cards need one
    menu = {"desc": "more", "action_list": [{"text": "mute", "key": "mute"}]}
    assert (await send(api, token, card(None, keys=(), card_type="text_notice", action_menu=menu)))["errcode"] == 40058


@pytest.mark.parametrize("change", [
    {"button_list": [{"text": str(n), "key": str(n)} for n in range(7)]},
    {"button_list": [{"text": "a", "key": "same"}, {"text": "b", "key": "same"}]},
    {"button_list": [{"text": "a"}]},
    {"button_list": [{"text": "a", "key": "k" * 1025}]},
    {"button_selection": {"question_key": "q", "option_list": []}},
    {"button_selection": {"question_key": "q", "option_list": [{"id": str(n), "text": "o"} for n in range(11)]}},
    {"card_type": "news_notice", "task_id": "n1"},
    {"card_type": "poster"},
    {"button_list": "not a list"},
])
async def test_malformed_cards_are_refused(api, wecom, token, change):
    body = card("case-9")
    body["template_card"] |= change
    assert (await send(api, token, body))["errcode"] == 40058
    assert not wecom.delivered and "case-9" not in wecom.card_state


async def test_duplicate_check_swallows_a_repeat_within_the_interval(api, wecom, token, clock):
    repeat = text("lisi", "提醒", enable_duplicate_check=1, duplicate_check_interval=600)
    assert (await send(api, token, repeat))["errcode"] == 0
    assert (await send(api, token, repeat))["errcode"] == 0
    assert len(wecom.delivered) == 1 and len(wecom.suppressed) == 1
    assert (await send(api, token, {**repeat, "touser": "zhangsan"}))["errcode"] == 0
    assert (await send(api, token, text("lisi", "提醒")))["errcode"] == 0  # no check asked for
    clock.advance(600)
    assert (await send(api, token, repeat))["errcode"] == 0
    assert len(wecom.delivered) == 4 and len(wecom.suppressed) == 1


async def test_the_31st_message_a_minute_to_one_member_is_silently_dropped(api, wecom, token, clock):
    for n in range(31):
        answer = await send(api, token, text("lisi", f"m{n}"))
        assert answer["errcode"] == 0 and answer["msgid"]
    assert len(wecom.delivered_to("lisi")) == 30
    assert [(record["user"], record["content"], record["reason"]) for record in wecom.dropped] == [
        ("lisi", "m30", "rate limit")]
    assert (await send(api, token, text("zhangsan", "other member")))["errcode"] == 0
    clock.advance(60)
    await send(api, token, text("lisi", "a minute later"))
    assert wecom.delivered_to("lisi")[-1]["content"] == "a minute later"


async def test_at_most_1000_messages_an_hour_to_one_member(api, wecom, token, clock):
    for minute in range(34):
        for n in range(30):
            await send(api, token, text("lisi", f"{minute}-{n}"))
        clock.advance(61)
        if minute == 30:
            token = (await token_of(api))["access_token"]
    assert len(wecom.delivered_to("lisi")) == 1000 and len(wecom.dropped) == 20


# ----- update_template_card -----------------------------------------------------------------------------------------


async def test_a_response_code_updates_a_card_once(api, wecom, token):
    code = (await send(api, token, card("case-1")))["response_code"]
    update = "/cgi-bin/message/update_template_card"
    both = {"userids": ["lisi"], "response_code": code, "button": {"replace_name": "x"}, "template_card": {}}
    assert (await send(api, token, both, update))["errcode"] == 40058
    assert (await send(api, token, {**both, "button": None, "template_card": None}, update))["errcode"] == 40058

    answer = await send(api, token, {"userids": ["lisi"], "response_code": code,
                                     "button": {"replace_name": "已确认无利害关系"}}, update)
    assert answer["errcode"] == 0
    assert wecom.card_state["case-1"]["replaced"] == "已确认无利害关系"
    assert wecom.card_state["case-1"]["button_list"][0]["key"] == "agree"
    assert wecom.updates[0]["task_id"] == "case-1" and wecom.updates[0]["userids"] == ["lisi"]

    again = await send(api, token, {"atall": 1, "response_code": code, "button": {"replace_name": "y"}}, update)
    assert again["errcode"] == INVALID_RESPONSE_CODE != 0
    made_up = await send(api, token, {"atall": 1, "response_code": "nope", "button": {"replace_name": "y"}}, update)
    assert made_up["errcode"] == INVALID_RESPONSE_CODE
    assert len(wecom.updates) == 1


async def test_a_response_code_lasts_72_hours(api, wecom, clock):
    token = (await token_of(api))["access_token"]
    young = (await send(api, token, card("case-1")))["response_code"]
    old = (await send(api, token, card("case-2")))["response_code"]
    clock.advance(72 * 3600 - 1)
    token = (await token_of(api))["access_token"]
    replacement = card("case-1", keys=("done",))["template_card"]
    body = {"atall": 1, "response_code": young, "template_card": replacement}
    assert (await send(api, token, body, "/cgi-bin/message/update_template_card"))["errcode"] == 0
    assert wecom.card_state["case-1"] == replacement
    clock.advance(1)
    body = {"atall": 1, "response_code": old, "button": {"replace_name": "late"}}
    assert (await send(api, token, body, "/cgi-bin/message/update_template_card"))["errcode"] == INVALID_RESPONSE_CODE


# ----- the group-robot webhook -------------------------------------------------------------------------------------


async def test_webhook_keys_limits_and_the_21st_message_a_minute(api, wecom, clock):
    async def post(body, key="group-key"):
        return await (await api.post("/cgi-bin/webhook/send", params={"key": key}, json=body)).json()

    assert (await post(text("", "hi"), key="unknown"))["errcode"] == 93000
    assert (await post(card("c1")))["errcode"] == 40058  # webhooks take no interactive cards
    assert (await post({"msgtype": "markdown", "markdown": {"content": "x" * 4097}}))["errcode"] == 0
    assert wecom.dropped[0]["reason"] == "too long" and not wecom.group_messages
    for n in range(20):
        assert (await post({"msgtype": "text", "text": {"content": f"m{n}", "mentioned_list": ["@all"]}}))[
            "errcode"] == 0
    assert (await post({"msgtype": "markdown", "markdown": {"content": "**21**"}}))["errcode"] == 45009
    assert len(wecom.group_messages) == 20 and wecom.group_messages[0]["mentioned_list"] == ["@all"]
    clock.advance(60)
    assert (await post({"msgtype": "markdown", "markdown": {"content": "**later**"}}))["errcode"] == 0


# ----- fault injection --------------------------------------------------------------------------------------------


async def test_fail_next_answers_http_errors_errcodes_and_delays(api, wecom, token):
    wecom.fail_next("message/send", status=502)
    wecom.fail_next("gettoken", times=2, errcode=-1)
    response = await api.post("/cgi-bin/message/send", params={"access_token": token}, json=text("lisi", "a"))
    assert response.status == 502
    assert (await send(api, token, text("lisi", "b")))["errcode"] == 0
    assert [(await token_of(api))["errcode"] for _ in range(3)] == [-1, -1, 0]
    wecom.fail_next("message/send", errcode=45009)
    assert (await send(api, token, text("lisi", "c")))["errcode"] == 45009
    assert [record["content"] for record in wecom.delivered] == ["b"]

    wecom.fail_next("message/send", delay=0.3)
    with pytest.raises(asyncio.TimeoutError):
        await api.post("/cgi-bin/message/send", params={"access_token": token}, json={"agentid": AGENT, **text(
            "lisi", "slow")}, timeout=aiohttp.ClientTimeout(total=0.05))
    await asyncio.sleep(0.6)
    assert [record["content"] for record in wecom.delivered] == ["b", "slow"]  # a slow server still delivers
    assert [call["body"]["text"]["content"] for call in wecom.calls if call["path"].endswith("/send")] == [
        "a", "b", "c", "slow"]


# ----- callbacks to the bot ----------------------------------------------------------------------------------------


async def test_url_verification_survives_plus_signs_in_echostr(wecom, bot):
    seen_plus = False
    for n in range(60):
        result = await wecom.verify_url(f"12884320235527761{n:02d}")
        assert (result.status, result.text) == (200, f"12884320235527761{n:02d}")
        seen_plus |= "+" in wecom.callbacks[-1]["params"]["echostr"]
    assert seen_plus
    assert (await wecom.verify_url("42", aibot=True)).text == "42"


async def test_a_text_message_is_what_wecom_sends(wecom, bot):
    result = await wecom.send_text("zhangsan", "抽取 <2025-3> ]]> a+b", msg_id=1456453720, create_time=1700000000)
    assert result == CallbackResult(200, result.text)
    message = ElementTree.fromstring(result.text)
    assert {child.tag: child.text for child in message} == {
        "ToUserName": CORP, "FromUserName": "zhangsan", "CreateTime": "1700000000", "MsgType": "text",
        "Content": "抽取 <2025-3> ]]> a+b", "MsgId": "1456453720", "AgentID": str(AGENT)}
    envelope = ElementTree.fromstring(wecom.callbacks[-1]["body"])
    assert [child.tag for child in envelope] == ["ToUserName", "Encrypt", "AgentID"]


async def test_a_click_carries_a_fresh_response_code_and_opens_the_passive_reply(api, wecom, bot, token):
    await send(api, token, card("case-1", button_selection={
        "question_key": "result", "option_list": [{"id": "ok", "text": "正常"}, {"id": "bad", "text": "异常"}]}))
    bot["reply"] = "good"
    result = await wecom.click("lisi", "case-1", "agree", selections={"result": ["ok"]})
    assert result.status == 200 and result.response_code
    assert ElementTree.fromstring(result.reply).findtext("MsgType") == "update_button"
    event = ElementTree.fromstring(bot["received"][-1])
    assert (event.findtext("Event"), event.findtext("EventKey"), event.findtext("TaskId")) == (
        "template_card_event", "agree", "case-1")
    assert event.findtext("CardType") == "button_interaction" and event.findtext("FromUserName") == "lisi"
    assert event.findtext("ResponseCode") == result.response_code
    assert [item.findtext("QuestionKey") for item in event.iter("SelectedItem")] == ["result"]
    assert [option.text for option in event.iter("OptionId")] == ["ok"]

    with pytest.raises(LookupError):
        await wecom.click("zhangsan", "case-1", "agree")
    with pytest.raises(ValueError):
        await wecom.click("lisi", "case-1", "no-such-key")
    update = {"userids": ["lisi"], "response_code": result.response_code, "button": {"replace_name": "已提交"}}
    assert (await send(api, token, update, "/cgi-bin/message/update_template_card"))["errcode"] == 0
    assert (await send(api, token, update, "/cgi-bin/message/update_template_card"))["errcode"] != 0
    with pytest.raises(ValueError):
        await wecom.click("lisi", "case-1", "recuse")  # greyed out now

    await send(api, token, card("case-2"))
    bot["reply"] = "bad"
    with pytest.raises(InvalidReply):
        await wecom.click("lisi", "case-2", "agree")


async def test_an_aibot_mention_carries_a_response_url_good_once_for_an_hour(api, wecom, bot, clock):
    result = await wecom.aibot_text("zhangsan", "CHAT1", "@双随 抽取 2025-3", msgid="m1")
    message = json.loads(result.text)
    assert message["msgid"] == "m1" and message["chatid"] == "CHAT1" and message["chattype"] == "group"
    assert message["from"] == {"userid": "zhangsan"} and message["text"] == {"content": "@双随 抽取 2025-3"}
    assert message["response_url"].startswith(wecom.base_url + "/cgi-bin/aibot/response?response_code=")
    path = message["response_url"].removeprefix(wecom.base_url)

    answer = await (await api.post(path, json={"msgtype": "markdown", "markdown": {"content": "**已抽取**"}})).json()
    assert answer["errcode"] == 0
    assert wecom.aibot_replies[0] | {"at": None} == {
        "response_code": result.response_code, "chatid": "CHAT1", "user": "zhangsan", "chattype": "group",
        "msgtype": "markdown", "content": "**已抽取**", "card": None, "at": None}
    assert (await (await api.post(path, json={"msgtype": "text", "text": {"content": "x"}})).json())["errcode"] != 0

    single = await wecom.aibot_text("lisi", None, "帮助", chattype="single")
    assert "chatid" not in json.loads(single.text)
    clock.advance(3600)
    late = json.loads(single.text)["response_url"].removeprefix(wecom.base_url)
    assert (await (await api.post(late, json={"msgtype": "text", "text": {"content": "x"}})).json())["errcode"] != 0

    bot["reply"] = "good"
    assert "update_button" in (await wecom.aibot_text("lisi", "CHAT1", "@双随 帮助")).reply
    bot["reply"] = "bad"
    with pytest.raises(InvalidReply):
        await wecom.aibot_text("lisi", "CHAT1", "@双随 帮助")


async def test_a_slow_bot_gets_the_same_delivery_three_times_when_retries_are_on(wecom, bot):
    wecom.callback_timeout = 0.25
    bot["delays"] = [1, 1]
    result = await wecom.send_text("lisi", "hi", retries=True)
    assert (result.status, result.attempts) == (200, 3)
    assert len({(c["body"], tuple(c["params"].items())) for c in wecom.callbacks}) == 1

    bot["delays"] = [1]
    result = await wecom.send_text("lisi", "hi")
    assert (result.status, result.attempts, result.reply) == (None, 1, None)


async def test_a_built_delivery_can_be_replayed_and_tampered_with(wecom, bot):
    params, body = wecom.build_app_message("<xml><FromUserName>lisi</FromUserName><MsgId>7</MsgId></xml>")
    results = await asyncio.gather(*(wecom.post_raw(wecom.app_callback_path, params=params, body=body)
                                     for _ in range(3)))
    assert {(result.status, result.text) for result in results} == {
        (200, "<xml><FromUserName>lisi</FromUserName><MsgId>7</MsgId></xml>")}
    tampered = await wecom.post_raw(wecom.app_callback_path, params={**params, "nonce": "other"}, body=body)
    assert tampered.status == 403

    params, body = wecom.build_aibot_message({"msgid": "m9", "msgtype": "event"})
    assert json.loads((await wecom.post_raw(wecom.aibot_callback_path, params=params, body=body)).text) == {
        "msgid": "m9", "msgtype": "event"}
