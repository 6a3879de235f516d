"""The rest of a conversation: answers to what the bot asked (a reason a card could not
take), photos and files for a task, and a helpful word for an unknown command."""

from __future__ import annotations

import difflib

from bot.chat import pending
from bot.chat.context import Context
from bot.chat.router import Router, command_word
from bot.texts import say
from handlers import help, results, tasks

router = Router()


def answer_or_suggest(ctx: Context) -> None:
    asked = pending.current(ctx.session, ctx.event.platform, ctx.event.sender, ctx.now)
    text = (ctx.event.text or "").strip()
    if asked is not None and asked.kind != "evidence" and ctx.event.chat == "private" and text:
        if asked.kind == "recusal_reason":
            pending.clear(ctx.session, ctx.event.platform, ctx.event.sender)
            tasks.do_recuse(ctx, asked.task_id, text)
        elif asked.kind == "return_reason":
            pending.clear(ctx.session, ctx.event.platform, ctx.event.sender)
            results.do_return(ctx, asked.data["result"], text)
        else:
            results.continue_result(ctx, asked)
        return
    word = command_word(text)
    names = [name for route in help.ROUTES for name in route.names]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.3) or difflib.get_close_matches(
        word.lower(), [n.lower() for n in names], n=1, cutoff=0.5)
    ctx.reply(say("chat", "unknown_command", word=word, suggestion=close[0] if close else None))


router.fallback = answer_or_suggest
router.media = tasks.attach_evidence
