"""The bot's features, one module each; ``router()`` joins their routes."""

from bot.chat.router import Router


def router() -> Router:
    """Every command and card action of the bot."""
    from handlers import batches, conversation, help, results, tasks

    joined = Router()
    for feature in (help, batches, tasks, results, conversation):
        joined.include(feature.router)
    help.ROUTES[:] = joined.routes()  # (each app builds the router; the list is replaced, not extended)
    return joined
