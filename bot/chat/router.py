"""Routing events to handlers: commands by any of their names, card clicks by action.

Each feature module in ``handlers/`` has its own ``Router`` and registers its commands
with their Chinese name, English alias and the roles that may use them; the routers
are joined into one (``handlers.router``). Roles are checked before any argument is
parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.chat.context import Context

Handler = Callable[[Context], None]
EVERYONE = frozenset()  # any known user (someone holding at least one role)


@dataclass(frozen=True)
class Route:
    """A command or card action, the roles that may use it, and its handler."""

    names: tuple[str, ...]
    roles: frozenset[str]
    handler: Handler
    private_only: bool = False

    @property
    def name(self) -> str:
        return self.names[0]


class Router:
    """Commands (by name, case-insensitive) and card actions of one feature, or of all."""

    def __init__(self) -> None:
        self.commands: dict[str, Route] = {}
        self.actions: dict[str, Route] = {}
        self.fallback: Handler | None = None  # text that is no command (e.g. an answer the bot asked for)
        self.media: Handler | None = None  # a photo, video or file

    def command(self, *names: str, roles=EVERYONE, private_only: bool = False) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            route = Route(names, frozenset(roles), handler, private_only)
            for name in names:
                if name.lower() in self.commands:
                    raise ValueError(f"command {name!r} registered twice")
                self.commands[name.lower()] = route
            return handler
        return register

    def action(self, name: str, roles=EVERYONE) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if name in self.actions:
                raise ValueError(f"card action {name!r} registered twice")
            self.actions[name] = Route((name,), frozenset(roles), handler)
            return handler
        return register

    def include(self, other: Router) -> None:
        for name, route in other.commands.items():
            if name in self.commands:
                raise ValueError(f"command {name!r} registered twice")
            self.commands[name] = route
        for name, route in other.actions.items():
            if name in self.actions:
                raise ValueError(f"card action {name!r} registered twice")
            self.actions[name] = route
        self.fallback = other.fallback or self.fallback
        self.media = other.media or self.media

    def routes(self) -> list[Route]:
        """Every command once, in registration order."""
        return list(dict.fromkeys(self.commands.values()))

    def find(self, ctx: Context) -> tuple[Route | None, str]:
        """The route an event asks for, and the command word as typed (``""`` for clicks)."""
        if ctx.event.action is not None:
            return self.actions.get(ctx.event.action.action), ""
        word = command_word(ctx.event.text or "")
        return self.commands.get(word.lower()), word


_SPLIT = re.compile(r"[\s\u3000]+")


def command_word(text: str) -> str:
    """The first word of a message, without a leading slash."""
    text = text.strip()
    word = _SPLIT.split(text, maxsplit=1)[0] if text else ""
    return word.lstrip("/／")


_MENTION = re.compile(r"^(?:\s*@\S+)+\s*")


def strip_mentions(text: str) -> str:
    """``@双随 抽取 批次=…`` → ``抽取 批次=…``."""
    return _MENTION.sub("", text.strip()).strip()
