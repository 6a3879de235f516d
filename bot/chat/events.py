"""What reaches the bot from any platform, in one neutral shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from bot.chat.outbound import Destination


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

    def to_json(self) -> dict:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict) -> Event:
        data = dict(data)
        data["reply_to"] = Destination(**data["reply_to"])
        data["at"] = datetime.fromisoformat(data["at"])
        if data.get("action"):
            data["action"] = CardAction(**data["action"])
        return cls(**data)
