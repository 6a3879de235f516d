"""The bot on the fake DingTalk, beyond the shared workflow (tests/scenarios/test_workflow.py):
answers through the sessionWebhook and through the OpenAPI after it expires, the shared
token refreshed on a 401, cards made once at the platform, flow control and failures
that delay but never lose, Stream reconnection after ``disconnect``, forged clicks over
Stream, the event-subscription URL check, and WeCom and DingTalk at once."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlmodel import Session

from bot.app import card_keys, create_app
from bot.chat.dispatcher import Retry, Sent
from bot.dingtalk.api import DingTalkAPI
from bot.dingtalk.sender import DingTalkSender
from bot.outbound import GROUP as GROUP_KIND
from bot.outbound import REPLY, USER, Button, Card, CardUpdate, Destination, Text
from storage.models import InboundDelivery, OutboxMessage
from tests.support.dingtalk_bot import GROUP, DingTalkWalk, dingtalk_settings
from tests.support.wecom_bot import ADMIN, INSPECTOR_IDS, Walk, wecom_settings


@pytest.fixture
async def sender(dingtalk, engine):
    settings = dingtalk_settings(dingtalk, "http://127.0.0.1:1")
    async with aiohttp.ClientSession() as http:
        yield DingTalkSender(settings, DingTalkAPI(settings.dingtalk, engine, "test-owner", http),
                             card_keys(settings)[0])


def via(dingtalk, user: str, *, expires_in_ms: int = 5_400_000) -> str:
    """A sessionWebhook like the one DingTalk gives with a message from ``user``."""
    body = json.loads(dingtalk.build_robot_message(user, "帮助")[1])
    return f"{int(time.time() * 1000) + expires_in_ms}|{body['sessionWebhook']}"


CARD = Card("ss-t7-a9", "检查任务", "请确认", [("对象", "某超市")], [Button("confirm", "无利害关系", "7")])


async def test_answers_use_the_session_webhook_while_it_is_valid(sender, dingtalk):
    outcome = await sender.send(Destination("dingtalk", USER, "insp01", via(dingtalk, "insp01")), Text("已收到"),
                                in_doubt=False)
    assert isinstance(outcome, Sent) and dingtalk.session_replies[-1]["content"] == "已收到"
    assert not dingtalk.delivered


async def test_after_the_session_expires_answers_go_through_the_openapi(sender, dingtalk):
    soon = via(dingtalk, "insp01", expires_in_ms=30_000)  # inside the safety margin: not used
    assert isinstance(await sender.send(Destination("dingtalk", USER, "insp01", soon), Text("甲"), in_doubt=False),
                      Sent)
    gone = via(dingtalk, "insp01")
    dingtalk.expire_sessions()  # DingTalk ended it early: errcode, so the OpenAPI is used instead
    assert isinstance(await sender.send(Destination("dingtalk", USER, "insp01", gone), Text("乙"), in_doubt=False),
                      Sent)
    assert [r["content"] for r in dingtalk.delivered_to("insp01")] == ["甲", "乙"]
    assert not dingtalk.session_replies
    group = await sender.send(Destination("dingtalk", REPLY, GROUP, soon), Text("丙"), in_doubt=False)
    assert isinstance(group, Sent) and dingtalk.group_messages[-1]["content"] == "丙"


async def test_group_pushes_go_to_the_configured_group(sender, dingtalk):
    assert isinstance(await sender.send(Destination("dingtalk", GROUP_KIND, "default"), Text("公告"), in_doubt=False),
                      Sent)
    assert dingtalk.group_messages[-1]["conversation"] == GROUP


async def test_a_refused_token_is_replaced_once(sender, dingtalk):
    await sender.send(Destination("dingtalk", USER, "insp01"), Text("一"), in_doubt=False)
    dingtalk.expire_tokens()
    assert isinstance(await sender.send(Destination("dingtalk", USER, "insp01"), Text("二"), in_doubt=False), Sent)
    assert dingtalk.token_calls == 2
    assert [r["content"] for r in dingtalk.delivered_to("insp01")] == ["一", "二"]


async def test_unknown_users_fail_for_good_and_server_errors_are_retried(sender, dingtalk):
    outcome = await sender.send(Destination("dingtalk", USER, "nobody"), Text("x"), in_doubt=False)
    assert not isinstance(outcome, Sent | Retry) and "invalid user" in outcome.error
    dingtalk.fail_next("oToMessages/batchSend", status=502)
    outcome = await sender.send(Destination("dingtalk", USER, "insp01"), Text("x"), in_doubt=False)
    assert isinstance(outcome, Retry) and outcome.in_doubt
    dingtalk.fail_next("oToMessages/batchSend", status=403, code="Forbidden.AccessDenied.QpsLimitForApi")
    outcome = await sender.send(Destination("dingtalk", USER, "insp01"), Text("x"), in_doubt=False)
    assert isinstance(outcome, Retry) and outcome.after == 60
    assert not dingtalk.delivered_to("insp01")


async def test_a_card_is_made_once_at_the_platform(sender, dingtalk):
    destination = Destination("dingtalk", USER, "insp01")
    # DingTalk is slow: the bot gives up waiting, DingTalk creates and delivers the card anyway
    dingtalk.fail_next("card/instances/createAndDeliver", delay=12)
    outcome = await sender.send(destination, CARD, in_doubt=False)
    assert isinstance(outcome, Retry) and outcome.in_doubt
    outcome = await sender.send(destination, CARD, in_doubt=True)  # the resend, in doubt
    assert isinstance(outcome, Sent) and outcome.response["update_token"] == CARD.card_id
    assert len([r for r in dingtalk.delivered_to("insp01") if r["api"] == "card"]) == 1
    view = dingtalk.card_view(CARD.card_id, "insp01")
    assert view["title"] == "检查任务" and view["buttons"][0]["text"] == "无利害关系"


async def test_a_flow_controlled_card_is_delivered_later(sender, dingtalk):
    dingtalk.flow_limit_per_minute = 0
    outcome = await sender.send(Destination("dingtalk", USER, "insp01"), CARD, in_doubt=False)
    assert isinstance(outcome, Retry) and not outcome.in_doubt
    dingtalk.flow_limit_per_minute = 20
    assert isinstance(await sender.send(Destination("dingtalk", USER, "insp01"), CARD, in_doubt=False), Sent)
    assert len([r for r in dingtalk.delivered_to("insp01") if r["api"] == "card"]) == 1


async def test_card_updates_close_the_card(sender, dingtalk):
    await sender.send(Destination("dingtalk", USER, "insp01"), CARD, in_doubt=False)
    update_ = CardUpdate(CARD.card_id, "已确认：无利害关系")
    assert isinstance(await sender.send(Destination("dingtalk", "card", "insp01"), update_, in_doubt=False), Sent)
    assert dingtalk.card_view(CARD.card_id, "insp01")["closed"] == "已确认：无利害关系"
    with pytest.raises(ValueError):
        await dingtalk.click("insp01", CARD.card_id, "b0")  # greyed out: DingTalk does not let it be clicked


def inbound(engine) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(InboundDelivery)).scalar_one()


async def test_stream_reconnects_after_disconnect(dingtalk_stream_walk, dingtalk, engine):
    walk = dingtalk_stream_walk
    await walk.say(ADMIN, "帮助")
    await dingtalk.stream_ping()
    await dingtalk.stream_disconnect(grace=0.2)
    await dingtalk.wait_for_stream(1)
    assert dingtalk.stream_connections == 2
    answer = await walk.say(ADMIN, "进度")
    assert answer


async def test_a_forged_click_over_stream_is_refused_and_changes_nothing(dingtalk_stream_walk, dingtalk, engine):
    before = inbound(engine)
    forged = {"outTrackId": "ss-t1-a1", "corpId": dingtalk.corp_id, "userId": "insp01", "userIdType": 1,
              "type": "actionCallback", "spaceType": "IM_ROBOT", "spaceId": "insp01",
              "content": json.dumps({"cardPrivateData": {"actionIds": ["b0"], "params": {
                  "action": "confirm", "value": "1", "token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}})}
    ack = await dingtalk.stream_push("/v1.0/card/instances/callback", forged)
    assert ack["code"] == 400
    assert inbound(engine) == before


async def test_event_subscription_url_check(aiohttp_server, dingtalk, engine, unused_tcp_port):
    key = "FakeDingTalkEventAESKeyForTests0123456789ab"
    settings = dingtalk_settings(dingtalk, f"http://127.0.0.1:{unused_tcp_port}")
    settings.dingtalk = settings.dingtalk.model_copy(update={"event_token": SecretStr("evtoken"),
                                                             "event_aes_key": SecretStr(key)})
    await aiohttp_server(create_app(settings, engine, workers=False), port=unused_tcp_port)
    dingtalk.bot_url = f"http://127.0.0.1:{unused_tcp_port}"
    result = await dingtalk.push_event("/dingtalk/events", {"EventType": "check_url"}, token="evtoken", aes_key=key)
    assert result.status == 200 and result.reply == "success"


async def test_wecom_and_dingtalk_at_once(engine, tmp_path, wecom, dingtalk, aiohttp_server, unused_tcp_port):
    """One deployment on both platforms: the draw's cards go to each inspector on both,
    and a confirmation on DingTalk finishes the WeCom card too."""
    from tests.support.batch_district import seed_district
    from tests.support.dingtalk_bot import link_inspectors as link_dingtalk
    from tests.support.wecom_bot import link_inspectors as link_wecom

    seed_district(engine, tmp_path)
    link_wecom(engine)
    link_dingtalk(engine)
    base = f"http://127.0.0.1:{unused_tcp_port}"
    config = wecom_settings(wecom).model_copy(update={
        "dingtalk": dingtalk_settings(dingtalk, base).dingtalk,
        "server": dingtalk_settings(dingtalk, base).server})
    app = create_app(config, engine, ticker=False)
    await aiohttp_server(app, port=unused_tcp_port)
    wecom.bot_url = dingtalk.bot_url = base
    ding_walk, wecom_walk = DingTalkWalk(dingtalk, engine, app), Walk(wecom, engine, app)
    created = await ding_walk.group(ADMIN, "新建抽查 名称=双平台 事项=A01 数量=1 方式=交叉随机 截止=2026-12-31")
    batch_id = created.split("批次 ")[1].split("「")[0]
    await ding_walk.group(ADMIN, f"公示方案 批次={batch_id}")
    await ding_walk.group(ADMIN, f"抽取 批次={batch_id}")
    assert ding_walk.group_messages() and wecom_walk.group_messages()  # announced on both
    user = next(u for u in INSPECTOR_IDS.values() if ding_walk.cards(u, "ss-t"))
    (ding_card,), (wecom_card,) = ding_walk.cards(user, "ss-t"), wecom_walk.cards(user, "ss-t")
    assert ding_card["id"] == wecom_card["id"]
    task_id = ding_card["id"].split("-")[1][1:]
    assert "无利害关系" in await ding_walk.click(user, ding_card, f"confirm:{task_id}")
    await wecom_walk.quiet()
    assert ding_walk.closed(ding_card["id"]) and wecom_walk.closed(wecom_card["id"])
    with Session(engine) as session:
        assert not session.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed")).all()
