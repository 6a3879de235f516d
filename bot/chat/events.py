"""What reaches the bot from any platform, in one neutral shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from bot.outbound import Destination


@dataclass(frozen=True)
class CardAction:
    """A click on one of our cards.

    Attributes:
        card_id: the card's own id (``Card.card_id``).
        action: the button's action name, e.g. ``confirm``.
        value: what the button carries, e.g. a task id.
        choices: question → chosen option ids, for cards with a selection.
        update_token: the platform's handle for updating the card once (WeCom's
            ``ResponseCode``), or ``""``.
    """

    card_id: str
    action: str
    value: str = ""
    choices: dict[str, list[str]] = field(default_factory=dict)
    update_token: str = ""


LOCATION = "location"  # the media kind of a location: nothing to download, the coordinates are the content


@dataclass(frozen=True)
class Media:
    """A photo, video, voice message, file or location sent to the bot (evidence, art. 14).

    Attributes:
        kind: ``image``, ``video``, ``voice``, ``file`` or ``location``.
        media_id: the platform's handle to download it with (``""`` for a location).
        file_name: as sent, when the platform gives one.
        sha256: set once the content is downloaded and stored (a location: its JSON record).
        size: bytes, once downloaded.
        latitude, longitude: a location's coordinates (degrees, as the platform gives them).
        label: a location's description (WeCom's ``Label``, e.g. the street address).
    """

    kind: str
    media_id: str
    file_name: str = ""
    sha256: str = ""
    size: int = 0
    latitude: float | None = None
    longitude: float | None = None
    label: str = ""


class MediaGone(Exception):
    """The platform will not give the media (expired, unknown, too large)."""


@dataclass(frozen=True)
class Event:
    """One delivery from a platform: a message typed by a person, or a card click.

    Attributes:
        platform: ``wecom``, ``dingtalk`` or ``console``.
        delivery_key: unique per delivery on that platform; a retry carries the same.
        sender: the platform user id of the person.
        chat: ``private`` or ``group``.
        chat_id: the group's id (``""`` in a private chat).
        text: what was typed, with any @-mention of the bot removed.
        action: the card click, when it is one.
        media: the photo, video or file, when it is one.
        reply_to: where an answer to this event goes.
        at: when the platform says it happened (UTC).
    """

    platform: str
    delivery_key: str
    sender: str
    chat: str
    reply_to: Destination
    at: datetime
    chat_id: str = ""
    text: str | None = None
    action: CardAction | None = None
    media: Media | None = None

    def to_json(self) -> dict:
        # Spelled out rather than dataclasses.asdict: this runs for every callback, before the ack.
        reply = self.reply_to
        return {"platform": self.platform, "delivery_key": self.delivery_key, "sender": self.sender,
                "chat": self.chat, "at": self.at.isoformat(), "chat_id": self.chat_id, "text": self.text,
                "reply_to": {"platform": reply.platform, "kind": reply.kind, "address": reply.address,
                             "via": reply.via},
                "action": asdict(self.action) if self.action else None,
                "media": asdict(self.media) if self.media else None}

    @classmethod
    def from_json(cls, data: dict) -> Event:
        data = dict(data)
        data.pop("blanked", None)  # storage.retention's marker on a done delivery
        data["reply_to"] = Destination(**data["reply_to"])
        data["at"] = datetime.fromisoformat(data["at"])
        if data.get("action"):
            data["action"] = CardAction(**data["action"])
        if data.get("media"):
            data["media"] = Media(**data["media"])
        return cls(**data)
