"""Refusals: a request that cannot be carried out, with the reason a person reads.

Shared vocabulary of every layer (rules, storage, chat, handlers, CLI): it imports
nothing of ours but the texts.
"""

from typing import Any

from bot.texts import say


class Refusal(Exception):
    """Nothing was changed; ``text()`` says why and what to do (templates/batches.j2)."""

    def __init__(self, message: str, **values: Any) -> None:
        super().__init__(message)
        self.message, self.values = message, values

    def text(self) -> str:
        return say("batches", self.message, **self.values)
