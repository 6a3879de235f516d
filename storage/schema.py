"""Schema migrations through Alembic, driven from the bot's own engine."""

from __future__ import annotations

import warnings
from functools import cache
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


def alembic_config(engine: Engine) -> Config:
    config = Config(str(files("storage.migrations") / "alembic.ini"))
    config.set_main_option("script_location", str(files("storage.migrations")))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> None:
    """Create or migrate the schema to the newest revision."""
    command.upgrade(alembic_config(engine), "head")


def check(engine: Engine) -> None:
    """Raise if the models and the newest migration disagree (``alembic check``).

    Expression indexes (``lower(wecom_userid)``) cannot be compared by autogenerate;
    migration 0005 writes them by hand, so its warning about them is expected.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="autogenerate skipping metadata-specified expression-based index")
        command.check(alembic_config(engine))


@cache
def head_revision() -> str | None:
    """The newest migration shipped with this code (read once: it cannot change while running)."""
    config = Config()
    config.set_main_option("script_location", str(files("storage.migrations")))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_at_head(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
