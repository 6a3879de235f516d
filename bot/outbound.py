"""What the bot sends, in one neutral shape, rendered per platform at the edge.

A message goes to a ``Destination``; the outbox stores both as JSON
(``to_payload``/``from_payload``) and the platform sender renders them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

USER, GROUP, REPLY, CARD = "user", "group", "reply", "card"


@dataclass(frozen=True)
class Destination:
    """Where a message goes.

    Attributes:
        platform: ``wecom``, ``dingtalk`` or ``console``.
        kind: ``user`` (a private chat), ``group`` (a configured group robot),
            ``reply`` (the answer route of one event, e.g. an AI bot's response_url)
            or ``card`` (an update of a card already sent).
        address: the user id, group name, reply route or card update route.
        via: a short-lived answer route the platform gave with the event, tried
            before the usual way to ``address`` (DingTalk's ``sessionWebhook``,
            as ``<expiry ms>|<url>``); ``""`` for none.
    """

    platform: str
    kind: str
    address: str
    via: str = ""


@dataclass(frozen=True)
class Text:
    """Plain text (with line breaks); platforms may render it as markdown."""

    text: str


@dataclass(frozen=True)
class Button:
    """A card button; ``action`` and ``value`` come back in the click's ``CardAction``."""

    action: str
    label: str
    value: str = ""
    style: str = "primary"  # primary | secondary | danger


@dataclass(frozen=True)
class Choice:
    """A single-choice question on a card (e.g. the eight result categories)."""

    question: str
    title: str
    options: list[tuple[str, str]]  # (option id, label)


@dataclass(frozen=True)
class Card:
    """An interactive card.

    Attributes:
        card_id: stable and unique per card: the platform's idempotency key (WeCom
            ``task_id``, DingTalk ``outTrackId``), so a resend is never shown twice.
        title: the headline.
        body: a short paragraph under it.
        fields: label/value lines (object, address, items, deadline …).
        buttons: at most six.
        choice: an optional single-choice question, answered with ``submit``.
        submit: the button that sends the choice.
        closed: when set, the card is finished: buttons greyed out with this text.
    """

    card_id: str
    title: str
    body: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    choice: Choice | None = None
    submit: Button | None = None
    closed: str | None = None


@dataclass(frozen=True)
class CardUpdate:
    """Finish a card after a click: grey its buttons out with ``closed``, or replace it."""

    card_id: str
    closed: str
    update_token: str = ""
    card: Card | None = None


@dataclass(frozen=True)
class Image:
    """A picture (a summary's chart), stored by its SHA-256 in the blob store."""

    sha256: str
    caption: str = ""


@dataclass(frozen=True)
class File:
    """A file to download (a batch's follow-up list as XLSX), stored by its SHA-256 in the
    blob store; sent to a person where the platform takes files."""

    sha256: str
    name: str
    caption: str = ""


Message = Text | Card | CardUpdate | Image | File
_KINDS = {"text": Text, "card": Card, "card_update": CardUpdate, "image": Image, "file": File}


def kind_of(message: Message) -> str:
    return {Text: "text", Card: "card", CardUpdate: "card_update", Image: "image", File: "file"}[type(message)]


def to_payload(destination: Destination, message: Message) -> dict:
    return {"destination": asdict(destination), "kind": kind_of(message), "message": asdict(message)}


def from_payload(payload: dict) -> tuple[Destination, Message]:
    destination = Destination(**payload["destination"])
    return destination, _message(payload["kind"], payload["message"])


def _message(kind: str, data: dict) -> Message:
    data = dict(data)
    if kind == "card":
        data["fields"] = [tuple(pair) for pair in data["fields"]]
        data["buttons"] = [Button(**b) for b in data["buttons"]]
        if data["choice"]:
            data["choice"] = Choice(**{**data["choice"], "options": [tuple(o) for o in data["choice"]["options"]]})
        if data["submit"]:
            data["submit"] = Button(**data["submit"])
    if kind == "card_update" and data.get("card"):
        data["card"] = _message("card", data["card"])
    return _KINDS[kind](**data)
