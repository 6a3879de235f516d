"""帮助 / help: what this person may do, each with one example (SPEC §5); and for text that
is no command, the help (an empty message) or the closest command's name."""

import difflib

from bot.chat.context import Context
from bot.chat.router import EVERYONE, Route, Router, command_word
from bot.texts import say

router = Router()


@router.command("帮助", "help", roles=EVERYONE)
def show_help(ctx: Context) -> None:
    allowed = [route for route in _routes(ctx) if route.allows(ctx.identity)]
    ctx.reply(say("help", "commands", names=[route.names for route in allowed], chat=ctx.event.chat))


@router.fallback
def help_or_suggest(ctx: Context) -> None:
    word = command_word(ctx.event.text or "")
    if not word:
        show_help(ctx)
        return
    names = [name for route in _routes(ctx) for name in route.names]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.3) or difflib.get_close_matches(
        word.lower(), [n.lower() for n in names], n=1, cutoff=0.5)
    ctx.reply(say("chat", "unknown_command", word=word, suggestion=close[0] if close else None))


def _routes(ctx: Context) -> list[Route]:
    """The commands of the router that dispatched the event."""
    assert ctx.router is not None, "a handler runs through Router.dispatch"
    return ctx.router.routes()
