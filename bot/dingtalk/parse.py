"""DingTalk deliveries into neutral events: robot messages (PROTOCOLS.md C.1) and card
clicks (C.5), whether they came over HTTP or the Stream connection.

A message the bot has nothing to do with (audio, a message from outside the
organisation with no staff id) parses to ``None`` and is acknowledged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.chat.events import Event, Media
from bot.chat.ingress import NotStorable, json_object
from bot.chat.router import strip_mentions
from bot.dingtalk.cards import card_action
from bot.dingtalk.sign import millis
from bot.outbound import REPLY, USER, Destination

PLATFORM = "dingtalk"
#: DingTalk message types that are evidence (art. 14), as our media kinds.
MEDIA_KINDS = {"picture": "image", "video": "video", "file": "file"}
SESSION_PATH = "/robot/sendBySession"


class MalformedDelivery(ValueError):
    """The body is not what DingTalk sends."""


def json_body(body: bytes | str) -> dict:
    try:
        return json_object(body)
    except NotStorable as exc:
        raise MalformedDelivery(str(exc)) from None


def robot_event(data: dict, oapi_base: str) -> Event | None:
    """A message to the robot: private (``conversationType`` "1") or an @-mention in a group ("2").

    The answer goes back through the ``sessionWebhook`` while it is valid, and only if it
    is DingTalk's own (a URL we will POST to); after that through the OpenAPI.
    """
    msg_id, staff_id = data.get("msgId"), data.get("senderStaffId")
    if not (isinstance(msg_id, str) and msg_id):
        raise MalformedDelivery("no msgId")
    if not (isinstance(staff_id, str) and staff_id):
        return None  # someone outside the organisation: no staff id to know them by
    kind = data.get("msgtype")
    if not isinstance(kind, str):
        raise MalformedDelivery("no msgtype")
    text, media = None, None
    if kind == "text":
        content = data.get("text", {}).get("content") if isinstance(data.get("text"), dict) else None
        if not isinstance(content, str):
            raise MalformedDelivery("text message without text.content")
        text = strip_mentions(content.strip())
    elif kind in MEDIA_KINDS:
        content = data.get("content")
        code = content.get("downloadCode") if isinstance(content, dict) else None
        if not isinstance(content, dict) or not (isinstance(code, str) and code):
            raise MalformedDelivery("media message without downloadCode")
        name = file_name if isinstance(file_name := content.get("fileName"), str) else ""
        media = Media(MEDIA_KINDS[kind], code, name)
    else:
        return None
    group = str(data.get("conversationType")) == "2"
    conversation = found if isinstance(found := data.get("conversationId"), str) else ""
    if group and not conversation:
        raise MalformedDelivery("group message without conversationId")
    via = _session(data, oapi_base)
    reply_to = (Destination(PLATFORM, REPLY, conversation, via) if group
                else Destination(PLATFORM, USER, staff_id, via))
    return Event(PLATFORM, f"msg:{msg_id}", staff_id, "group" if group else "private", reply_to,
                 _time(data.get("createAt")), chat_id=conversation if group else "", text=text, media=media)


def card_event(data: dict, keys: Sequence[bytes]) -> Event:
    """A click on one of our cards. DingTalk gives a click no id of its own, so a
    retried callback is known by its content: the card, the user and what was sent.

    Raises:
        MalformedDelivery: not a card callback.
        ForgedAction: the button's token is not ours for this user.
    """
    try:
        user, action = card_action(data, keys)
    except ValueError as exc:
        raise MalformedDelivery(str(exc)) from None
    digest = hashlib.sha256(data["content"].encode()).hexdigest()[:24]
    return Event(PLATFORM, f"card:{action.card_id}:{user}:{digest}", user, "private",
                 Destination(PLATFORM, USER, user), datetime.now(UTC), action=action)


def _session(data: dict, oapi_base: str) -> str:
    url, expires = data.get("sessionWebhook"), millis(data.get("sessionWebhookExpiredTime"))
    if not (isinstance(url, str) and url.startswith(oapi_base.rstrip("/") + SESSION_PATH + "?")) or expires is None:
        return ""
    return f"{expires}|{url}"


def _time(value: object) -> datetime:
    found = millis(value)
    try:
        return datetime.fromtimestamp(found / 1000, UTC) if found is not None else datetime.now(UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.now(UTC)
