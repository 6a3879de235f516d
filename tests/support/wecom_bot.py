"""The real bot wired to the fake WeCom, for scenario tests: the district's people, the
settings, and ``Walk``, the people talking to the bot (the fixtures are in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import re
import time

from sqlalchemy import func, select, update
from sqlmodel import Session

from bot.app import DISPATCHER
from bot.callback_crypto import MsgCrypt
from bot.settings import Settings
from storage.db import transaction
from storage.models import InboundDelivery, Inspector, OutboxMessage
from storage.sealing import new_key
from tests.support.fakes.wecom import AIBOT_AES_KEY, APP_AES_KEY, FakeWeCom

ADMIN = "admin1"
APPROVER = "approver1"
LEAD = "lead1"
INSPECTOR_IDS = {f"I{n:02d}": f"insp{n:02d}" for n in range(1, 9)}
USERS = (ADMIN, APPROVER, LEAD, "stranger", *INSPECTOR_IDS.values())


def fake_wecom(**kwargs) -> FakeWeCom:
    return FakeWeCom(users=kwargs.pop("users", USERS), **kwargs)


def wecom_settings(fake: FakeWeCom, **sections) -> Settings:
    wecom = {"corp_id": "wwfakecorp", "agent_id": 1000002, "secret": "fake-secret", "token": "faketoken123",
             "encoding_aes_key": APP_AES_KEY, "api_base": fake.base_url, "webhook_key": "group-key",
             "aibot": {"token": "fakeaibot456", "encoding_aes_key": AIBOT_AES_KEY}}
    roles = {"admins": [ADMIN], "units": {"S-DC": {"approvers": [APPROVER]}, "S-XC": {"approvers": [APPROVER]},
                                          "U-XY": {"leads": [LEAD]}}}
    return Settings(wecom=wecom, roles=roles, security={"keys": [new_key()]},
                    bureau={"default_lead": "U-XY"}, **sections)


def wecom_env(fake: FakeWeCom, db_url: str, port: int, key: str) -> dict[str, str]:
    """The same configuration for a ``shuangsui serve`` process."""
    return {
        "SHUANGSUI__DATABASE__URL": db_url, "SHUANGSUI__SERVER__PORT": str(port),
        "SHUANGSUI__WECOM__CORP_ID": "wwfakecorp", "SHUANGSUI__WECOM__AGENT_ID": "1000002",
        "SHUANGSUI__WECOM__SECRET": "fake-secret", "SHUANGSUI__WECOM__TOKEN": "faketoken123",
        "SHUANGSUI__WECOM__ENCODING_AES_KEY": APP_AES_KEY, "SHUANGSUI__WECOM__API_BASE": fake.base_url,
        "SHUANGSUI__ROLES__ADMINS": f'["{ADMIN}"]', "SHUANGSUI__SECURITY__KEYS": f'["{key}"]',
    }


def link_inspectors(engine) -> None:
    """Give the district's inspectors their WeCom accounts."""
    with transaction(engine) as session:
        for inspector_id, userid in INSPECTOR_IDS.items():
            session.execute(update(Inspector).where(Inspector.id == inspector_id).values(wecom_userid=userid))


def resign(fake, params: dict, body: bytes, change) -> tuple[dict, bytes]:
    """The same delivery with its Encrypt value changed and signed again (so that what
    is caught is the change itself, not the signature)."""
    encrypted = re.search(rb"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", body).group(1).decode()
    changed = change(encrypted)
    crypt = MsgCrypt("faketoken123", APP_AES_KEY, fake.corp_id)
    signature = crypt.signature(params["timestamp"], params["nonce"], changed)
    body = body.replace(encrypted.encode(), changed.encode())
    return {**params, "msg_signature": signature}, body


async def eventually(check, timeout: float = 15.0, every: float = 0.05):
    """Wait until ``check()`` is truthy (the bot works after acknowledging); return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        await asyncio.sleep(every)


class Walk:
    """The people of the district, talking to the bot through the fake WeCom."""

    platform = "wecom"

    def __init__(self, fake, engine, app=None) -> None:
        self.fake, self.engine, self.app = fake, engine, app

    async def quiet(self) -> None:
        """Until every delivery is handled and every message sent."""
        def idle():
            with Session(self.engine) as session:
                busy_in = session.execute(select(func.count()).select_from(InboundDelivery).where(
                    InboundDelivery.status.in_(("pending", "processing")))).scalar_one()
                busy_out = session.execute(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.status.in_(("pending", "sending")))).scalar_one()
            if busy_out and self.app is not None:
                self.app[DISPATCHER].nudge()  # look now rather than at the next poll (speed only)
            return busy_in == 0 and busy_out == 0
        await asyncio.sleep(0.05)
        await eventually(idle, timeout=20)
        await asyncio.sleep(0.03)  # let the dispatcher finish its round before the test goes on

    async def group(self, user: str, text: str) -> str:
        """``user`` @-mentions the bot in a group (the AI bot); its one answer."""
        before = len(self.fake.aibot_replies)
        assert (await self.fake.aibot_text(user, "CHAT1", text)).status == 200
        await self.quiet()
        replies = self.fake.aibot_replies[before:]
        assert len(replies) == 1, replies
        return replies[0]["content"]

    def texts(self, user: str) -> list[str]:
        return [d["content"] for d in self.fake.delivered_to(user) if d["msgtype"] == "text"]

    async def say(self, user: str, text: str) -> str:
        """``user`` types ``text`` in the private chat; every text the bot sent them since."""
        before = len(self.texts(user))
        assert (await self.fake.send_text(user, text)).status == 200
        await self.quiet()
        new = self.texts(user)[before:]
        assert new, f"no answer to {text!r}"
        return "\n".join(new)

    photo_kind = "image"  # what the platform calls a photo message

    async def photo(self, user: str, content: bytes) -> str:
        """``user`` sends a photo in the private chat; every text the bot sent them since."""
        before = len(self.texts(user))
        assert (await self.fake.send_media(user, self.photo_kind, content)).status == 200
        await self.quiet()
        new = self.texts(user)[before:]
        assert new, "no answer to a photo"
        return "\n".join(new)

    def cards(self, user: str, prefix: str) -> list[dict]:
        """The cards ``user`` received whose id starts with ``prefix`` (each with its ``id``)."""
        return [{**d, "id": d["task_id"]} for d in self.fake.delivered_to(user)
                if d["card"] and d["task_id"].startswith(prefix)]

    @staticmethod
    def interactive(card: dict) -> bool:
        return card["card"]["card_type"] == "button_interaction"

    def closed(self, card_id: str) -> str:
        """The text a finished card shows instead of its buttons ("" while it is open)."""
        state = self.fake.card_state.get(card_id, {})
        return state.get("replaced") or state.get("replace_text") or ""

    def group_messages(self) -> list[str]:
        return [str(m) for m in self.fake.group_messages]

    async def replay_last_click(self, times: int = 2) -> None:
        """WeCom delivers the last click again (its retry), ``times`` times."""
        last = next(c for c in reversed(self.fake.callbacks) if c["path"] == self.fake.app_callback_path)
        for _ in range(times):
            await self.fake.post_raw(self.fake.app_callback_path, params=last["params"], body=last["body"])
        await self.quiet()

    def lost(self) -> list[dict]:
        """Messages the platform accepted but did not show (e.g. over its rate limit)."""
        return self.fake.dropped

    async def click(self, user: str, card: dict, key: str, selections=None) -> str:
        before = len(self.texts(user))
        assert (await self.fake.click(user, card["task_id"], key, selections=selections)).status == 200
        await self.quiet()
        return "\n".join(self.texts(user)[before:])
