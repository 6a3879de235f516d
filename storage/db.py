"""Engine and sessions, for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from functools import cache
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, create_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.sealing import Sealer, attach, sealer_of

BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer waits for another process's transaction


def make_engine(url: str, *, echo: bool = False, sealer: Sealer | None = None) -> Engine:
    """An engine whose transactions serialise writers the same way on both databases,
    carrying ``sealer`` (none: no key, ``storage.sealing``) for what is sealed at rest.

    On SQLite every transaction starts ``BEGIN IMMEDIATE``: it takes the write lock up
    front, so two processes never deadlock upgrading a read lock (the audit chain and
    every claim rely on this), and a busy database is waited for, not failed.
    Writers of one process queue for it in a lock (``writer_lock``) before they ask.
    """
    # hide_parameters: a database error never carries the values (message text, sealed
    # secrets, tokens) into an exception message or a log line.
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, hide_parameters=True,
                               connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        _WRITERS[engine.pool] = threading.RLock()
    else:
        engine = create_engine(url, echo=echo, pool_pre_ping=True, hide_parameters=True)
    attach(engine, sealer or Sealer())
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            _record.info[SYNCHRONOUS] = "NORMAL"
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A reading transaction (``reading``) takes no write lock: in WAL mode it never
        # holds up the writers (the acknowledgement of a callback is one).
        options = connection.get_execution_options()
        _synchronous(connection, "FULL" if options.get(DURABLE) else "NORMAL")
        if options.get(READING):
            connection.exec_driver_sql("BEGIN")
        elif options.get(NOWAIT):  # ``transaction_now``: fail at once if another process writes
            connection.exec_driver_sql("PRAGMA busy_timeout=0")
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            finally:
                connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


READING = "shuangsui_reading"
NOWAIT = "shuangsui_nowait"
DURABLE = "shuangsui_durable"
SYNCHRONOUS = "shuangsui_synchronous"  # a SQLite connection's current ``PRAGMA synchronous``


def _synchronous(connection: Connection, level: str) -> None:
    """Set a file database connection's ``PRAGMA synchronous`` before its transaction
    begins (when it differs: a PRAGMA is a statement)."""
    info = connection.connection.info
    if SYNCHRONOUS in info and info[SYNCHRONOUS] != level:
        connection.exec_driver_sql(f"PRAGMA synchronous={level}")
        info[SYNCHRONOUS] = level


def durable(engine: Engine) -> Engine:
    """``engine`` whose commits are on disk before they return (SQLite: ``PRAGMA
    synchronous=FULL`` for its transactions; PostgreSQL commits so by default).

    The intake's: a delivery is acknowledged once committed, and the platforms do not
    send it again (DingTalk never resends a robot message), so a power loss must not undo
    it. Other writes keep WAL's ``NORMAL`` (on disk at the next checkpoint or the next
    durable commit): what they lose is work redone from the stored deliveries and the
    outbox, whose sends are idempotent (README, operations)."""
    return engine.execution_options(**{DURABLE: True})

# SQLite has one writer at a time. A writer that finds the file locked sleeps in SQLite's
# busy handler (1, 2, 5, 10 … 100 ms) and tries again, so threads of one process that
# contend that way leave the database idle between them. They queue in this lock
# instead, and each starts the moment the one before commits; the busy handler is left
# for other processes (a CLI command beside ``serve``). Keyed by pool: an engine with
# other execution options shares its database.
_WRITERS: WeakKeyDictionary[object, threading.RLock] = WeakKeyDictionary()
_NO_LOCK = nullcontext()


def writer_lock(engine: Engine) -> AbstractContextManager:
    """The lock this process's writers of ``engine``'s database queue in (SQLite), or
    none (PostgreSQL locks rows, not the database)."""
    return _WRITERS.get(engine.pool, _NO_LOCK)


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A session that only reads: a consistent snapshot, and on SQLite no write lock."""
    with Session(engine.execution_options(**{READING: True}), expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


def loop_engine(engine: Engine) -> AsyncEngine | None:
    """``engine``'s PostgreSQL database for writes an event loop awaits itself, or None
    (SQLite: its writes are local, and ``transaction_now`` makes them on the loop).

    A thread that waits on the network gives up the GIL at every round trip and, while
    the loop is busy, waits up to the interpreter's switch interval (5 ms) to get it
    back; awaited on the loop, a round trip costs the loop nothing."""
    if engine.dialect.name != "postgresql":
        return None
    awaited = create_async_engine(engine.url, pool_pre_ping=True, hide_parameters=True, pool_size=2, max_overflow=2)
    attach(awaited.sync_engine, sealer_of(engine))
    return awaited


@asynccontextmanager
async def loop_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """``transaction`` for an event loop: commits together at the end, or not at all.
    Synchronous storage functions run in it with ``await session.run_sync(f, …)``."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        yield session


@cache
def engine_for(url: str, sealer: Sealer) -> Engine:
    """One engine per database and keys per process (sealers with the same keys are equal)."""
    return make_engine(url, sealer=sealer)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together at the end, or not at all."""
    with writer_lock(engine), Session(engine, expire_on_commit=False) as session, _all_or_nothing(session):
        yield session


@contextmanager
def _all_or_nothing(session: Session) -> Iterator[None]:
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


class Busy(Exception):
    """Another writer holds the database: ``transaction_now`` wrote nothing."""


@contextmanager
def transaction_now(engine: Engine) -> Iterator[Session]:
    """``transaction`` on SQLite, begun only if no writer of this process or another is
    ahead, so that the caller never waits (an event loop may call it).

    Raises:
        Busy: a writer is ahead (nothing was written; use ``transaction`` elsewhere), or
            the database is not SQLite (its writes wait on the network).
    """
    lock = _WRITERS.get(engine.pool)  # ``writer_lock``; none but on SQLite
    if lock is None or not lock.acquire(blocking=False):
        raise Busy
    try:
        with Session(engine.execution_options(**{NOWAIT: True}), expire_on_commit=False) as session:
            try:
                session.connection()  # BEGIN IMMEDIATE, or "database is locked" at once
            except OperationalError as exc:
                if getattr(exc.orig, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED"):
                    raise Busy from None
                raise
            with _all_or_nothing(session):
                yield session
    finally:
        lock.release()
