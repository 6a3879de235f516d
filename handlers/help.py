"""帮助 / help: what this person may do, each with one example (SPEC §5)."""

from bot.chat.context import Context
from bot.chat.router import EVERYONE, Route, Router
from bot.texts import say

router = Router()
ROUTES: list[Route] = []  # every command of the bot, filled in by handlers.router()


@router.command("帮助", "help", roles=EVERYONE)
def show_help(ctx: Context) -> None:
    allowed = [route for route in ROUTES
               if not route.roles or any(ctx.identity.has(role) for role in route.roles)]
    ctx.reply(say("help", "commands", names=[route.names for route in allowed], chat=ctx.event.chat))
