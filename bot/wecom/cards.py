"""Neutral cards rendered as WeCom ``template_card`` (PROTOCOLS.md B.3, B.5).

A card with buttons or a choice is a ``button_interaction`` card; one without is a
``text_notice``. Button keys carry ``action:value`` and come back as ``EventKey``.
"""

from __future__ import annotations

import re

from bot.chat.events import CardAction
from bot.outbound import Card, CardUpdate

MAX_FIELDS = 6  # horizontal_content_list
MAX_BUTTONS = 6
_STYLE = {"primary": 1, "secondary": 2, "danger": 3}
_TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")


def valid_card_id(card_id: str) -> bool:
    """WeCom's task_id rule: ``[0-9A-Za-z_-@]``, at most 128 bytes."""
    return bool(_TASK_ID.fullmatch(card_id))


def template_card(card: Card, *, source: str, link: str) -> dict:
    """The ``template_card`` object of a message/send body."""
    if not valid_card_id(card.card_id):
        raise ValueError(f"card id {card.card_id!r} is not a valid WeCom task_id")
    interactive = bool(card.buttons or card.choice)
    body: dict = {
        "card_type": "button_interaction" if interactive else "text_notice",
        "source": {"desc": source},
        "main_title": {"title": card.title[:36]},
        "task_id": card.card_id,
    }
    if card.body:
        body["sub_title_text"] = card.body
    fields = card.fields[:MAX_FIELDS]
    if fields:
        body["horizontal_content_list"] = [{"keyname": k, "value": v} for k, v in fields]
    extra = card.fields[MAX_FIELDS:]
    if extra:
        lines = "\n".join(f"{k}：{v}" for k, v in extra)
        body["sub_title_text"] = f"{body.get('sub_title_text', '')}\n{lines}".strip()
    if not interactive:
        body["card_action"] = {"type": 1, "url": link}
        return body
    if card.choice:
        body["button_selection"] = {
            "question_key": card.choice.question,
            "title": card.choice.title,
            "option_list": [{"id": option_id, "text": label} for option_id, label in card.choice.options],
        }
    buttons = list(card.buttons) + ([card.submit] if card.submit else [])
    body["button_list"] = [
        {"text": b.label, "style": _STYLE.get(b.style, 1), "type": 0, "key": button_key(b.action, b.value)}
        for b in buttons[:MAX_BUTTONS]
    ]
    if card.closed:
        body["replace_text"] = card.closed
    return body


def button_key(action: str, value: str) -> str:
    return f"{action}:{value}" if value else action


def card_action(task_id: str, event_key: str, choices: dict[str, list[str]], response_code: str) -> CardAction:
    """A click, back from ``template_card_event`` (B.4)."""
    action, _, value = event_key.partition(":")
    return CardAction(card_id=task_id, action=action, value=value, choices=choices, update_token=response_code)


def update_body(update: CardUpdate, *, agent_id: int, user: str, source: str, link: str) -> dict:
    """The update_template_card body (B.5): grey the buttons out, or replace the card."""
    body: dict = {"userids": [user], "agentid": agent_id, "response_code": update.update_token}
    if update.card is None:
        body["button"] = {"replace_name": update.closed}
    else:
        replacement = template_card(update.card, source=source, link=link)
        replacement["replace_text"] = update.closed
        body["template_card"] = replacement
    return body
