"""DingTalk edge, without a server: the robot signature vectors (PROTOCOLS.md C.1, C.2),
parsing robot messages and card clicks into neutral events, and the card action token."""

from __future__ import annotations

import json

import pytest

from bot.dingtalk.cards import ForgedAction, action_keys, card_params, update_params
from bot.dingtalk.parse import MalformedDelivery, card_event, robot_event
from bot.dingtalk.sign import ROBOT_WINDOW_MS, BadSignature, StaleTimestamp, check_robot_headers, robot_sign
from bot.outbound import REPLY, USER, Button, Card, CardUpdate, Choice

OAPI = "https://oapi.dingtalk.com"
KEYS = action_keys(["first-secret", "older-secret"])


@pytest.mark.parametrize(("timestamp", "secret", "sign"), [
    ("1582163555000", "SECb90923e19e58b466481e9e7b7a5b4f108a4531abde590ad3967fb29f0eae5c68",
     "BQKsG+QOCl+bYJOLc6pxDHxjVquzlZPWgvRzeN2J5zY="),  # D-S1
    ("1577262236757", "this is secret", "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="),  # D-S2
    ("1690362102194", "testAppSecret123", "ZbWotKGCR+Iwl2egJ17Im1ZnBL+RUrRcoqpNBTp+NQs="),  # D-S2, robot callback
])
def test_robot_sign_vectors(timestamp, secret, sign):
    assert robot_sign(timestamp, secret) == sign
    check_robot_headers(timestamp, sign, secret, now_ms=int(timestamp) + ROBOT_WINDOW_MS - 1000)


def test_robot_headers_refused():
    ts, secret = "1690362102194", "testAppSecret123"
    good = robot_sign(ts, secret)
    with pytest.raises(StaleTimestamp):
        check_robot_headers(ts, good, secret, now_ms=int(ts) + ROBOT_WINDOW_MS + 1)
    with pytest.raises(StaleTimestamp):
        check_robot_headers(ts, good, secret, now_ms=int(ts) - ROBOT_WINDOW_MS - 1)
    for timestamp in ("", "abc", "１６９０"):
        with pytest.raises(StaleTimestamp):
            check_robot_headers(timestamp, good, secret, now_ms=int(ts))
    for sign in ("", good[:-2] + "x=", robot_sign(ts, "other"), "签名"):
        with pytest.raises(BadSignature):
            check_robot_headers(ts, sign, secret, now_ms=int(ts))


def message(**overrides) -> dict:
    body = {"conversationId": "cidGROUP1==", "conversationType": "2", "conversationTitle": "抽查工作群",
            "chatbotCorpId": "dingcorp", "chatbotUserId": "$:LWCP_v1:$bot", "robotCode": "dingapp",
            "msgId": "msgA1", "createAt": 1_790_000_000_000, "senderId": "$:LWCP_v1:$abc", "senderNick": "张三",
            "senderStaffId": "staff01", "senderCorpId": "dingcorp", "isAdmin": False, "isInAtList": True,
            "sessionWebhook": f"{OAPI}/robot/sendBySession?session=s1",
            "sessionWebhookExpiredTime": 1_790_005_400_000, "msgtype": "text",
            "text": {"content": " 新建抽查 名称=食品"}}
    return {k: v for k, v in (body | overrides).items() if v is not None}


def test_group_message_trimmed_and_answered_in_the_group():
    event = robot_event(message(), OAPI)
    assert (event.platform, event.delivery_key, event.sender, event.chat) == ("dingtalk", "msg:msgA1", "staff01",
                                                                            "group")
    assert event.text == "新建抽查 名称=食品" and event.chat_id == "cidGROUP1=="
    assert event.reply_to.kind == REPLY and event.reply_to.address == "cidGROUP1=="
    assert event.reply_to.via == f"1790005400000|{OAPI}/robot/sendBySession?session=s1"


def test_private_message_answered_to_the_person():
    event = robot_event(message(conversationType="1", conversationTitle=None, text={"content": "进度"}), OAPI)
    assert (event.chat, event.text, event.chat_id) == ("private", "进度", "")
    assert (event.reply_to.kind, event.reply_to.address) == (USER, "staff01")


def test_a_session_webhook_elsewhere_is_never_used():
    event = robot_event(message(sessionWebhook="https://attacker.example/robot/sendBySession?session=x"), OAPI)
    assert event.reply_to.via == ""
    event = robot_event(message(sessionWebhookExpiredTime="soon"), OAPI)
    assert event.reply_to.via == ""


def test_media_messages_are_evidence():
    event = robot_event(message(conversationType="1", msgtype="picture", text=None,
                                content={"downloadCode": "dc1", "pictureDownloadCode": "pdc"}), OAPI)
    assert (event.media.kind, event.media.media_id, event.text) == ("image", "dc1", None)
    event = robot_event(message(conversationType="1", msgtype="file", text=None,
                                content={"downloadCode": "dc2", "fileName": "笔录.pdf"}), OAPI)
    assert (event.media.kind, event.media.file_name) == ("file", "笔录.pdf")


def test_messages_the_bot_ignores_or_refuses():
    assert robot_event(message(msgtype="audio", text=None, content={"downloadCode": "x"}), OAPI) is None
    assert robot_event(message(senderStaffId=None), OAPI) is None  # someone outside the organisation
    for bad in (message(msgId=None), message(text={"content": 5}), message(text=None),
                message(msgtype="picture", text=None, content={}), message(conversationId=None)):
        with pytest.raises(MalformedDelivery):
            robot_event(bad, OAPI)


CARD = Card("ss-t12-a3", "检查任务", "请确认", [("对象", "某超市")],
            [Button("confirm", "无利害关系", "12"), Button("recuse", "申请回避", "12", "danger")])


def click(params: dict, user="staff01", card_id="ss-t12-a3") -> dict:
    return {"outTrackId": card_id, "corpId": "dingcorp", "userId": user, "userIdType": 1, "type": "actionCallback",
            "spaceType": "IM_ROBOT", "spaceId": user,
            "content": json.dumps({"cardPrivateData": {"actionIds": ["b0"], "params": params}}),
            "value": json.dumps(params), "extension": "{}"}


def button_params(params_map: dict, n: int) -> dict:
    return json.loads(params_map["buttons"])[n]["params"]


def test_card_params_are_strings_and_clicks_come_back():
    params = card_params(CARD, user="staff01", key=KEYS[0], link="https://x/public/")
    assert all(isinstance(v, str) for v in params.values())
    assert json.loads(params["fields"]) == [{"label": "对象", "value": "某超市"}]
    assert params["closed"] == "" and params["choice"] == ""
    event = card_event(click(button_params(params, 1)), KEYS)
    assert (event.sender, event.chat, event.action.action, event.action.value) == ("staff01", "private", "recuse",
                                                                                   "12")
    assert event.action.card_id == "ss-t12-a3" and event.reply_to.address == "staff01"
    assert event.delivery_key == card_event(click(button_params(params, 1)), KEYS).delivery_key  # a retry


def test_choice_comes_back_as_choices():
    card = Card("ss-res12-1", "结果", choice=Choice("category", "类别", [("1", "未发现问题"), ("2", "未按规定公示")]),
                submit=Button("result", "提交", "12"))
    params = card_params(card, user="staff01", key=KEYS[0], link="")
    assert json.loads(params["choice"])["key"] == "category"
    event = card_event(click({**button_params(params, 0), "category": "2"}, card_id="ss-res12-1"), KEYS)
    assert (event.action.action, event.action.choices) == ("result", {"category": ["2"]})


def test_forged_clicks_are_refused():
    params = button_params(card_params(CARD, user="staff01", key=KEYS[0], link=""), 0)
    for forged in (click(params, user="staff02"),  # someone else's card
                   click({**params, "value": "13"}),  # another task
                   click({**params, "action": "recuse"}),  # another button
                   click(params, card_id="ss-t13-a3"),  # another card
                   click({k: v for k, v in params.items() if k != "token"})):
        with pytest.raises(ForgedAction):
            card_event(forged, KEYS)
    older = button_params(card_params(CARD, user="staff01", key=KEYS[1], link=""), 0)
    assert card_event(click(older), KEYS).action.action == "confirm"  # a key rotated out of first place
    assert action_keys(["another deployment"])[0] not in KEYS
    with pytest.raises(ForgedAction):
        card_event(click(params), action_keys(["another deployment"]))
    for bad in ({**click(params), "content": "not json"}, {**click(params), "userId": ""},
                {**click(params), "content": json.dumps({"cardPrivateData": {}})}):
        with pytest.raises(MalformedDelivery):
            card_event(bad, KEYS)


def test_update_greys_out_or_replaces():
    assert update_params(CardUpdate("ss-t12-a3", "已确认"), user="u", key=KEYS[0], link="") == {"closed": "已确认"}
    replaced = update_params(CardUpdate("ss-t12-a3", "已回避", card=CARD), user="u", key=KEYS[0], link="")
    assert replaced["closed"] == "已回避" and replaced["title"] == "检查任务"
