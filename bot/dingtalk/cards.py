"""Neutral cards as DingTalk interactive cards (PROTOCOLS.md C.5), and clicks back.

The card template (``[dingtalk] card_template_id``, built once on DingTalk's card
platform) renders these variables, all strings as DingTalk requires:

- ``title``, ``body``, ``link``;
- ``fields``: JSON list of ``{"label", "value"}``;
- ``buttons``: JSON list of ``{"id", "text", "style", "params"}``; a click returns the
  button's ``params`` (and the form's values) with ``actionIds: [id]``;
- ``choice``: JSON ``{"key", "title", "options": [{"id", "text"}]}`` or ``""``: a
  single-choice form field named ``key``;
- ``closed``: ``""``, or the text shown when the card is finished (buttons greyed out).

DingTalk does not document how it signs an HTTP card callback, so every button's
params carry our own token: an HMAC binding the card, the action, its value and the
user the card was sent to. A click whose token does not verify for the clicking user
is refused before anything is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence

from bot.chat.events import CardAction
from bot.chat.ingress import json_object
from bot.outbound import Card, CardUpdate

ACTION, VALUE, TOKEN = "action", "value", "token"  # our keys in a button's params
_LABEL = b"shuangsui/dingtalk-card-action/v1"
_STYLE = {"primary": "primary", "secondary": "default", "danger": "danger"}


class ForgedAction(Exception):
    """A card callback whose token is missing or not ours for this user."""


def action_keys(secrets: Sequence[str]) -> list[bytes]:
    """HMAC keys for action tokens from our own secrets (``[security] keys``; the first
    signs, all verify, so rotating them leaves cards already sent working)."""
    return [hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest() for secret in secrets]


def action_token(key: bytes, card_id: str, action: str, value: str, user: str) -> str:
    message = "\x1f".join((card_id, action, value, user)).encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()[:24]).decode("ascii")


def card_params(card: Card, *, user: str, key: bytes, link: str) -> dict[str, str]:
    """The ``cardParamMap`` of ``card`` as sent to ``user``."""
    buttons = list(card.buttons) + ([card.submit] if card.submit else [])
    rendered = [
        {"id": f"b{n}", "text": b.label, "style": _STYLE.get(b.style, "default"),
         "params": {ACTION: b.action, VALUE: b.value, TOKEN: action_token(key, card.card_id, b.action, b.value, user)}}
        for n, b in enumerate(buttons)
    ]
    choice = ""
    if card.choice:
        choice = _json({"key": card.choice.question, "title": card.choice.title,
                        "options": [{"id": i, "text": label} for i, label in card.choice.options]})
    return {"title": card.title, "body": card.body, "link": link,
            "fields": _json([{"label": k, "value": v} for k, v in card.fields]),
            "buttons": _json(rendered), "choice": choice, "closed": card.closed or ""}


def update_params(update: CardUpdate, *, user: str, key: bytes, link: str) -> dict[str, str]:
    """What a card update sets: the card greyed out with ``closed``, or replaced."""
    if update.card is None:
        return {"closed": update.closed}
    return {**card_params(update.card, user=user, key=key, link=link), "closed": update.closed}


def card_action(payload: dict, keys: Sequence[bytes]) -> tuple[str, CardAction]:
    """The clicking user and their click, from a card callback (C.5).

    Raises:
        ValueError: not a card callback.
        ForgedAction: the button's token is not ours for this card, action and user.
    """
    card_id, user, content = payload.get("outTrackId"), payload.get("userId"), payload.get("content")
    if not (isinstance(card_id, str) and card_id and isinstance(user, str) and user and isinstance(content, str)):
        raise ValueError("no outTrackId, userId or content")
    private = json_object(content).get("cardPrivateData")  # NotStorable is a ValueError
    params = private.get("params") if isinstance(private, dict) else None
    if not isinstance(params, dict) or not all(isinstance(v, str | list) for v in params.values()):
        raise ValueError("no params")
    action, value, token = (params.get(k) for k in (ACTION, VALUE, TOKEN))
    if not (isinstance(action, str) and isinstance(value, str) and isinstance(token, str)):
        raise ForgedAction()
    if not any(hmac.compare_digest(token.encode(), action_token(k, card_id, action, value, user).encode())
               for k in keys):
        raise ForgedAction()
    choices = {name: ([answer] if isinstance(answer, str) else [str(a) for a in answer])
               for name, answer in params.items() if name not in (ACTION, VALUE, TOKEN)}
    return user, CardAction(card_id=card_id, action=action, value=value, choices=choices)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
