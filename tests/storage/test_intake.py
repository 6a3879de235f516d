"""The intake's commit off the event loop (SQLite: on the intake thread): an acknowledged
delivery is durably stored before its request is answered, a failed commit answers every
request of its round with a 503 the platform retries, and a stop finishes the rounds taken."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from aiohttp import web
from sqlalchemy import event, text

from bot.chat.events import Event
from bot.chat.ingress import hand_over
from bot.chat.intake import GroupCommit
from bot.outbound import USER, Destination
from storage.db import reading


def _event(key: str) -> Event:
    return Event("wecom", key, "u", "private", Destination("wecom", USER, "u"), datetime.now(UTC), text="帮助")


def _stored(engine) -> list[str]:
    with reading(engine) as session:
        return list(session.execute(text("SELECT delivery_key FROM inbound_deliveries ORDER BY delivery_key"))
                    .scalars())


async def test_a_take_returns_only_once_its_row_is_committed(engine):
    """What ``take`` says was taken is in the database when it says so, seen from another
    connection; on SQLite the commit ran on the intake thread, in ``synchronous=FULL``."""
    intake = GroupCommit(engine)
    commits: list[str] = []
    writer = intake._loop_engine.sync_engine if intake._loop_engine is not None else engine

    @event.listens_for(writer, "commit")
    def _commit(connection) -> None:
        level = connection.exec_driver_sql("PRAGMA synchronous").scalar() if engine.dialect.name == "sqlite" else 2
        commits.append(f"{threading.current_thread().name}:{level}")

    try:
        for n in range(3):
            keys = [f"app:msg:{n}:{i}" for i in range(4)]
            assert await asyncio.gather(*(intake.take(_event(key)) for key in keys)) == [True] * 4
            assert set(keys) <= set(_stored(engine))  # visible the moment the takes return
    finally:
        await intake.close()
        event.remove(writer, "commit", _commit)
    assert commits
    if engine.dialect.name == "sqlite":
        assert all(c.startswith("intake") and c.endswith(":2") for c in commits), commits  # off the loop, FULL


async def test_a_failed_commit_answers_every_request_of_its_round_with_a_503(engine, caplog):
    """A commit that fails stores nothing: each request of the round is answered "try
    again" (503), which the platform retries; the retry is taken, once."""
    intake = GroupCommit(engine)
    writer = intake._loop_engine.sync_engine if intake._loop_engine is not None else engine
    failures = [1]

    @event.listens_for(writer, "commit")
    def _fail(connection) -> None:
        if failures:
            failures.pop()
            raise OSError("disk I/O error")

    keys = [f"app:msg:{i}" for i in range(5)]
    try:
        outcomes = await asyncio.gather(*(hand_over(intake.take, _event(key), "WeCom") for key in keys),
                                        return_exceptions=True)
        assert all(isinstance(o, web.HTTPServiceUnavailable) for o in outcomes), outcomes
        assert _stored(engine) == []
        assert await asyncio.gather(*(intake.take(_event(key)) for key in keys)) == [True] * 5  # the retries
        assert await intake.take(_event(keys[0])) is False
    finally:
        await intake.close()
        event.remove(writer, "commit", _fail)
    assert _stored(engine) == keys
    assert "disk I/O error" not in caplog.text  # the log names the error's type only


async def test_closing_the_intake_finishes_the_rounds_it_took(engine):
    """A stop (``Pipeline.close``) waits for the round whose commit is under way: its
    requests are answered as stored, and the rows are there."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite: the commit runs on the intake thread, which the test holds up")
    intake = GroupCommit(engine)
    release = threading.Event()
    intake._thread.submit(release.wait)
    keys = [f"app:msg:{i}" for i in range(3)]
    try:
        takes = asyncio.gather(*(intake.take(_event(key)) for key in keys))
        await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(intake.close())
        await asyncio.sleep(0.1)
        assert not closing.done() and not takes.done()
    finally:
        release.set()
    await asyncio.wait_for(closing, timeout=10)
    assert takes.done() and takes.result() == [True] * 3
    assert _stored(engine) == keys
