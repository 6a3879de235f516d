"""The real bot wired to the fake DingTalk, for scenario tests: the same district and
people as the WeCom scenarios (``tests.support.wecom_bot``), known by their DingTalk accounts."""

from __future__ import annotations

import asyncio
import json
import time

from defusedxml import ElementTree
from sqlalchemy import update
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.app import create_app
from bot.settings import Settings
from storage.db import transaction
from storage.models import Inspector
from storage.sealing import new_key
from tests.support.batch_district import seed_district
from tests.support.fakes.dingtalk import FakeDingTalk
from tests.support.wecom_bot import ADMIN, APPROVER, INSPECTOR_IDS, LEAD, Walk

GROUP = "cidGROUP1=="


# The app alone, for deliveries judged at its edge: DingTalk's HTTP callbacks and event
# subscription on, its API unreachable (run it with workers off). The app key and secret are
# the fake's (the secret signs robot messages); the token and key open event pushes.
SECRET = "fake-app-secret"
EVENT_TOKEN, EVENT_KEY = "eventtoken1", "FakeDingTalkEventAESKeyForTests0123456789ab"
OAPI = "https://oapi.dingtalk.com"


def edge_settings(**dingtalk) -> Settings:
    """DingTalk's HTTP callbacks and event subscription on, its API unreachable."""
    return Settings(dingtalk={"app_key": "dingfakeappkey", "app_secret": SECRET, "robot_code": "dingfakeappkey",
                              "api_base": "http://127.0.0.1:9", "oapi_base": OAPI,
                              "card_template_id": "shuangsui_task.schema", "event_token": EVENT_TOKEN,
                              "event_aes_key": EVENT_KEY, **dingtalk},
                    security={"keys": [new_key()]})


def dingtalk_settings(fake: FakeDingTalk, public_base_url: str, *, mode: str = "http", **sections) -> Settings:
    dingtalk = {"app_key": fake.app_key, "app_secret": fake.app_secret, "robot_code": fake.robot_code,
                "api_base": fake.base_url, "oapi_base": fake.base_url, "card_template_id": fake.card_template_id,
                "group_conversation_id": GROUP, "mode": mode}
    roles = {"admins": [ADMIN], "units": {"S-DC": {"approvers": [APPROVER]}, "S-XC": {"approvers": [APPROVER]},
                                          "U-XY": {"leads": [LEAD]}}}
    return Settings(dingtalk=dingtalk, roles=roles, security={"keys": [new_key()]},
                    bureau={"default_lead": "U-XY"}, server={"public_base_url": public_base_url}, **sections)


def link_inspectors(engine) -> None:
    """Give the district's inspectors their DingTalk accounts (staff ids)."""
    with transaction(engine) as session:
        for inspector_id, user in INSPECTOR_IDS.items():
            session.execute(update(Inspector).where(Inspector.id == inspector_id).values(dingtalk_userid=user))


async def start_bot(engine, tmp_path, fake: FakeDingTalk, aiohttp_server, port: int, mode: str):
    """The bot on DingTalk, with messages and clicks arriving over HTTP or over Stream."""
    seed_district(engine, tmp_path)
    link_inspectors(engine)
    app = create_app(dingtalk_settings(fake, f"http://127.0.0.1:{port}", mode=mode), engine, ticker=False)
    await aiohttp_server(app, port=port)
    fake.bot_url, fake.mode = f"http://127.0.0.1:{port}", mode
    if mode == "stream":
        await fake.wait_for_stream(1)
    else:
        for _ in range(200):  # the card callback URL is registered at start-up
            if fake.routes:
                break
            await asyncio.sleep(0.02)
    return app


class DingTalkWalk(Walk):
    """The people of the district, talking to the bot through the fake DingTalk."""

    platform = "dingtalk"

    async def group(self, user: str, text: str) -> str:
        """``user`` @-mentions the robot in the group; its one answer there."""
        before = len(self._group_answers())
        answered = await self.fake.send_text(user, text.removeprefix("@双随").strip(), conversation=GROUP)
        # None: not answered within DingTalk's ~1.5 s (on a machine far busier than it has cores)
        assert answered.status == 200, (answered.status, answered.text)
        await self.quiet()
        answers = self._group_answers()[before:]
        assert len(answers) == 1, answers
        return answers[0]

    def _group_answers(self) -> list[str]:
        return [r["content"] for r in self.fake.session_replies if r["conversation"] == GROUP]

    def texts(self, user: str) -> list[str]:
        """Every text ``user`` got privately: through the robot or a session webhook, in order."""
        robot = [(r["at"], r["content"]) for r in self.fake.delivered_to(user) if r["api"] == "batchSend"
                 and r["content"]]
        session = [(r["at"], r["content"]) for r in self.fake.session_replies
                   if r["user"] == user and r["conversation_type"] == "1"]
        return [content for _, content in sorted(robot + session, key=lambda pair: pair[0])]

    photo_kind = "picture"

    def cards(self, user: str, prefix: str) -> list[dict]:
        return [{**r, "id": r["out_track_id"]} for r in self.fake.delivered_to(user)
                if r["api"] == "card" and r["out_track_id"].startswith(prefix)]

    @staticmethod
    def interactive(card: dict) -> bool:
        return bool(json.loads(card["card"]["buttons"] or "[]"))

    def closed(self, card_id: str) -> str:
        return self.fake.card_view(card_id)["closed"]

    def group_messages(self) -> list[str]:
        return [r["content"] or json.dumps(r["card"], ensure_ascii=False) for r in self.fake.group_messages]

    async def click(self, user: str, card: dict, key: str, selections=None) -> str:
        """Click the button whose action and value are ``key`` ("action:value"), as shown to ``user`` now."""
        action, _, value = key.partition(":")
        view = self.fake.card_view(card["id"], user)
        (button,) = [b for b in view["buttons"] if (b["params"].get("action"), b["params"].get("value"))
                     == (action, value)]
        form = {question: options[0] for question, options in (selections or {}).items()}
        before = len(self.texts(user))
        assert (await self.fake.click(user, card["id"], button["id"], form=form)).status == 200
        await self.quiet()
        return "\n".join(self.texts(user)[before:])

    async def replay_last_click(self, times: int = 2) -> None:
        """DingTalk delivers the last click again, ``times`` times (HTTP: the same request; Stream: the same frame)."""
        last = next(c for c in reversed(self.fake.callbacks) if c["kind"] == "card")
        for _ in range(times):
            if last["mode"] == "stream":
                await self.fake.stream_push(last["path"], last["body"])
            else:
                await self.fake.post_raw(last["path"], headers=last["headers"], body=last["body"])
        await self.quiet()

    def lost(self) -> list[dict]:
        """Nothing is dropped silently by DingTalk; flow-controlled sends are answered as such."""
        return []


def sealed_event(event: dict, *, timestamp: int | None = None, token: str = EVENT_TOKEN) -> tuple[dict, bytes]:
    """An event subscription callback as DingTalk seals it: its query and its body."""
    crypto = WeChatCrypto(token, EVENT_KEY, "dingfakeappkey")
    ts = str(int(time.time() * 1000) if timestamp is None else timestamp)
    xml = crypto.encrypt_message(json.dumps(event), "nonce123", ts)
    root = ElementTree.fromstring(xml)
    return ({"msg_signature": root.findtext("MsgSignature"), "timestamp": ts, "nonce": "nonce123"},
            json.dumps({"encrypt": root.findtext("Encrypt")}).encode())
