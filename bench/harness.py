"""What every bench shares: a scratch directory cleaned up after, the processes it starts
(``shuangsui`` commands, ``serve`` instances, servers and load generators in processes of
their own) and their stopping, a fresh PostgreSQL database dropped after, the CPU a process
used, and tables printed in fixed columns.

Progress goes to standard error as ``# …`` lines; figures and tables to standard output."""

from __future__ import annotations

import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import bot  # noqa: F401
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.terminal import err

# --- Saying and timing -----------------------------------------------------------------------


def say(text: str) -> None:
    """A progress line on standard error."""
    err(f"# {text}")


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def conclude(summary: str) -> None:
    """The one-line summary, on standard output and again on standard error (under the charts)."""
    print(summary)
    err(summary)


# --- The scratch directory -------------------------------------------------------------------


@contextmanager
def scratch(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary directory for the bench's files, removed after unless ``keep``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


# --- The command line and serve instances ----------------------------------------------------


def cli_command() -> list[str]:
    """``shuangsui`` as installed beside this Python, else ``python -m bot.cli``."""
    script = Path(sys.executable).with_name("shuangsui")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def run_cli(args: list[str], *, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """One ``shuangsui`` command to its end, its output captured."""
    return subprocess.run([*cli_command(), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          encoding="utf-8", errors="replace")


def bot_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any ``SHUANGSUI`` setting, plus ``settings``
    (``SHUANGSUI__…`` names)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SHUANGSUI")} | settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, alive: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Until ``url`` answers 200; fails if the process behind it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if not alive():
            raise RuntimeError(f"{what} exited at start")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:g} s")


@dataclass
class Instance:
    """A ``shuangsui serve`` process, on its port, with its log."""

    name: str
    port: int
    process: subprocess.Popen
    log: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_serve(env: dict, work: Path, name: str, port: int, log: Path, *, own_session: bool = False) -> Instance:
    """``shuangsui serve`` on ``port``, its output to ``log``; ready once ``/readyz`` answers.
    In a session of its own, a Ctrl-C at the terminal reaches the bench only, which stops it."""
    out = log.open("ab")
    process = subprocess.Popen([*cli_command(), "serve"], env=env | {"SHUANGSUI__SERVER__PORT": str(port)},
                               cwd=work, stdout=out, stderr=out, start_new_session=own_session)
    return Instance(name, port, process, out)


def ready(instance: Instance, what: str) -> None:
    wait_ready(instance.url + "/readyz", lambda: instance.process.poll() is None, what)


def stop_serve(instances: list[Instance], timeout: float) -> dict[str, int | None]:
    """SIGTERM, as an orchestrator stops them: each finishes its work and sends what is due;
    killed after ``timeout`` seconds. Their exit codes by name."""
    for instance in instances:
        if instance.process.poll() is None:
            instance.process.send_signal(signal.SIGTERM)
    codes = {}
    for instance in instances:
        try:
            instance.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            instance.process.kill()
            instance.process.wait()
        codes[instance.name] = instance.process.returncode
        instance.log.close()
    return codes


# --- Processes of the bench's own (servers, load generators) --------------------------------


def start_server(ctx, target: Callable, port: int, *args: Any, name: str | None = None):
    """``target(port, *args)`` in a process of its own, ready once its ``/healthz`` answers."""
    name = name or target.__name__
    process = ctx.Process(target=target, args=(port, *args), name=name, daemon=True)
    process.start()
    wait_ready(f"http://127.0.0.1:{port}/healthz", process.is_alive, name)
    return process


def stop_all(procs) -> None:
    """Terminate, then kill what is still alive."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> dict[int, float]:
    """CPU seconds so far of every local PostgreSQL process (none when the server is elsewhere)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = cpu_seconds(int(entry.name))
            except OSError:
                continue
    return found


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    if not after:
        return math.nan
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items() if not math.isnan(seconds))


# --- A fresh PostgreSQL database -------------------------------------------------------------


def fresh_database(server_url: str | None, work: Path) -> tuple[str, str | None]:
    """The bot's database URL — SQLite in ``work`` without a server, else a fresh PostgreSQL
    database on it — and the name of the database to drop after (if any)."""
    if not server_url:
        return f"sqlite:///{work / 'bot.db'}", None
    return create_database(server_url)


def create_database(server_url: str) -> tuple[str, str]:
    """A fresh database on the server of ``server_url``: its URL and its name (to drop)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"shuangsui_bench_{secrets.token_hex(4)}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False), name


def drop_database(server_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def reader(db_url: str):
    """A plain engine for counting: no ``BEGIN IMMEDIATE``, so it never takes SQLite's write lock."""
    from sqlalchemy import create_engine

    return create_engine(db_url)


def by_status(engine, table: str) -> Counter[str]:
    from sqlalchemy import text

    with engine.connect() as connection:
        return Counter(dict(connection.execute(text(f"SELECT status, COUNT(*) FROM {table} GROUP BY status")).all()))


# --- Tables ----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def quantile(latencies: list[float], q: float) -> float:
    """The ``q`` quantile of sorted latencies (nearest rank)."""
    if not latencies:
        return math.nan
    return latencies[min(len(latencies) - 1, max(0, math.ceil(q * len(latencies)) - 1))]


def pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` terminal columns (a CJK character takes two)."""
    return text + " " * max(0, width - sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text))


@dataclass(frozen=True)
class Column:
    """A column: its title, its width, the format of its values, and the blanks kept after a
    value (which sets it under the middle of a wider title)."""

    title: str
    width: int
    spec: str = ""
    left: bool = False
    trail: int = 0


class Table:
    """Rows in fixed columns under a header line. A row may give fewer cells than there are
    columns (the line ends there); a cell given as a string is printed as it is, aligned."""

    def __init__(self, *columns: Column) -> None:
        self.columns = columns

    def header(self) -> None:
        print("".join(pad(c.title, c.width) if c.left else f"{c.title:>{c.width}}" for c in self.columns))

    def row(self, *cells: Any) -> None:
        print(self.line(*cells))

    def line(self, *cells: Any) -> str:
        out = []
        for column, cell in zip(self.columns, cells, strict=False):
            width = column.width - column.trail
            if column.left:
                out.append(pad(str(cell), width) + " " * column.trail)
            else:
                spec = "" if isinstance(cell, str) else column.spec
                out.append(format(cell, f">{width}{spec}") + " " * column.trail)
        if out and self.columns[len(out) - 1].trail:  # no blanks at the end of a line
            out[-1] = out[-1][:-self.columns[len(out) - 1].trail]
        return "".join(out)

    @staticmethod
    def note(text: str) -> None:
        """An indented line under a row."""
        print(f"{'':4}{text}")
