"""What a handler gets: the event, who sent it, a session, and ways to answer.

Everything a handler writes — its state change, its answers, the cards it sends and
the audit entry — commits in one transaction together with marking the event done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlmodel import Session

from bot import outbox_keys
from bot.chat.events import CardAction, Event, Media
from bot.chat.identity import Identity
from bot.outbound import CARD, USER, Card, CardUpdate, Destination, Message, Text
from bot.outbox_keys import Key
from bot.settings import Settings
from storage import outbox


class Menu(Protocol):
    """What a handler knows of the router that dispatched it (帮助, suggestions)."""

    def names(self, identity: Identity | None = None) -> list[tuple[str, ...]]:
        """Each command's names, in registration order: those ``identity`` may use, or all."""
        ...

    def private(self) -> set[str]:
        """The commands used only in the private chat (SPEC §5), by their first name."""
        ...


@dataclass
class Context:
    session: Session
    settings: Settings
    event: Event
    identity: Identity
    now: datetime
    menu: Menu | None = None  # the router that dispatched the event (``Router.dispatch`` sets it)
    prepared: object = None  # what the command's ``prepare`` found before the transaction, if it has one
    _replies: list[Message] = field(default_factory=list)
    _flushed: int = 0

    @property
    def actor_label(self) -> str:
        return self.identity.actor.label

    @property
    def clicked(self) -> CardAction:
        """The click a card button's handler answers."""
        assert self.event.action is not None, "the router runs a button's handler for a click only"
        return self.event.action

    @property
    def media(self) -> Media:
        """The photo, video or file a media handler (or media answer) takes."""
        assert self.event.media is not None, "the router runs media handlers for media only"
        return self.event.media

    def reply(self, message: str | Message) -> None:
        """Answer the event where it came from; several texts are joined into one message
        (a group reply route can be used once)."""
        self._replies.append(Text(message) if isinstance(message, str) else message)

    def send(self, destination: Destination, message: Message, key: Key | str) -> bool:
        """Queue a message elsewhere; ``key`` makes it once-only across retries."""
        return outbox.queue(self.session, destination, message, key)

    def send_private(self, platform_user: str, message: Message, key: Key | str) -> bool:
        return self.send(Destination(self.event.platform, USER, platform_user), message, key)

    def close_card(self, closed: str, card: Card | None = None) -> None:
        """Finish the clicked card: its buttons grey out with ``closed`` (or it is replaced)."""
        action = self.event.action
        if action is None:
            return
        update = CardUpdate(action.card_id, closed, action.update_token, card)
        self.send(Destination(self.event.platform, CARD, self.event.sender), update,
                  outbox_keys.clicked_card(self.event.platform, self.event.delivery_key))

    def flush(self) -> None:
        """Queue the replies collected so far (the pipeline calls it after the handler; a
        handler calls it first when what it sends next must come after its answer)."""
        texts = [m.text for m in self._replies if isinstance(m, Text)]
        others = [m for m in self._replies if not isinstance(m, Text)]
        platform, key = self.event.platform, self.event.delivery_key
        if texts:
            self.send(self.event.reply_to, Text("\n\n".join(texts)), outbox_keys.reply(platform, key, self._flushed))
        for n, message in enumerate(others):
            self.send(self.event.reply_to, message, outbox_keys.reply(platform, key, self._flushed, n))
        if self._replies:
            self._flushed += 1
        self._replies.clear()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A step whose every effect is undone if it raises: its writes and queued messages
        (a database savepoint) and the replies it collected (the router runs each handler
        in one, so a refusal is the whole answer)."""
        replies, flushed = list(self._replies), self._flushed
        try:
            with self.session.begin_nested():
                yield
        except BaseException:
            self._replies[:], self._flushed = replies, flushed
            raise
