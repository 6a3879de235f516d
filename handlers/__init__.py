"""The bot's features, one module each; ``router()`` joins their routes."""

from bot.chat.router import Router


def router() -> Router:
    """Every command, card button and answer of the bot (help first: it lists them in this order)."""
    from handlers import batches, followups, help, operations, results, staffing, tasks

    joined = Router()
    for feature in (help, batches, tasks, results, staffing, followups, operations):
        joined.include(feature.router)
    return joined
