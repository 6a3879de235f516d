"""帮助 / help: what this person may do, each with one example (SPEC §5); and for text that
is no command, the help (an empty message) or the closest command's name."""

import difflib
from functools import lru_cache

from bot.chat.context import Context, Menu
from bot.chat.router import EVERYONE, Router, command_word, echo
from bot.texts import say

router = Router()


@router.command("帮助", "help", roles=EVERYONE)
def show_help(ctx: Context) -> None:
    menu = _menu(ctx)
    ctx.reply(_commands(tuple(menu.names(ctx.identity)), ctx.event.chat, frozenset(menu.private())))


@lru_cache(maxsize=256)
def _commands(names: tuple[tuple[str, ...], ...], chat: str, private: frozenset[str]) -> str:
    """The list of commands, rendered once per menu a person can see (the help is asked
    often, and its text depends on these alone)."""
    return say("help", "commands", names=list(names), chat=chat, private=set(private))


@router.fallback
def help_or_suggest(ctx: Context) -> None:
    word = command_word(ctx.event.text or "")
    if not word:
        show_help(ctx)
        return
    names = [name for names in _menu(ctx).names() for name in names]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.3) or difflib.get_close_matches(
        word.lower(), [n.lower() for n in names], n=1, cutoff=0.5)
    ctx.reply(say("chat", "unknown_command", word=echo(ctx, word), suggestion=close[0] if close else None))


def _menu(ctx: Context) -> Menu:
    """The router that dispatched the event."""
    assert ctx.menu is not None, "a handler runs through Router.dispatch"
    return ctx.menu
