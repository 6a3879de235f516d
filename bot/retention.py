"""The retention job (``storage.retention``), run by each instance's scheduler: hourly,
safe on several instances at once."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from bot.clock import now
from bot.settings import Settings
from storage.db import transaction
from storage.retention import Purged, purge

log = logging.getLogger(__name__)

EVERY_MINUTES = 60


def run_once(engine: Engine, settings: Settings) -> Purged | None:
    """One run as of now; None when another instance was running it."""
    with transaction(engine) as session:
        done = purge(session, now(), settings.retention.days)
    if done and (done.blanked or done.outbox or done.console):
        log.info("retention: %d deliveries blanked, %d sent messages and %d console messages deleted",
                 done.blanked, done.outbox, done.console)
    return done
