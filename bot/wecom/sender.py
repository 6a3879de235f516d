"""Sending outbox messages through WeCom: private messages and cards through the app
(message/send), card updates (update_template_card), group pushes through the group
robot webhook, group command answers through the AI bot's response_url.

Idempotency at the platform makes our at-least-once delivery effectively once: a card's
``task_id`` can be used once, so a resend of a delivered card is refused as a
duplicate; a text resent while in doubt goes with ``enable_duplicate_check``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from bot.chat.dispatcher import Failed, Outcome, Retry, Sent
from bot.chat.long_text import clip, split_text
from bot.outbound import CARD, GROUP, REPLY, USER, Card, CardUpdate, Destination, File, Image, Message, Text
from bot.settings import Settings
from bot.wecom import api as wecom_api
from bot.wecom.api import Unreachable, WeComAPI
from bot.wecom.cards import template_card, update_body
from storage import evidence
from storage.db import transaction
from storage.outbox import APP, RateLimit

log = logging.getLogger(__name__)

# B.2: per app per member 30 a minute and 1000 an hour, the excess silently dropped;
# B.8: a group robot 20 a minute. A send's slot counts from the latest it can reach WeCom
# (``REACH``, a request timeout after its claim) until WeCom's answer shows it had it
# (``storage.outbox.settle``): then from the moment the answer came, never earlier than
# WeCom counted it. So the windows are WeCom's own, with a second to spare.
REACH = timedelta(seconds=wecom_api.TIMEOUT.total or 10)
_LATE = timedelta(seconds=1)
MEMBER_LIMITS = (RateLimit(30, timedelta(minutes=1) + _LATE), RateLimit(1000, timedelta(hours=1) + _LATE))
ROBOT_LIMITS = (RateLimit(20, timedelta(minutes=1) + _LATE),)
# B.2: per corp 10,000 calls a minute and 150,000 an hour per API; every call is counted
# against them together (``storage.outbox.app_key``), which keeps each API within its own.
APP_LIMITS = (RateLimit(10_000, timedelta(minutes=1) + _LATE), RateLimit(150_000, timedelta(hours=1) + _LATE))

TEXT_BYTES = 2048
WEBHOOK_IMAGE_BYTES = 2 * 1024 * 1024  # B.8
MARKDOWN_BYTES = 4096
DUPLICATE_TASK_ID = 40058  # PROTOCOLS.md F: the exact code is unconfirmed; WeCom's "invalid parameter"
RESPONSE_CODE_USED = {40058, 40078, 600021}  # unconfirmed likewise: a used or expired response code
INVALID_USERS = {81013, 60111, 40031}  # all recipients invalid; user not found; invalid user list
BUSY = {-1, 45009, 45033, 45011}  # system busy; frequency limits
BUSY_WAIT = 60.0


class WeComSender:
    platform = "wecom"
    reach = REACH  # how late a claimed send may reach WeCom (the dispatcher's rate slots)

    def __init__(self, settings: Settings, api: WeComAPI) -> None:
        self.settings, self.api = settings, api
        agent_id = settings.wecom.agent_id
        # Made only when WeCom sends (bot.chat.platforms.sends), which takes the AgentId.
        assert agent_id is not None, "a WeCom sender needs the app's AgentId"
        self.agent_id = agent_id
        self.source = settings.bureau.name
        self.link = settings.server.public_base_url.rstrip("/") + "/public/"

    def limits(self, rate_key: str) -> Sequence[RateLimit]:
        kind = rate_key.split(":", 2)[1]
        return {USER: MEMBER_LIMITS, GROUP: ROBOT_LIMITS, APP: APP_LIMITS}.get(kind, ())

    async def send(self, destination: Destination, message: Message, *, in_doubt: bool) -> Outcome:
        try:
            if destination.kind == USER:
                return await self._to_member(destination.address, message, in_doubt)
            if destination.kind == CARD and isinstance(message, CardUpdate):
                return await self._update_card(destination.address, message, in_doubt)
            if destination.kind == GROUP:
                return await self._to_group(message)
            if destination.kind == REPLY:
                return await self._reply(destination.address, message, in_doubt)
        except Unreachable as exc:
            if exc.in_doubt:
                # A request we gave up on may still land at WeCom: resend only after it
                # would have, so that WeCom's duplicate check sees it first.
                return Retry(str(exc), in_doubt=True, after=2 * (wecom_api.TIMEOUT.total or 0))
            return Retry(str(exc))
        return Failed(f"cannot send {type(message).__name__} to a WeCom {destination.kind}")

    async def _to_member(self, user: str, message: Message, in_doubt: bool) -> Outcome:
        if isinstance(message, Text) and len(message.text.encode()) > TEXT_BYTES:
            return await self._long_text(user, message.text, in_doubt)
        body: dict = {"touser": user, "agentid": self.agent_id}
        if isinstance(message, Card):
            body |= {"msgtype": "template_card",
                     "template_card": template_card(message, source=self.source, link=self.link)}
        elif isinstance(message, Image):
            media_id = await self._upload(message)
            if media_id is None:
                return Failed("the image is no longer stored")
            body |= {"msgtype": "image", "image": {"media_id": media_id}}
            if in_doubt:
                body |= {"enable_duplicate_check": 1, "duplicate_check_interval": 14400}
        elif isinstance(message, File):
            media_id = await self._upload_file(message)
            if media_id is None:
                return Failed("the file is no longer stored")
            body |= {"msgtype": "file", "file": {"media_id": media_id}}
            if in_doubt:
                body |= {"enable_duplicate_check": 1, "duplicate_check_interval": 14400}
        elif isinstance(message, Text):
            body |= {"msgtype": "text", "text": {"content": clip(message.text, TEXT_BYTES)}}
            if in_doubt:
                # An earlier attempt may have arrived: let WeCom drop an identical resend.
                # Only then, so that a person asking twice still gets two answers.
                body |= {"enable_duplicate_check": 1, "duplicate_check_interval": 14400}
        else:
            return Failed(f"cannot send {type(message).__name__} to a member")
        answer = await self.api.post("message/send", body)
        code = answer.get("errcode", 0)
        if code == 0:
            if answer.get("invaliduser"):
                return Failed(f"invalid user {answer['invaliduser']}", answer)
            return Sent(_kept(answer))
        if code == DUPLICATE_TASK_ID and in_doubt and isinstance(message, Card):
            return Sent({"duplicate": True, **_kept(answer)})  # the earlier attempt was delivered
        return _classify(code, answer)

    async def _long_text(self, user: str, text: str, in_doubt: bool) -> Outcome:
        """A text over WeCom's 2,048 bytes goes as several messages, in order. If one
        fails after others went out, all are resent in doubt, so WeCom drops the repeats."""
        parts = split_text(text, TEXT_BYTES)
        answers = []
        for n, part in enumerate(parts):
            outcome = await self._to_member(user, Text(part), in_doubt)
            if not isinstance(outcome, Sent):
                if n and isinstance(outcome, Retry):
                    return Retry(outcome.error, in_doubt=True, after=outcome.after)
                return outcome
            answers.append(outcome.response)
        return Sent({"parts": answers})

    async def _upload(self, image: Image) -> str | None:
        """Temporary media for a private image (media/upload); None if the blob is gone."""
        found = await asyncio.to_thread(self._blob, image.sha256)
        if found is None:
            return None
        data, content_type = found
        return await self.api.upload("image", data, f"{image.sha256[:16]}.png", content_type or "image/png")

    async def _upload_file(self, file: File) -> str | None:
        """Temporary media for a private file (media/upload, type file); None if the blob is gone."""
        found = await asyncio.to_thread(self._blob, file.sha256)
        if found is None:
            return None
        data, content_type = found
        return await self.api.upload("file", data, file.name, content_type or "application/octet-stream")

    def _blob(self, digest: str) -> tuple[bytes, str] | None:
        with transaction(self.api.engine) as session:
            return evidence.load(session, digest)

    async def _update_card(self, user: str, update: CardUpdate, in_doubt: bool) -> Outcome:
        if not update.update_token:
            return Failed("no response code to update the card with")
        body = update_body(update, agent_id=self.agent_id, user=user, source=self.source, link=self.link)
        answer = await self.api.post("message/update_template_card", body)
        code = answer.get("errcode", 0)
        if code == 0:
            return Sent(_kept(answer))
        if code in RESPONSE_CODE_USED and in_doubt:
            return Sent({"duplicate": True})  # the earlier attempt used the one-time code
        return _classify(code, answer)

    async def _to_group(self, message: Message) -> Outcome:
        key = self.settings.wecom.webhook_key
        if key is None or not isinstance(message, (Text, Image)):
            return Failed("no group robot configured ([wecom] webhook_key)" if key is None
                          else f"cannot push {type(message).__name__} to a group")
        if isinstance(message, Image):
            found = await asyncio.to_thread(self._blob, message.sha256)
            if found is None or len(found[0]) > WEBHOOK_IMAGE_BYTES:
                return Failed("the image is missing or larger than a group robot takes")
            data = found[0]
            body = {"msgtype": "image", "image": {"base64": base64.b64encode(data).decode(),
                                                  "md5": hashlib.md5(data).hexdigest()}}  # WeCom's checksum
        else:
            body = {"msgtype": "markdown", "markdown": {"content": clip(message.text, MARKDOWN_BYTES)}}
        answer = await self.api.post("webhook/send", body, params={"key": key.get_secret_value()}, with_token=False)
        code = answer.get("errcode", 0)
        return Sent(_kept(answer)) if code == 0 else _classify(code, answer)

    async def _reply(self, response_url: str, message: Message, in_doubt: bool) -> Outcome:
        if not isinstance(message, Text):
            return Failed(f"cannot answer with {type(message).__name__} in a group")
        body = {"msgtype": "markdown", "markdown": {"content": clip(message.text, MARKDOWN_BYTES)}}
        answer = await self.api.post_url(response_url, body)
        code = answer.get("errcode", 0)
        if code == 0:
            return Sent(_kept(answer))
        if in_doubt:
            return Sent({"duplicate": True})  # the one-time response_url was used by the earlier attempt
        return _classify(code, answer)


def _classify(code: int, answer: dict) -> Outcome:
    if code in BUSY:
        return Retry(f"errcode {code}", after=BUSY_WAIT)
    if code in INVALID_USERS:
        return Failed(f"errcode {code}: invalid user", answer)
    if code in (40014, 42001, 41001, 40001):
        return Retry(f"errcode {code}: access token")
    return Failed(f"errcode {code}", answer)


def _kept(answer: dict) -> dict:
    """What to keep of WeCom's answer (never the errmsg's hint text with our IP); a card's
    one-time response code is the handle to update it with later (``update_token``)."""
    kept = {k: answer[k] for k in ("msgid", "response_code", "invaliduser") if answer.get(k)}
    if answer.get("response_code"):
        kept["update_token"] = answer["response_code"]
    return kept
