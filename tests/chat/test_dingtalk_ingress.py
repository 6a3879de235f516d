"""The DingTalk HTTP endpoints refuse what is not a genuine delivery, with a clean 4xx
and nothing stored: a bad or missing sign, a stale timestamp, a forged card token, a
malformed or oversized body; the event-subscription URL check is answered with an
encrypted ``success`` that an independent implementation (wechatpy) opens."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.app import card_keys, create_app
from bot.dingtalk.cards import card_params
from bot.dingtalk.sign import robot_sign
from bot.outbound import Button, Card
from storage.models import InboundDelivery
from tests.support.dingtalk_bot import EVENT_KEY, EVENT_TOKEN, SECRET, edge_settings, sealed_event


@pytest.fixture
async def client(aiohttp_client, engine):
    config = edge_settings()
    app = create_app(config, engine, workers=False)
    client = await aiohttp_client(app)
    client.config = config
    return client


def stored(engine) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(InboundDelivery)).scalar_one()


def robot_message(msg_id="m1", user="staff01", text="帮助") -> bytes:
    return json.dumps({"conversationId": "cidP", "conversationType": "1", "msgId": msg_id,
                       "createAt": int(time.time() * 1000), "senderStaffId": user, "senderId": "$:LWCP_v1:$x",
                       "msgtype": "text", "text": {"content": text}}, ensure_ascii=False).encode()


def signed(timestamp: int | None = None, secret: str = SECRET) -> dict:
    ts = str(int(time.time() * 1000) if timestamp is None else timestamp)
    return {"timestamp": ts, "sign": robot_sign(ts, secret), "Content-Type": "application/json"}


async def test_a_signed_message_is_taken_once(client, engine):
    for _ in range(3):  # a resend of the same msgId is acknowledged and stored once
        response = await client.post("/dingtalk/callback", data=robot_message(), headers=signed())
        assert response.status == 200
    assert stored(engine) == 1


async def test_a_leaked_timestamp_and_sign_carry_no_other_message(client, engine):
    """The sign covers the timestamp only: a pair seen once (leaked from a log, a proxy)
    is refused with another msgId or body — another staff id, another command — while
    DingTalk's own retry of the same msgId is acknowledged and stored once."""
    headers = signed()
    response = await client.post("/dingtalk/callback", data=robot_message("m1", "staff01", "帮助"), headers=headers)
    assert response.status == 200
    for body in (robot_message("m2", "admin1", "抽取 批次=1"), robot_message("m2", "staff01", "帮助")):
        response = await client.post("/dingtalk/callback", data=body, headers=headers)
        assert response.status == 403
    response = await client.post("/dingtalk/callback", data=robot_message("m1", "staff01", "帮助"), headers=headers)
    assert response.status == 200  # a retry: acknowledged, not stored again
    assert stored(engine) == 1
    with Session(engine) as session:
        (event,) = session.exec(select(InboundDelivery.event)).scalars()
    assert event["sender"] == "staff01"


async def test_the_replay_is_refused_by_every_instance(aiohttp_client, engine):
    """The pairs seen are in the database: a second instance refuses what the first took."""
    first = await aiohttp_client(create_app(edge_settings(), engine, workers=False))
    second = await aiohttp_client(create_app(edge_settings(), engine, workers=False))
    headers = signed()
    assert (await first.post("/dingtalk/callback", data=robot_message("m1"), headers=headers)).status == 200
    assert (await second.post("/dingtalk/callback", data=robot_message("m9", "admin1"), headers=headers)).status == 403
    assert (await second.post("/dingtalk/callback", data=robot_message("m1"), headers=headers)).status == 200


async def test_pairs_past_the_window_are_forgotten(client, engine):
    """A timestamp ten minutes old is stale now (the window was an hour); the pairs kept
    are purged once past the window."""
    from storage.models import SeenSignature

    old = int(time.time() * 1000) - 10 * 60 * 1000
    response = await client.post("/dingtalk/callback", data=robot_message("m1"), headers=signed(old))
    assert response.status == 403
    with Session(engine) as session:
        session.add(SeenSignature(sent_ms=old, sign="x", msg_id="m0"))
        session.commit()
    assert (await client.post("/dingtalk/callback", data=robot_message("m2"), headers=signed())).status == 200
    with Session(engine) as session:
        assert [row.msg_id for row in session.exec(select(SeenSignature)).scalars()] == ["m2"]


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 403),
    ({"timestamp": "1690362102194", "sign": "ZbWotKGCR+Iwl2egJ17Im1ZnBL+RUrRcoqpNBTp+NQs="}, 403),  # stale
    ("future", 403),
    ("wrong-secret", 401),
    ("no-sign", 401),
])
async def test_bad_headers_are_refused(client, engine, headers, status):
    if headers == "future":
        headers = signed(int(time.time() * 1000) + 3_700_000)
    elif headers == "wrong-secret":
        headers = signed(secret="SECsomethingelse")
    elif headers == "no-sign":
        headers = {k: v for k, v in signed().items() if k != "sign"}
    response = await client.post("/dingtalk/callback", data=robot_message(), headers=headers)
    assert response.status == status
    assert stored(engine) == 0


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"msgtype":"text"}',
    b'{"msgId": "m\\ud800", "senderStaffId": "u", "msgtype": "text", "text": {"content": "x"}}',  # lone surrogate
    json.dumps({"msgId": "m", "senderStaffId": "u", "msgtype": "text"}).encode(),
])
async def test_malformed_messages_are_refused(client, engine, body):
    response = await client.post("/dingtalk/callback", data=body, headers=signed())
    assert response.status == 400
    assert stored(engine) == 0


async def test_oversized_body_is_refused_unread(client, engine):
    response = await client.post("/dingtalk/callback", data=robot_message(text="检" * 40_000), headers=signed())
    assert response.status == 413
    assert stored(engine) == 0


def click(config, user="staff01", clicker=None, **changes) -> bytes:
    card = Card("ss-t12-a3", "检查任务", buttons=[Button("confirm", "无利害关系", "12")])
    params = json.loads(card_params(card, user=user, key=card_keys(config)[0], link="")["buttons"])[0]["params"]
    params |= changes
    return json.dumps({"outTrackId": "ss-t12-a3", "userId": clicker or user, "userIdType": 1,
                       "type": "actionCallback", "spaceType": "IM_ROBOT", "spaceId": user,
                       "content": json.dumps({"cardPrivateData": {"actionIds": ["b0"], "params": params}}),
                       "extension": "{}"}).encode()


async def test_card_clicks_need_our_token_for_that_user(client, engine):
    config = client.config
    assert (await client.post("/dingtalk/card", data=click(config))).status == 200
    assert (await client.post("/dingtalk/card", data=click(config))).status == 200  # DingTalk retried
    assert stored(engine) == 1
    for forged in (click(config, clicker="staff02"), click(config, value="13"), click(config, action="approve"),
                   click(config, token="A" * 32)):
        assert (await client.post("/dingtalk/card", data=forged)).status == 403
    for malformed in (b"{}", b"nope", json.dumps({"outTrackId": "x", "userId": "u", "content": "{"}).encode()):
        assert (await client.post("/dingtalk/card", data=malformed)).status == 400
    assert stored(engine) == 1


async def test_event_subscription_check_url_is_answered_with_encrypted_success(client):
    params, body = sealed_event({"EventType": "check_url"})
    response = await client.post("/dingtalk/events", params=params, data=body)
    assert response.status == 200
    reply = await response.json()
    crypto = WeChatCrypto(EVENT_TOKEN, EVENT_KEY, "dingfakeappkey")
    plain = crypto.decrypt_message({"Encrypt": reply["encrypt"]}, reply["msg_signature"], reply["timeStamp"],
                                   reply["nonce"])
    assert plain == "success"
    assert abs(int(reply["timeStamp"]) - time.time() * 1000) < 60_000  # milliseconds, as DingTalk sends them


async def test_event_subscription_refusals(client):
    params, body = sealed_event({"EventType": "check_url"})
    assert (await client.post("/dingtalk/events", params={**params, "msg_signature": "0" * 40},
                              data=body)).status == 401
    stale_params, stale_body = sealed_event({"EventType": "check_url"}, timestamp=1608001896814)
    assert (await client.post("/dingtalk/events", params=stale_params, data=stale_body)).status == 403
    assert (await client.post("/dingtalk/events", params={"nonce": "x"}, data=body)).status == 400
    assert (await client.post("/dingtalk/events", params=params, data=b"{}")).status == 400
    other_params, other_body = sealed_event({"EventType": "check_url"}, token="someoneelse")
    assert (await client.post("/dingtalk/events", params=other_params, data=other_body)).status == 401


async def test_stream_mode_serves_no_http_message_routes(aiohttp_client, engine):
    app = create_app(edge_settings(mode="stream"), engine, workers=False)
    client = await aiohttp_client(app)
    assert (await client.post("/dingtalk/callback", data=robot_message(), headers=signed())).status in (404, 405)
    assert (await client.post("/dingtalk/card", data=b"{}")).status in (404, 405)
