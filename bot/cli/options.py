"""What several commands share: argument types, the database engine, who acts, and the
moment a command acts as of."""

from __future__ import annotations

import argparse
import getpass
from datetime import datetime
from typing import TypeAlias

from sqlalchemy import Engine

from bot import clock
from bot.settings import Settings
from bot.texts import say
from storage.db import engine_for
from storage.sealing import Sealer

#: What each family of commands adds its parser to (``parser.add_subparsers()``).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def instant(value: str) -> datetime:
    """An ISO 8601 instant; without an offset it is bureau time (SPEC §3)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(say("cli", "bad_instant", value=value)) from None
    return moment


def engine_of(settings: Settings) -> Engine:
    """The database, carrying the one Sealer of ``[security] keys``."""
    return engine_for(settings.database.url, Sealer(settings.security.keys))


def operator() -> str:
    """The local operator, as the audit log names them: someone who already holds the
    configuration and the database."""
    return f"cli:{getpass.getuser()}"


def as_of(settings: Settings, moment: datetime | None) -> datetime:
    """``--now`` in bureau time when it names no offset; the clock's now without it."""
    moment = moment or clock.now()
    return clock.typed_instant(moment, settings.bureau.timezone)
