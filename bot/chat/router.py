"""Routing events to handlers, and the contract every handler runs under.

Each feature module in ``handlers/`` has its own ``Router``: its commands (Chinese name,
English alias, the roles that may use them), and the card buttons and answers to the
questions it asks, each belonging to one of its commands. The routers are joined into
one (``handlers.router``), whose ``dispatch`` decides what answers an event:

- someone without a role is refused (audited) before anything else;
- a photo or file is the answer to the question asked (evidence for a task), or goes to
  the media handler;
- a command or card button: private-only ones only in private, roles before arguments
  (SPEC §1), a refused role audited;
- other text: the answer to the question the bot asked, or the fallback (help, a
  suggestion).

Every handler runs inside a savepoint: a ``Refusal`` raised anywhere in it undoes what it
wrote and is answered by ``refuse`` in the name of the command it belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.chat import pending
from bot.chat.context import Context
from bot.chat.events import Event
from bot.chat.identity import Identity
from bot.refusal import Refusal
from bot.texts import say
from storage import audit
from storage.models import PendingInput

Handler = Callable[..., None]  # handler(ctx); an answer's handler(ctx, asked)
EVERYONE: frozenset[str] = frozenset()  # any known user (someone holding at least one role)


@dataclass(frozen=True)
class Route:
    """A command, card button or answer, the roles that may use it, and its handler."""

    names: tuple[str, ...]  # a command's words; a button's action; the kind of question answered
    roles: frozenset[str]
    handler: Handler
    private_only: bool = False
    command: str = ""  # the command a button or an answer belongs to
    media: bool = False  # an answer that is a photo or file, not text
    #: slow read-only work done before the write transaction, in a reading session
    #: (``Router.prepare``); the handler finds its result in ``ctx.prepared``
    prepare: Callable[[Context], object] | None = None

    @property
    def name(self) -> str:
        """The name refusals give: the command's, also for its buttons and answers."""
        return self.command or self.names[0]

    def allows(self, identity: Identity) -> bool:
        return not self.roles or any(identity.has(role) for role in self.roles)


class Router:
    """Commands (by name, case-insensitive), card buttons and answers of one feature, or of all."""

    def __init__(self) -> None:
        self.commands: dict[str, Route] = {}
        self.actions: dict[str, Route] = {}
        self.answers: dict[str, Route] = {}  # by the kind of question asked (``pending.ask``)
        self._fallback: Route | None = None  # text that is no command and no answer
        self._media: Route | None = None  # a photo, video or file nobody asked for

    # ----- registration ------------------------------------------------------------------------------------------

    def command(self, *names: str, roles: Iterable[str] = EVERYONE, private_only: bool = False,
                prepare: Callable[[Context], object] | None = None) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            route = Route(names, frozenset(roles), handler, private_only, prepare=prepare)
            for name in names:
                _add(self.commands, name.lower(), route, "command")
            return handler
        return register

    def action(self, name: str, *, of: str, roles: Iterable[str] = EVERYONE) -> Callable[[Handler], Handler]:
        """A card button of the command ``of`` (any of its names, registered before)."""
        def register(handler: Handler) -> Handler:
            route = Route((name,), frozenset(roles), handler, command=self._command(of, f"card action {name!r}"))
            _add(self.actions, name, route, "card action")
            return handler
        return register

    def answer(self, kind: str, *, of: str, roles: Iterable[str] = EVERYONE,
               media: bool = False) -> Callable[[Handler], Handler]:
        """The answer to a question of ``kind`` asked for the command ``of``: the next text
        in the private chat, or (``media``) the photos and files sent next, in any chat.
        The handler gets the question: ``handler(ctx, asked)``."""
        def register(handler: Handler) -> Handler:
            route = Route((kind,), frozenset(roles), handler, private_only=not media,
                          command=self._command(of, f"answer to {kind!r}"), media=media)
            _add(self.answers, kind, route, "answer to")
            return handler
        return register

    def fallback(self, handler: Handler) -> Handler:
        """Text that is no command and answers no question (one per bot)."""
        self._fallback = _one(self._fallback, Route(("fallback",), EVERYONE, handler), "fallback")
        return handler

    def media(self, handler: Handler) -> Handler:
        """A photo, video or file that answers no question (one per bot)."""
        self._media = _one(self._media, Route(("media",), EVERYONE, handler), "media")
        return handler

    def include(self, other: Router) -> None:
        for name, route in other.commands.items():
            _add(self.commands, name, route, "command")
        for name, route in other.actions.items():
            _add(self.actions, name, route, "card action")
        for kind, route in other.answers.items():
            _add(self.answers, kind, route, "answer to")
        if other._fallback is not None:
            self._fallback = _one(self._fallback, other._fallback, "fallback")
        if other._media is not None:
            self._media = _one(self._media, other._media, "media")

    def _command(self, name: str, what: str) -> str:
        route = self.commands.get(name.lower())
        if route is None:
            raise ValueError(f"{what} belongs to no command {name!r} registered before it")
        return route.name

    # ----- lookup and dispatch -----------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Every command once, in registration order."""
        return list(dict.fromkeys(self.commands.values()))

    def names(self, identity: Identity | None = None) -> list[tuple[str, ...]]:
        """Each command's names, in registration order: those ``identity`` may use, or all."""
        return [route.names for route in self.routes() if identity is None or route.allows(identity)]

    def private(self) -> set[str]:
        """The commands used only in the private chat (SPEC §5), by their first name."""
        return {route.names[0] for route in self.routes() if route.private_only}

    def find(self, ctx: Context) -> tuple[Route | None, str]:
        """The route an event asks for, and the command word as typed (``""`` for clicks)."""
        return self._find(ctx.event)

    def _find(self, event: Event) -> tuple[Route | None, str]:
        if event.action is not None:
            return self.actions.get(event.action.action), ""
        word = command_word(event.text or "")
        return self.commands.get(word.lower()), word

    def prepares(self, event: Event) -> bool:
        """Whether the event's command has slow read-only work to do first (``prepare``)."""
        route, _ = self._find(event)
        return route is not None and route.prepare is not None and event.media is None

    def prepare(self, ctx: Context) -> object:
        """The command's slow read-only work, done before its write transaction (``ctx``
        holds a reading session), for a sender it allows; None when there is none or it
        was refused (the handler then meets the refusal itself, in its transaction)."""
        route, _ = self._find(ctx.event)
        if (route is None or route.prepare is None or ctx.event.media is not None or not route.allows(ctx.identity)
                or (route.private_only and ctx.event.chat != "private")):
            return None
        try:
            return route.prepare(ctx)
        except Refusal:
            return None

    def dispatch(self, ctx: Context) -> None:
        """Decide what answers the event and run it (SPEC §1: roles before arguments)."""
        ctx.menu = self
        route, word = self.find(ctx)
        identity = ctx.identity
        if not identity.roles:
            tried = word or (ctx.event.action.action if ctx.event.action else "")
            audit.record(ctx.session, identity.actor.label, "refused", tried, reason="no role")
            ctx.reply(say("chat", "no_role", tried=echo(ctx, tried)))
            return
        if ctx.event.media is not None:
            answer = self._answer(ctx)
            if answer is not None:
                self._run_answer(ctx, *answer)
                return
            if self._media is not None:
                self._run(self._media, ctx)
                return
        if route is None and ctx.event.action is not None:
            ctx.reply(say("chat", "unknown_action"))
            return
        if route is None:
            answer = self._answer(ctx) if word else None
            if answer is not None:
                self._run_answer(ctx, *answer)
            elif self._fallback is not None:
                self._run(self._fallback, ctx)
            else:
                ctx.reply(say("chat", "unknown_command", word=echo(ctx, word), suggestion=None))
            return
        if route.private_only and ctx.event.chat != "private":
            ctx.reply(say("chat", "private_only", command=route.names[0], platform=ctx.event.platform))
            return
        if not route.allows(identity):  # named as invoked: a command's name, a button's action
            audit.record(ctx.session, identity.actor.label, "refused", route.names[0], reason="role",
                         needs=sorted(route.roles))
            ctx.reply(say("chat", "needs_role", command=route.names[0], roles=sorted(route.roles)))
            return
        self._run(route, ctx)

    def _answer(self, ctx: Context) -> tuple[Route, PendingInput] | None:
        """The answer route for the question the bot asked the sender, and the question, if the event can answer it."""
        asked = pending.current(ctx.session, ctx.event.platform, ctx.event.sender, ctx.now)
        if asked is None:
            return None
        route = self.answers.get(asked.kind)
        if route is None or route.media != (ctx.event.media is not None) or not route.allows(ctx.identity):
            return None
        if route.private_only and ctx.event.chat != "private":
            return None
        return route, asked

    def _run_answer(self, ctx: Context, route: Route, asked: PendingInput) -> None:
        if not self._run(route, ctx, asked) and not route.media:
            # A typed answer that is refused is not asked for again: the next message is a
            # command again (photos for a task keep coming).
            pending.clear(ctx.session, ctx.event.platform, ctx.event.sender)

    @staticmethod
    def _run(route: Route, ctx: Context, *args: PendingInput) -> bool:
        """Run the handler in a savepoint; a refusal undoes its writes and replies and is answered.
        Whether it ran without a refusal."""
        try:
            with ctx.savepoint():
                route.handler(ctx, *args)
        except Refusal as refusal:
            refuse(ctx, refusal, route.name)
            return False
        return True


def _add(table: dict[str, Route], key: str, route: Route, what: str) -> None:
    if key in table:
        raise ValueError(f"{what} {key!r} registered twice")
    table[key] = route


def _one(current: Route | None, new: Route, what: str) -> Route:
    if current is not None:
        raise ValueError(f"a second {what} handler: {new.handler.__name__!r} after {current.handler.__name__!r}")
    return new


#: Refusals of authority, audited: not on the task, not the deciding unit, deciding on
#: one's own work (细则第十四条), transferring another office's case.
AUTHORITY = frozenset({"not_on_task", "not_your_unit", "own_result", "not_lead_office", "not_receiving_unit",
                       "not_planning_office"})


def refuse(ctx: Context, refusal: Refusal, command: str) -> None:
    """Say why; for a malformed request also the right form; audit a refusal of authority."""
    text = refusal.text()
    if refusal.message in ("bad_arguments", "missing_argument"):
        text = f"{text}\n{say('help', 'usage', name=command)}"
    if refusal.message in AUTHORITY:
        audit.record(ctx.session, ctx.actor_label, "refused", command, reason=refusal.message,
                     **{k: str(v) for k, v in refusal.values.items()})
    ctx.reply(text)


ECHO_CHARS = 20  # of a typed word said back in a group


def echo(ctx: Context, word: str) -> str:
    """A typed word as it may be said back. Group answers are markdown (WeCom's AI bot):
    there ASCII punctuation becomes its full-width form, so ``[点我](http://evil)``,
    ``**``, ``<font …>`` or a heading come back as inert text, never as a link or markup
    under the bot's name; and a long word is cut. Private answers are plain text."""
    if ctx.event.chat == "private":
        return word
    inert = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and not c.isalnum() else c for c in word)
    inert = "".join(c if c.isprintable() else "\ufffd" for c in inert)
    return inert if len(inert) <= ECHO_CHARS else inert[:ECHO_CHARS] + "…"


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
