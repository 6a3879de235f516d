"""WeCom deliveries, decrypted, into neutral events (PROTOCOLS.md A.5, B.4, B.9).

XML goes through ``bot.platform_xml`` (a DTD or entity declaration is refused before
parsing). A delivery the bot has nothing to
do with (a menu view, entering the app) parses to ``None`` and is acknowledged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from bot.chat.events import LOCATION, Event, Media
from bot.chat.ingress import NotStorable, json_object
from bot.chat.media import LABEL_CHARS, valid_coordinates
from bot.chat.router import strip_mentions
from bot.outbound import REPLY, USER, Destination
from bot.platform_xml import RefusedXML, parse
from bot.wecom.cards import card_action

PLATFORM = "wecom"
MEDIA_TYPES = ("image", "video", "voice", "file")  # evidence an inspector sends (art. 14); and locations


class MalformedDelivery(ValueError):
    """The body is not what WeCom sends."""


def envelope_xml(body: bytes) -> str:
    """The ``Encrypt`` value of an app callback's outer XML."""
    root = _xml(body)
    encrypted = root.findtext("Encrypt")
    if not encrypted:
        raise MalformedDelivery("no Encrypt element")
    return encrypted.strip()


def envelope_json(body: bytes) -> str:
    """The ``encrypt`` value of an AI bot callback's JSON."""
    try:
        data = json_object(body)
    except NotStorable:
        raise MalformedDelivery("body is not a JSON object") from None
    if not isinstance(data.get("encrypt"), str) or not data["encrypt"]:
        raise MalformedDelivery("no encrypt field")
    return data["encrypt"]


def app_event(plaintext: bytes) -> Event | None:
    """A self-built app delivery: a private text, a menu click or a card click."""
    root = _xml(plaintext)
    sender = _required(root, "FromUserName")
    at = _time(root.findtext("CreateTime"))
    private = Destination(PLATFORM, USER, sender)
    msg_type = root.findtext("MsgType", "")
    if msg_type == "text":
        msg_id = _required(root, "MsgId")
        return Event(PLATFORM, f"app:msg:{msg_id}", sender, "private", private, at,
                     text=(root.findtext("Content") or "").strip())
    if msg_type in MEDIA_TYPES:
        msg_id, media_id = _required(root, "MsgId"), _required(root, "MediaId")
        media = Media(msg_type, media_id, (root.findtext("FileName") or "").strip())
        return Event(PLATFORM, f"app:msg:{msg_id}", sender, "private", private, at, media=media)
    if msg_type == LOCATION:  # 位置消息: Location_X latitude, Location_Y longitude, Label (evidence, art. 14)
        msg_id = _required(root, "MsgId")
        if not (root.findtext("Location_X") or "").strip() or not (root.findtext("Location_Y") or "").strip():
            return None  # no coordinates: nothing to keep
        try:
            latitude, longitude = float(_required(root, "Location_X")), float(_required(root, "Location_Y"))
        except ValueError:
            raise MalformedDelivery("location without numeric Location_X/Location_Y") from None
        if not valid_coordinates(latitude, longitude):
            raise MalformedDelivery("location out of range")
        media = Media(LOCATION, "", latitude=latitude, longitude=longitude,
                      label=(root.findtext("Label") or "").strip()[:LABEL_CHARS])
        return Event(PLATFORM, f"app:msg:{msg_id}", sender, "private", private, at, media=media)
    if msg_type != "event":
        return None
    kind = root.findtext("Event", "")
    created = root.findtext("CreateTime", "")
    if kind == "template_card_event":
        task_id, event_key = _required(root, "TaskId"), _required(root, "EventKey")
        choices = {
            (item.findtext("QuestionKey") or ""): [o.text or "" for o in item.iter("OptionId")]
            for item in root.iter("SelectedItem")
        }
        action = card_action(task_id, event_key, choices, root.findtext("ResponseCode") or "")
        key = f"app:card:{sender}:{created}:{task_id}:{event_key}"
        return Event(PLATFORM, key, sender, "private", private, at, action=action)
    if kind == "click":  # an app menu item whose key is a command
        event_key = _required(root, "EventKey")
        return Event(PLATFORM, f"app:click:{sender}:{created}:{event_key}", sender, "private", private, at,
                     text=event_key)
    return None


def aibot_event(plaintext: bytes, response_base: str) -> Event | None:
    """An AI bot delivery: an @-mention in a group, or a 1:1 message to the bot.

    ``response_url`` is used only when it points at the configured WeCom API (it is a
    URL we will POST to); otherwise the answer goes privately through the app.
    """
    try:
        data = json_object(plaintext)
    except NotStorable:
        raise MalformedDelivery("decrypted body is not a JSON object fit to store") from None
    if data.get("msgtype") != "text":
        return None
    sender = (data.get("from") or {}).get("userid") if isinstance(data.get("from"), dict) else None
    msg_id = data.get("msgid")
    text = (data.get("text") or {}).get("content") if isinstance(data.get("text"), dict) else None
    if not (isinstance(sender, str) and sender and isinstance(msg_id, str) and msg_id and isinstance(text, str)):
        raise MalformedDelivery("text message without msgid, sender or content")
    chat = "group" if data.get("chattype") == "group" else "private"
    response_url = data.get("response_url")
    if isinstance(response_url, str) and response_url.startswith(response_base.rstrip("/") + "/cgi-bin/aibot/"):
        reply_to = Destination(PLATFORM, REPLY, response_url)
    else:
        reply_to = Destination(PLATFORM, USER, sender)
    return Event(PLATFORM, f"aibot:{msg_id}", sender, chat, reply_to, datetime.now(UTC),
                 chat_id=str(data.get("chatid") or ""), text=strip_mentions(text))


def _xml(body: bytes) -> Element:
    try:
        return parse(body)
    except RefusedXML:  # a DTD or entity declaration (never parsed), not UTF-8, not well-formed
        raise MalformedDelivery("body is not acceptable XML") from None


def _required(root: Element, name: str) -> str:
    value = (root.findtext(name) or "").strip()
    if not value:
        raise MalformedDelivery(f"no {name}")
    return value


def _time(value: str | None) -> datetime:
    try:
        return datetime.fromtimestamp(int(value or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.now(UTC)
