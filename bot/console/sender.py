"""The console's way out: what the bot sends is written where the page reads it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict

from sqlalchemy import Engine

from bot.chat.dispatcher import Outcome, Sent
from bot.outbound import CARD, USER, Card, CardUpdate, Destination, Message, kind_of
from storage.db import transaction
from storage.models import ConsoleMessage
from storage.outbox import RateLimit

GROUP_CONVERSATION = "group"


class ConsoleSender:
    platform = "console"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def limits(self, rate_key: str) -> Sequence[RateLimit]:
        return ()

    async def send(self, destination: Destination, message: Message, *, in_doubt: bool) -> Outcome:
        await asyncio.to_thread(self._write, destination, message)
        # The handle with which the card is updated later (WeCom: its response code).
        return Sent({"update_token": message.card_id} if isinstance(message, Card) else {})

    def _write(self, destination: Destination, message: Message) -> None:
        conversation = destination.address if destination.kind in (USER, CARD) else GROUP_CONVERSATION
        payload = asdict(message)
        if isinstance(message, CardUpdate):
            payload.pop("update_token")
        with transaction(self.engine) as session:
            session.add(ConsoleMessage(conversation=conversation, author="bot", kind=kind_of(message),
                                       payload=payload))
