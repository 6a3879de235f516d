"""Engine and sessions, for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import Engine, event
from sqlmodel import Session, create_engine


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine whose transactions serialise writers the same way on both databases.

    On SQLite every transaction starts ``BEGIN IMMEDIATE``: it takes the write lock up
    front, so two processes never deadlock upgrading a read lock (the audit chain and
    every claim rely on this), and a busy database is waited for, not failed.
    """
    # hide_parameters: a database error never carries the values (message text, sealed
    # secrets, tokens) into an exception message or a log line.
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, hide_parameters=True,
                               connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, hide_parameters=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # A reading transaction (``reading``) takes no write lock: in WAL mode it never
        # holds up the writers (the acknowledgement of a callback is one).
        connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get(READING) else "BEGIN IMMEDIATE")


READING = "shuangsui_reading"


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A session that only reads: a consistent snapshot, and on SQLite no write lock."""
    with Session(engine.execution_options(**{READING: True}), expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


@cache
def engine_for(url: str) -> Engine:
    """One engine per URL per process."""
    return make_engine(url)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together at the end, or not at all."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
