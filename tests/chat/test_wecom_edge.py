"""The WeCom edge in pieces: parsing deliveries into neutral events, rendering cards,
and refusing what is not a genuine delivery."""

from __future__ import annotations

import base64
import os
import time

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.callback_crypto import MsgCrypt
from bot.chat.router import strip_mentions
from bot.outbound import REPLY, USER, Button, Card, CardUpdate, Choice
from bot.wecom.cards import template_card, update_body, valid_card_id
from bot.wecom.parse import MalformedDelivery, aibot_event, app_event
from tests.support.fakes.wecom import APP_AES_KEY

API = "https://qyapi.weixin.qq.com"


def test_text_message_becomes_a_private_event():
    event = app_event(b"<xml><ToUserName>c</ToUserName><FromUserName>zhangsan</FromUserName><CreateTime>1700000000"
                      b"</CreateTime><MsgType>text</MsgType><Content><![CDATA[ \xe5\xb8\xae\xe5\x8a\xa9 ]]></Content>"
                      b"<MsgId>42</MsgId><AgentID>1</AgentID></xml>")
    assert (event.delivery_key, event.sender, event.chat, event.text) == ("app:msg:42", "zhangsan", "private", "帮助")
    assert (event.reply_to.kind, event.reply_to.address) == (USER, "zhangsan")


def test_card_click_with_a_selection():
    event = app_event(
        b"<xml><ToUserName>c</ToUserName><FromUserName>lisi</FromUserName><CreateTime>1700000001</CreateTime>"
        b"<MsgType>event</MsgType><Event>template_card_event</Event><EventKey>result:12</EventKey>"
        b"<TaskId>ss-t12-a3</TaskId><CardType>button_interaction</CardType><ResponseCode>RC1</ResponseCode>"
        b"<AgentID>1</AgentID><SelectedItems><SelectedItem><QuestionKey>category</QuestionKey>"
        b"<OptionIds><OptionId>5</OptionId></OptionIds></SelectedItem></SelectedItems></xml>")
    action = event.action
    assert (action.card_id, action.action, action.value, action.update_token) == ("ss-t12-a3", "result", "12", "RC1")
    assert action.choices == {"category": ["5"]}
    assert event.delivery_key == "app:card:lisi:1700000001:ss-t12-a3:result:12"


def test_deliveries_the_bot_ignores_and_ones_it_refuses():
    assert app_event(b"<xml><FromUserName>u</FromUserName><MsgType>event</MsgType><Event>enter_agent</Event></xml>") \
        is None
    assert app_event(b"<xml><FromUserName>u</FromUserName><MsgType>location</MsgType><MsgId>1</MsgId></xml>") is None
    photo = app_event(b"<xml><FromUserName>u</FromUserName><MsgType>image</MsgType><MsgId>9</MsgId>"
                      b"<MediaId>M1</MediaId><PicUrl>http://x</PicUrl></xml>")
    assert (photo.media.kind, photo.media.media_id, photo.delivery_key) == ("image", "M1", "app:msg:9")
    for bad in (b"<xml><MsgType>text</MsgType></xml>", b"not xml", b"<xml><FromUserName>u</FromUserName>"
                b"<MsgType>text</MsgType></xml>",
                b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>'):
        with pytest.raises(MalformedDelivery):
            app_event(bad)


def test_ai_bot_mention_and_response_url():
    body = (b'{"msgid":"m1","aibotid":"b","chatid":"C1","chattype":"group","from":{"userid":"zhangsan"},'
            b'"response_url":"' + API.encode() + b'/cgi-bin/aibot/response?response_code=X",'
            b'"msgtype":"text","text":{"content":"@\xe5\x8f\x8c\xe9\x9a\x8f  \xe5\xb8\xae\xe5\x8a\xa9"}}')
    event = aibot_event(body, API)
    assert (event.chat, event.chat_id, event.text, event.delivery_key) == ("group", "C1", "帮助", "aibot:m1")
    assert event.reply_to.kind == REPLY
    elsewhere = aibot_event(body.replace(API.encode(), b"https://evil.example"), API)
    assert (elsewhere.reply_to.kind, elsewhere.reply_to.address) == (USER, "zhangsan")  # never POST to a stranger
    with pytest.raises(MalformedDelivery):
        aibot_event(b'{"msgtype":"text","text":{"content":"x"}}', API)
    assert strip_mentions("@双随 @张三 抽取 批次=1") == "抽取 批次=1"


def test_cards_follow_wecom_rules():
    card = Card("ss-t1-a1", "检查任务：某公司", "正文", [(f"字段{i}", f"值{i}") for i in range(8)],
                [Button("confirm", "无利害关系", "1"), Button("recuse", "申请回避", "1", "danger")],
                Choice("category", "结果类别", [("1", "未发现问题"), ("2", "未按规定公示")]))
    body = template_card(card, source="某局", link="http://x/public/")
    assert body["card_type"] == "button_interaction" and body["task_id"] == "ss-t1-a1"
    assert len(body["horizontal_content_list"]) == 6 and "字段7：值7" in body["sub_title_text"]
    assert [b["key"] for b in body["button_list"]] == ["confirm:1", "recuse:1"]
    assert body["button_selection"]["option_list"][1] == {"id": "2", "text": "未按规定公示"}
    notice = template_card(Card("ss-n1", "通知"), source="某局", link="http://x/public/")
    assert notice["card_type"] == "text_notice" and notice["card_action"]["url"] == "http://x/public/"
    assert not valid_card_id("任务-1") and not valid_card_id("x" * 129) and valid_card_id("a-b_c@1")
    with pytest.raises(ValueError):
        template_card(Card("bad id", "t"), source="s", link="l")
    grey = update_body(CardUpdate("ss-t1-a1", "已确认", "RC"), agent_id=7, user="u", source="s", link="l")
    assert grey == {"userids": ["u"], "agentid": 7, "response_code": "RC", "button": {"replace_name": "已确认"}}


# --- refusals through the HTTP edge (nothing stored: see test_wecom_scenario) -------------


def _encrypt_raw(plain: bytes, key: str) -> str:
    aes = base64.b64decode(key + "=")
    encryptor = Cipher(algorithms.AES(aes), modes.CBC(aes[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


@pytest.fixture
def deliver(bot, wecom):
    async def post(encrypted: str, *, path=None, body=None):
        timestamp, nonce = str(int(time.time())), "12345"
        crypt = MsgCrypt("faketoken123", APP_AES_KEY, wecom.corp_id)
        params = {"msg_signature": crypt.signature(timestamp, nonce, encrypted), "timestamp": timestamp,
                  "nonce": nonce}
        body = body or f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()
        return await wecom.post_raw(path or wecom.app_callback_path, params=params, body=body)
    return post


def nothing_stored(engine) -> bool:
    from sqlalchemy import func, select
    from sqlmodel import Session

    from storage.models import InboundDelivery, OutboxMessage

    with Session(engine) as session:
        return all(session.execute(select(func.count()).select_from(m)).scalar_one() == 0
                   for m in (InboundDelivery, OutboxMessage))


async def test_wrong_receiveid_is_refused(deliver, engine):
    other = MsgCrypt("faketoken123", APP_AES_KEY, "wwsomeoneelse")
    result = await deliver(other.encrypt(b"<xml><MsgType>text</MsgType></xml>"))
    assert result.status == 400 and "-40005" in result.text
    assert nothing_stored(engine)


@pytest.mark.parametrize("pad", [0, 33, "mixed"])
async def test_bad_padding_is_refused(deliver, engine, pad):
    message = b"<xml/>"
    plain = os.urandom(16) + len(message).to_bytes(4, "big") + message + b"wwfakecorp"
    fill = 64 - len(plain)
    if pad == "mixed":
        padding = bytes([fill - 1]) * (fill - 1) + bytes([fill])
    else:
        padding = bytes([7]) * (fill - 1) + bytes([pad])
    result = await deliver(_encrypt_raw(plain + padding, APP_AES_KEY))
    assert result.status == 400 and "-40008" in result.text
    assert nothing_stored(engine)


async def test_malformed_ai_bot_json_is_refused(bot, wecom, engine):
    params, _ = wecom.build_aibot_message({"msgtype": "text"})
    for body in (b"{not json", b'{"encrypt": 5}', b"[]", b"\xff\xfe"):
        result = await wecom.post_raw(wecom.aibot_callback_path, params=params, body=body)
        assert result.status in (400, 401)
    # a genuine delivery whose decrypted JSON is not a message the bot understands
    result = await wecom.deliver_aibot_json('{"msgid": 1, "msgtype": "text"')
    assert result.status == 400
    assert nothing_stored(engine)


async def test_echostr_with_a_bad_signature_is_refused(bot, wecom):
    result = await wecom.post_raw(wecom.app_callback_path, params={"msg_signature": "x", "timestamp": "1",
                                                                   "nonce": "n"}, body=b"")
    assert result.status in (400, 403)
