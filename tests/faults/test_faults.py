"""Faults (issue 9): ``shuangsui`` processes killed with SIGKILL in the middle of a draw
and of a reminder sweep leave nothing half-written, and what they did is delivered once
at the platform; the database out of reach gives callbacks an error the platform retries
and ``/readyz`` says so, and nothing is lost. (Killed serves mid fan-out and between
acknowledgement and send: tests/faults/test_wecom_processes.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from bot.app import create_app
from bot.demo import SEED_ORDER
from bot.synthetic_district import generate_district
from storage import audit
from storage.importing import import_file
from storage.models import Batch, Deadline, OutboxMessage, Reminder, Task
from storage.sealing import new_key
from tests.support.wecom_bot import Walk, wecom_env, wecom_settings

SHUANGSUI = str(Path(sys.executable).parent / "shuangsui")
KEY = new_key()


@pytest.fixture
def district(engine, db_url, tmp_path):
    """A synthetic district of 40,000 objects: a draw of 10% takes seconds, long enough to be killed."""
    files = generate_district(tmp_path / "district", objects=40_000)
    for kind in SEED_ORDER:
        assert import_file(engine, kind, files[kind], actor="test").ok
    return {**os.environ, "SHUANGSUI__DATABASE__URL": db_url, "SHUANGSUI__SECURITY__KEYS": f'["{KEY}"]',
            "SHUANGSUI__BUREAU__DEFAULT_LEAD": "U-XYS"}


def cli(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([SHUANGSUI, *argv], env=env, capture_output=True, text=True, timeout=300)


def killed_after(env: dict, seconds: float, *argv: str) -> bool:
    """Run a command and SIGKILL it after ``seconds``; whether it was still running."""
    process = subprocess.Popen([SHUANGSUI, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    running = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return running


def counts(engine, batch_id: str) -> tuple[str, int]:
    with Session(engine) as session:
        batch = session.get(Batch, batch_id)
        tasks = session.execute(select(func.count()).select_from(Task).where(Task.batch_id == batch_id)).scalar_one()
        return batch.status, tasks


def test_a_draw_killed_midway_leaves_nothing_half_written(engine, district, tmp_path):
    # Kills at a share of how long a whole draw takes on this machine now (a fixed delay
    # comes too late on a fast, idle machine and too early on a loaded one), earlier after
    # each kill that came after the commit (the machine's load changes as the test runs).
    assert cli(district, "batch", "new", "名称=第1批", "事项=A01", "比例=10%", "方式=交叉随机",
               "截止=2026-12-31").returncode == 0
    assert cli(district, "batch", "publish", "批次=2026-DS-001").returncode == 0
    started = time.monotonic()
    assert cli(district, "batch", "draw", "批次=2026-DS-001").returncode == 0
    whole = time.monotonic() - started
    killed_midway, share = 0, 0.6
    for n in range(2, 8):  # until two kills land mid-draw; on a loaded machine a draw slows down as it runs
        if killed_midway >= 2:
            break
        batch_id = f"2026-DS-{n:03d}"
        assert cli(district, "batch", "new", f"名称=第{n}批", "事项=A01", "比例=10%", "方式=交叉随机",
                   "截止=2026-12-31").returncode == 0
        assert cli(district, "batch", "publish", f"批次={batch_id}").returncode == 0
        running = killed_after(district, share * whole, "batch", "draw", f"批次={batch_id}")
        status, tasks = counts(engine, batch_id)
        if status == "published":  # killed before its one commit: nothing of the draw is there
            assert tasks == 0
            killed_midway += running
            assert cli(district, "batch", "draw", f"批次={batch_id}").returncode == 0  # and it can be done now
            status, tasks = counts(engine, batch_id)
        else:  # the kill came after the commit: come earlier next time
            share *= 0.6
        assert status == "drawn" and tasks > 3000, (status, tasks)  # whole, or not at all
        out = tmp_path / batch_id
        assert cli(district, "batch", "export", batch_id, "--out", str(out), "--internal").returncode == 0
        assert cli(district, "verify", str(out)).stdout.startswith("SSR-1 OK")
    assert killed_midway >= 1, "no draw was caught in the middle: the kill came too late every time"
    with Session(engine) as session:
        audit.verify(session)


async def test_a_sweep_killed_midway_reminds_everyone_once(engine, district, aiohttp_server, wecom, tmp_path):
    """A batch of ~4,000 tasks due soon; a reminder sweep killed at several moments, run
    again to the end; then the bot delivers: every person gets each reminder once."""
    from sqlalchemy import update

    from storage.db import transaction
    from storage.models import Inspector

    with transaction(engine) as session:  # everyone on WeCom
        for inspector in session.exec(select(Inspector)).scalars().all():
            inspector.wecom_userid = inspector.id.lower()
            session.add(inspector)
            wecom.users[inspector.id.lower()] = inspector.id.lower()
    district = {**district, **wecom_env(wecom, district["SHUANGSUI__DATABASE__URL"], 8080, KEY)}
    assert cli(district, "batch", "new", "名称=催办", "事项=A01", "比例=10%", "方式=交叉随机",
               "截止=2026-12-10").returncode == 0
    assert cli(district, "batch", "publish", "批次=2026-DS-001").returncode == 0
    assert cli(district, "batch", "draw", "批次=2026-DS-001").returncode == 0
    with transaction(engine) as session:  # the draw's own cards are not what is judged here
        session.execute(update(OutboxMessage).values(status="sent"))
    now = "2026-12-07T10:00:00+08:00"  # working days before the due date: reminders are due
    running = [killed_after(district, delay, "reminders", "run", "--now", now) for delay in (0.8, 1.2, 1.6)]
    assert any(running), "no sweep was caught running"
    finished = cli(district, "reminders", "run", "--now", now)
    assert finished.returncode == 0, finished.stderr
    again = cli(district, "reminders", "run", "--now", now)
    assert again.stdout == ""  # nothing new: each reminder is queued once
    with Session(engine) as session:
        reminders = session.exec(select(Reminder.deadline_id, Reminder.recipient, Reminder.step)).all()
        assert reminders and len(reminders) == len(set(reminders))
        queued = session.execute(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.status == "pending")).scalar_one()
        deadlines = session.execute(select(func.count()).select_from(Deadline)).scalar_one()
    assert queued and deadlines > 3000
    app = create_app(wecom_settings(wecom), engine, ticker=False)
    await aiohttp_server(app)
    await Walk(wecom, engine, app).quiet()
    # A long digest arrives as several texts; judged at the platform, each person got one
    # digest, and every one of their tasks is in it once.
    texts: dict[str, str] = {}
    for d in wecom.delivered:
        if d["msgtype"] == "text":
            texts[d["user"]] = texts.get(d["user"], "") + "\n" + d["content"]
    assert len(texts) == queued
    with Session(engine) as session:
        owed = Counter(owner.split(":", 1)[1].lower() for row in session.execute(select(Deadline)).scalars().all()
                       for owner in row.owed_by if owner.startswith("inspector:"))
    for user, text in texts.items():
        assert text.count("【期限提醒】") == 1, user
        assert text.count("任务 ") == owed[user], user
    assert not wecom.dropped


class Cutoff:
    """A TCP relay to the database server that can be cut (the network or the server gone)."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, 0
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.links):
            writer.transport.abort()

    async def _relay(self, reader, writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.links |= {writer, upstream_writer}

        async def pipe(source, sink):
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def test_the_database_out_of_reach_loses_nothing(db_url, engine, tmp_path, wecom, aiohttp_server):
    """While the database is out of reach a callback gets a 503 (WeCom delivers it again)
    and /readyz says so; once it is back, the retried message is handled once."""
    if not db_url.startswith("postgresql"):
        pytest.skip("needs a database server to cut off (PostgreSQL)")
    from sqlalchemy.engine import make_url

    from storage.db import make_engine
    from tests.support.batch_district import seed_district
    from tests.support.wecom_bot import ADMIN, link_inspectors

    seed_district(engine, tmp_path)
    link_inspectors(engine)
    url = make_url(db_url)
    relay = Cutoff(url.port or 5432)
    await relay.start()
    proxied = make_engine(url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False))
    app = create_app(wecom_settings(wecom), proxied, ticker=False)
    server = await aiohttp_server(app)
    wecom.bot_url = str(server.make_url("")).rstrip("/")
    walk = Walk(wecom, engine, app)
    await walk.say(ADMIN, "帮助")  # all is well
    await relay.cut()
    lost = await wecom.send_text(ADMIN, "进度")
    assert lost.status == 503
    async with aiohttp.ClientSession() as http:
        async with http.get(wecom.bot_url + "/readyz") as ready:
            assert ready.status == 503 and (await ready.json())["database"] == "unreachable"
    await relay.start()  # back, on the same port
    delivery = next(c for c in reversed(wecom.callbacks) if c["path"] == wecom.app_callback_path)
    before = len(walk.texts(ADMIN))
    again = await wecom.post_raw(wecom.app_callback_path, params=delivery["params"], body=delivery["body"])
    assert again.status == 200
    await walk.quiet()
    assert len(walk.texts(ADMIN)) == before + 1  # answered once
    async with aiohttp.ClientSession() as http:
        async with http.get(wecom.bot_url + "/readyz") as ready:
            assert ready.status == 200
    proxied.dispose()
