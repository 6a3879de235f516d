"""The real bot's local console, for scenario tests: the same district and people as the
WeCom and DingTalk scenarios (``tests.support.wecom_bot``), talking to the bot through the
console's own JSON API (bot/console/routes.py) — no fake platform: the console is ours.

The console names people as ``[roles]`` entries name them for it (``console:<id>``) and
inspectors by their inspector id (bot.chat.platforms.user_id), so the walk's ``insp01`` is
``I01`` there. What a person sees is read through ``GET /console/api/messages`` after each
step (the group and their private chat, as the page polls it)."""

from __future__ import annotations

import json
import uuid

import aiohttp
from sqlalchemy import select
from sqlmodel import Session

from bot.app import create_app
from bot.settings import Settings
from storage.models import ConsoleMessage, InboundDelivery, OutboxMessage
from storage.sealing import new_key
from tests.support.batch_district import seed_district
from tests.support.wecom_bot import ADMIN, APPROVER, INSPECTOR_IDS, LEAD, Walk, eventually

TOKEN = "console-walk-start"
#: The walk's people as the console knows them: inspectors by their inspector id.
CONSOLE_ID = {user: inspector for inspector, user in INSPECTOR_IDS.items()}
PAGE = 500  # the API's page of messages (bot/console/routes.py)


def console_settings(**sections) -> Settings:
    """The console on, the district's roles named for it (``console:<id>``)."""
    roles = {"admins": [f"console:{ADMIN}"],
             "units": {"S-DC": {"approvers": [f"console:{APPROVER}"]}, "S-XC": {"approvers": [f"console:{APPROVER}"]},
                       "U-XY": {"leads": [f"console:{LEAD}"]}}}
    return Settings(console={"enabled": True}, roles=roles, security={"keys": [new_key()]},
                    bureau={"default_lead": "U-XY"}, **sections)


async def start_console(engine, tmp_path, aiohttp_client, token: str = TOKEN):
    """The bot with only its console, and a client holding this start's token (its cookie,
    set by opening the URL printed at start)."""
    seed_district(engine, tmp_path)
    app = create_app(console_settings(), engine, ticker=False, console_token=token)
    client = await aiohttp_client(app)
    assert (await client.get(f"/console/?token={token}")).status == 200
    return app, client


# ----- the console as the page uses it, person by person (the ``console`` fixture, tests/conftest.py) -----------------

CONSOLE_TOKEN = "this-start"
CONSOLE_ROLES = {"admins": ["console:admin"], "units": {"S-DC": {"approvers": ["console:approver"]},
                                                        "S-XC": {"approvers": ["console:approver"]}}}


async def open_console(engine, tmp_path, aiohttp_client):
    """The bot with only its console (people named ``console:<id>`` by ``CONSOLE_ROLES``),
    and a client holding this start's token: the URL printed at start sets its cookie."""
    seed_district(engine, tmp_path)
    settings = Settings(console={"enabled": True}, roles=CONSOLE_ROLES, security={"keys": [new_key()]},
                        bureau={"default_lead": "U-XY"})
    client = await aiohttp_client(create_app(settings, engine, ticker=False, console_token=CONSOLE_TOKEN))
    assert (await client.get(f"/console/?token={CONSOLE_TOKEN}")).status == 200
    return client


def console_messages(engine, conversation: str) -> list[ConsoleMessage]:
    """What the bot said in a console conversation (``group`` or a person's id), in order."""
    with Session(engine) as session:
        return list(session.scalars(select(ConsoleMessage).where(ConsoleMessage.conversation == conversation,
                                                                 ConsoleMessage.author == "bot")
                                    .order_by(ConsoleMessage.id)))


async def console_say(client, engine, user: str, text: str, chat: str = "private") -> str:
    """``user`` types ``text`` in their private chat (or the group); the bot's last answer."""
    conversation = "group" if chat == "group" else user
    before = len(console_messages(engine, conversation))
    response = await client.post("/console/api/send", json={"user": user, "chat": chat, "text": text})
    assert response.status == 200
    new = await eventually(lambda: console_messages(engine, conversation)[before:])
    return new[-1].payload.get("text", "")


class ConsoleWalk(Walk):
    """The people of the district, at the bot's local console."""

    platform = "console"

    def __init__(self, client, engine, app, token: str = TOKEN) -> None:
        super().__init__(None, engine, app)
        self.client, self.token = client, token
        self.seen: dict[str, list[dict]] = {}  # console id -> what its page shows, in order
        self.answers: set[int] = set()  # the group messages that answered a group command
        self.last_click: dict | None = None

    @staticmethod
    def person(user: str) -> str:
        return CONSOLE_ID.get(user, user)

    # ----- what the page shows ----------------------------------------------------------------------------------------

    async def _sync(self) -> None:
        """Read the new messages of everyone the console lists and everyone who acted, as their pages poll."""
        people = await self.client.get("/console/api/people")
        assert people.status == 200, await people.text()
        for entry in await people.json():
            self.seen.setdefault(entry["id"], [])
        for who, log in self.seen.items():
            while True:
                after = log[-1]["id"] if log else 0
                response = await self.client.get("/console/api/messages", params={"user": who, "after": str(after)})
                assert response.status == 200, await response.text()
                page = await response.json()
                log.extend(page)
                if len(page) < PAGE:
                    break

    def _log(self, user: str) -> list[dict]:
        return self.seen.get(self.person(user), [])

    def _private(self, user: str, kind: str) -> list[dict]:
        return [m for m in self._log(user) if m["conversation"] == "private" and m["author"] == "bot"
                and m["kind"] == kind]

    def _group(self) -> list[dict]:
        """The group as everyone sees it (the same in every page)."""
        by_id = {m["id"]: m for log in self.seen.values() for m in log if m["conversation"] == "group"}
        return [by_id[i] for i in sorted(by_id)]

    async def quiet(self) -> None:
        await super().quiet()
        await self._sync()

    # ----- talking ----------------------------------------------------------------------------------------------------

    async def _post(self, path: str, body: dict) -> None:
        response = await self.client.post(path, json=body)
        assert response.status == 200, (response.status, await response.text())

    async def group(self, user: str, text: str) -> str:
        """``user`` types ``text`` (with its @-mention) in the group; the bot's one answer there.

        The console shows answers and announcements alike in the group; the answer is the
        message sent as this delivery's reply (its outbox key, bot.outbox_keys.reply)."""
        self.seen.setdefault(self.person(user), [])
        await self.quiet()
        before = max((m["id"] for m in self._group()), default=0)
        with Session(self.engine) as session:
            outbox_before = session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc())) or 0
        await self._post("/console/api/send", {"user": self.person(user), "chat": "group", "text": text})
        await self.quiet()
        with Session(self.engine) as session:
            replies = [row.payload["message"] for row in session.scalars(select(OutboxMessage).where(
                OutboxMessage.id > outbox_before, OutboxMessage.platform == self.platform,
                OutboxMessage.idempotency_key.like(f"event:{self.platform}:%")))
                if row.payload["destination"]["kind"] == "group"]
        answers = []
        for message in self._group():
            if message["id"] > before and message["author"] == "bot" and message["payload"] in replies:
                replies.remove(message["payload"])
                answers.append(message)
        assert len(answers) == 1, answers
        self.answers.add(answers[0]["id"])
        return answers[0]["payload"].get("text", "")

    def texts(self, user: str) -> list[str]:
        return [m["payload"]["text"] for m in self._private(user, "text")]

    async def say(self, user: str, text: str) -> str:
        """``user`` types ``text`` in their private chat; every text the bot sent them since."""
        self.seen.setdefault(self.person(user), [])
        before = len(self.texts(user))
        await self._post("/console/api/send", {"user": self.person(user), "chat": "private", "text": text})
        await self.quiet()
        new = self.texts(user)[before:]
        assert new, f"no answer to {text!r}"
        return "\n".join(new)

    async def photo(self, user: str, content: bytes) -> str:
        """``user`` uploads a photo in their private chat; every text the bot sent them since."""
        self.seen.setdefault(self.person(user), [])
        before = len(self.texts(user))
        form = aiohttp.FormData()
        form.add_field("user", self.person(user))
        form.add_field("file", content, filename="photo.jpg", content_type="image/jpeg")
        response = await self.client.post("/console/api/upload", data=form)
        assert response.status == 200, (response.status, await response.text())
        await self.quiet()
        new = self.texts(user)[before:]
        assert new, "no answer to a photo"
        return "\n".join(new)

    # ----- cards ------------------------------------------------------------------------------------------------------

    def _updates(self, card_id: str) -> list[dict]:
        by_id = {m["id"]: m for log in self.seen.values() for m in log
                 if m["kind"] == "card_update" and m["payload"]["card_id"] == card_id}
        return [by_id[i]["payload"] for i in sorted(by_id)]

    def _shown(self, card: dict) -> dict:
        """A card as the page shows it now: its updates applied (a replacement, the closing text)."""
        shown = dict(card)
        for update in self._updates(card["card_id"]):
            shown = {**(update.get("card") or shown), "closed": update["closed"]}
        return {**shown, "id": card["card_id"]}

    def cards(self, user: str, prefix: str) -> list[dict]:
        """The cards ``user``'s page shows whose id starts with ``prefix`` (each with its ``id``)."""
        return [self._shown(m["payload"]) for m in self._private(user, "card")
                if m["payload"]["card_id"].startswith(prefix)]

    @staticmethod
    def interactive(card: dict) -> bool:
        return bool(card["buttons"] or card["submit"]) and not card["closed"]

    def closed(self, card_id: str) -> str:
        updates = self._updates(card_id)
        return updates[-1]["closed"] if updates else ""

    def group_messages(self) -> list[str]:
        """What the bot posted in the group of itself (announcements), not its answers to commands there."""
        return [m["payload"].get("text") or json.dumps(m["payload"], ensure_ascii=False) for m in self._group()
                if m["author"] == "bot" and m["id"] not in self.answers]

    async def click(self, user: str, card: dict, key: str, selections=None) -> str:
        """Click the button whose action and value are ``key`` ("action:value") on the card as shown to ``user``."""
        action, _, value = key.partition(":")
        (shown,) = [c for c in self.cards(user, card["id"]) if c["id"] == card["id"]]
        buttons = [*shown["buttons"], *([shown["submit"]] if shown["submit"] else [])]
        assert [b for b in buttons if (b["action"], b["value"]) == (action, value)], (key, buttons)
        self.last_click = {"user": self.person(user), "card_id": card["id"], "action": action, "value": value,
                           "choices": selections or {}, "click_id": uuid.uuid4().hex}  # as the page gives each click
        before = len(self.texts(user))
        await self._post("/console/api/click", self.last_click)
        await self.quiet()
        return "\n".join(self.texts(user)[before:])

    async def replay_last_click(self, times: int = 2) -> None:
        """The same click posted again, ``times`` times, with its ``click_id`` (the page's retry): duplicates."""
        assert self.last_click is not None
        for _ in range(times):
            await self._post("/console/api/click", self.last_click)
        await self.quiet()

    def lost(self) -> list[dict]:
        """Deliveries the bot did not finish and messages it could not write to the console."""
        with Session(self.engine) as session:
            deliveries = session.scalars(select(InboundDelivery).where(
                InboundDelivery.platform == self.platform, InboundDelivery.status != "done")).all()
            failed = session.scalars(select(OutboxMessage).where(
                OutboxMessage.platform == self.platform, OutboxMessage.status == "failed")).all()
            return ([{"delivery": d.delivery_key, "status": d.status, "error": d.error} for d in deliveries]
                    + [{"outbox": o.id, "key": o.idempotency_key, "error": o.last_error} for o in failed])
