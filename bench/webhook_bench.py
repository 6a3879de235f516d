"""Signed WeCom callbacks per second, and their p99 latency, the bot against a bare aiohttp handler.

Starts, each in its own process:

* a stub WeCom API (``gettoken`` and ``message/send`` answering ``errcode 0``), where the
  bot's answers go;
* a bare aiohttp app whose ``POST /wecom/callback`` reads the body and answers an empty
  200: the floor any aiohttp handler pays on this machine;
* the bot, as an operator runs it: ``shuangsui serve`` on a fresh, migrated database
  (SQLite in a temporary directory, or a fresh PostgreSQL database created on the server
  of ``--db-url`` and dropped after), with an administrator and a Fernet key configured;

and then, for each of them in turn, a load generator of ``--procs`` processes with
``--clients`` concurrent aiohttp clients in all (100 by default), each client posting
signed, encrypted self-built app callbacks (PROTOCOLS.md A.2–A.5) one after the other:
``帮助`` from the administrator, and ``--strangers`` of them (20%) from a user without a
role, whom the bot refuses politely and audits. Every callback has its own MsgId and a
fresh timestamp; they are built and encrypted before the clock starts, alike for both
servers. After a warm-up, every request that completes within
``--seconds`` counts: throughput, p50 and p99 latency, answers other than 200, and how
many took longer than WeCom's 5 s deadline. The CPU each server and the load generator
used in that window is read from ``/proc``.

After the bot's run the bench waits until every stored delivery is processed, and
checks at the database that every acknowledged MsgId is stored exactly once (nothing
acknowledged was lost, nothing stored twice) and that every refusal was audited.

The machine is noisy and the load generator shares its cores with the servers, so the
ratio bot/bare of the same run matters more than the figures (target: the bot keeps at
least half the bare handler's throughput). Timing never fails the run. It exits 1 only
if a server does not start or the database disagrees with what was acknowledged.

Usage: ``.venv/bin/python bench/webhook_bench.py [--seconds S] [--clients N] [--procs P]
[--rounds R] [--users U] [--db-url postgresql+psycopg://user@host:port/postgres] [--keep]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import multiprocessing
import os
import queue
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

try:
    import bot  # noqa: F401
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.callback_crypto import MsgCrypt
from bot.terminal import bar_chart, err, progress
from storage.sealing import new_key

TARGET = 0.5  # the bot keeps at least half the bare handler's throughput
DEADLINE = 5.0  # seconds WeCom waits for an answer before it drops the connection and retries
CORP_ID = "wwbenchcorp"
AGENT_ID = 1000002
TOKEN = "benchtoken"
ADMIN = "benchuser"
STRANGER = "benchstranger"
CALLBACK = "/wecom/callback"
FIRST_GUESS = 15000  # req/s, to size the first run's pre-built payloads; later runs use what was seen


def say(text: str) -> None:
    err(f"# {text}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("shuangsui")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


# --- The servers (each in its own process) -----------------------------------------------------------------


def run_stub_api(port: int) -> None:
    """WeCom's API as far as the bot's answers need it: a token, and every send accepted."""
    from aiohttp import web

    counts: Counter[str] = Counter()

    async def gettoken(request: web.Request) -> web.Response:
        counts["gettoken"] += 1
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": "t", "expires_in": 7200})

    async def send(request: web.Request) -> web.Response:
        await request.read()
        counts["message/send"] += 1
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": "m"})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(dict(counts))

    app = web.Application()
    app.router.add_get("/cgi-bin/gettoken", gettoken)
    app.router.add_post("/cgi-bin/message/send", send)
    app.router.add_get("/healthz", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def run_bare(port: int, loop: str = "asyncio") -> None:
    """The floor: an aiohttp handler that reads the callback and answers an empty 200 — on
    aiohttp's own asyncio loop, or on the loop the bot runs on (uvloop where installed)."""
    import asyncio

    from aiohttp import web

    async def callback(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    from bot.app import event_loop

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post(CALLBACK, callback)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                loop=event_loop() if loop == "bot" else asyncio.new_event_loop())


def wait_ready(url: str, alive, what: str, timeout: float = 60.0) -> None:
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


def stub_counts(url: str) -> dict[str, int]:
    import json

    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return {}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- The load generator (--procs processes) ------------------------------------------------------------------


def is_stranger(index: int, share: float) -> bool:
    """Whether the index-th message comes from the user without a role (evenly spread)."""
    return math.floor((index + 1) * share) > math.floor(index * share)


def sender_of(index: int, share: float, admins: list[str]) -> str:
    return STRANGER if is_stranger(index, share) else admins[index % len(admins)]


def msg_id_base(run_id: int, proc: int) -> int:
    return 10**18 + run_id * 10**13 + proc * 10**10


def build_payload(crypt: MsgCrypt, msg_id: int, sender: str, content: str = "帮助") -> tuple[str, bytes]:
    """The query string and body of one signed, encrypted text-message callback (A.2–A.5)."""
    now = str(int(time.time()))
    inner = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{sender}]]></FromUserName>"
             f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
             f"<MsgId>{msg_id}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>")
    return seal(crypt, inner, now)


def seal(crypt: MsgCrypt, inner: str, now: str) -> tuple[str, bytes]:
    """A callback's plaintext XML encrypted and signed: the query string and the body WeCom posts (A.2–A.5)."""
    encrypted = crypt.encrypt(inner.encode())
    nonce = secrets.token_hex(8)
    signature = crypt.signature(now, nonce, encrypted)
    body = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<AgentID><![CDATA[{AGENT_ID}]]></AgentID></xml>")
    return f"?msg_signature={signature}&timestamp={now}&nonce={nonce}", body.encode()


@dataclass
class Load:
    """What one load-generator process sends: where, how many clients, which messages, when."""

    proc: int
    url: str
    clients: int
    run_id: int
    prebuilt: int
    aes_key: str
    share: float
    admins: list[str]
    warmup: float
    seconds: float


def generate(load: Load, go, start, results) -> None:
    """One load-generator process: build its payloads, say so, wait for the start, send."""
    crypt = MsgCrypt(TOKEN, load.aes_key, CORP_ID)
    base = msg_id_base(load.run_id, load.proc)
    payloads = [build_payload(crypt, base + i, sender_of(i, load.share, load.admins)) for i in range(load.prebuilt)]
    results.put(("ready", load.proc, None))
    go.wait()
    outcome = asyncio.run(_send(load, crypt, base, payloads, start.value))
    results.put(("done", load.proc, outcome))


async def _send(load: Load, crypt: MsgCrypt, base: int, payloads: list[tuple[str, bytes]], start: float) -> dict:
    import aiohttp
    import yarl

    urls = [(yarl.URL(load.url + query, encoded=True), body) for query, body in payloads]
    measure_from, end = start + load.warmup, start + load.warmup + load.seconds
    latencies = array("d")
    acked = array("q")
    statuses: Counter[str] = Counter()
    issued = itertools.count()
    extra = 0
    headers = {"Content-Type": "text/xml"}
    connector = aiohttp.TCPConnector(limit=0)  # one keep-alive connection per client
    timeout = aiohttp.ClientTimeout(total=60)

    async def client() -> None:
        nonlocal extra
        while time.time() < end:
            i = next(issued)
            if i < len(urls):
                url, body = urls[i]
            else:  # ran out of pre-built payloads: build on the clock (counted, reported)
                query, body = build_payload(crypt, base + i, sender_of(i, load.share, load.admins))
                url, extra = yarl.URL(load.url + query, encoded=True), extra + 1
            began = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            latency = time.perf_counter() - began
            if status == "200":
                acked.append(base + i)
            if measure_from <= time.time() < end:
                latencies.append(latency)
                statuses[status] += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.sleep(max(0.0, start - time.time()))
        await asyncio.gather(*(client() for _ in range(load.clients)))
    return {"latencies": latencies.tobytes(), "acked": acked.tobytes(), "statuses": dict(statuses),
            "extra": extra}


# --- One timed run -------------------------------------------------------------------------------------------


@dataclass
class Run:
    target: str
    round: int
    seconds: float
    warmup: float
    latencies: list[float] = field(default_factory=list)  # sorted, seconds
    statuses: Counter = field(default_factory=Counter)
    acked: set[int] = field(default_factory=set)
    extra: int = 0
    prebuilt: int = 0
    server_cpu: float = math.nan
    load_cpu: float = math.nan
    started: float = 0.0  # time.time() when the clients started (warm-up included)
    drain: dict = field(default_factory=dict)

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds

    @property
    def not_ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != "200")

    @property
    def late(self) -> int:
        return sum(1 for latency in self.latencies if latency > DEADLINE)

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return math.nan
        return self.latencies[min(len(self.latencies) - 1, max(0, math.ceil(q * len(self.latencies)) - 1))]


def load_run(ctx, target: str, url: str, server_pid: int, round_: int, run_id: int, prebuilt: int, args,
             aes_key: str, admins: list[str]) -> Run:
    """``--procs`` load-generator processes against ``url``; their requests merged."""
    go, start, results = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    shares = [args.clients // args.procs + (1 if p < args.clients % args.procs else 0) for p in range(args.procs)]
    procs = [ctx.Process(target=generate, name=f"load-{target}-{p}", daemon=True,
                         args=(Load(p, url + CALLBACK, shares[p], run_id, prebuilt, aes_key, args.strangers, admins,
                                    args.warmup, args.seconds), go, start, results))
             for p in range(args.procs) if shares[p]]
    run = Run(target, round_, args.seconds, args.warmup, prebuilt=prebuilt * len(procs))
    try:
        for proc in procs:
            proc.start()
        say(f"{target}: {len(procs)} load processes building {prebuilt:,} callbacks each …")
        for _ in procs:
            _get(results, procs, "ready")
        run.started = time.time() + 0.3
        start.value = run.started
        go.set()
        say(f"{target}: {args.clients} clients, {args.warmup:g} s warm-up, {args.seconds:g} s measured …")
        pids = [proc.pid for proc in procs]
        time.sleep(max(0.0, run.started + args.warmup - time.time()))
        server0, load0 = cpu_seconds(server_pid), sum(cpu_seconds(pid) for pid in pids)
        time.sleep(max(0.0, run.started + args.warmup + args.seconds - time.time()))
        run.server_cpu = cpu_seconds(server_pid) - server0
        run.load_cpu = sum(cpu_seconds(pid) for pid in pids) - load0
        latencies = array("d")
        for _ in procs:
            outcome = _get(results, procs, "done", timeout=120)
            latencies.frombytes(outcome["latencies"])
            acked = array("q")
            acked.frombytes(outcome["acked"])
            run.acked.update(acked)
            run.statuses.update(outcome["statuses"])
            run.extra += outcome["extra"]
        run.latencies = sorted(latencies)
        for proc in procs:
            proc.join(timeout=10)
    finally:
        stop_all(procs)
    return run


def _get(results, procs, kind: str, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, proc, payload = results.get(timeout=1)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("a load-generator process failed") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"load generators did not report {kind!r} in time") from None
            continue
        if got != kind:
            raise RuntimeError(f"load generator {proc} said {got!r}, expected {kind!r}")
        return payload


def stop_all(procs) -> None:
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)


# --- The database --------------------------------------------------------------------------------------------


def prepare_database(args, work: Path) -> tuple[str, str | None]:
    """The bot's database URL, and the PostgreSQL database to drop afterwards (if any)."""
    if not args.db_url:
        return f"sqlite:///{work / 'bot.db'}", None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(args.db_url)
    name = f"shuangsui_bench_{secrets.token_hex(4)}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False), name


def drop_database(args, name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(args.db_url, isolation_level="AUTOCOMMIT")
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


def wait_processed(engine, run: Run, timeout: float) -> dict:
    """Until no delivery is pending or being processed; how long that took after the load."""
    load_end = run.started + run.warmup + run.seconds
    stored_total = sum(by_status(engine, "inbound_deliveries").values())
    bar = progress(range(stored_total), total=stored_total, desc="processing")
    shown = 0
    try:
        while True:
            counts = by_status(engine, "inbound_deliveries")
            waiting = counts["pending"] + counts["processing"]
            finished = sum(counts.values()) - waiting
            bar.update(finished - shown)
            shown = finished
            if not waiting or time.time() - load_end > timeout:
                break
            time.sleep(0.2)
    finally:
        bar.close()
    return {"counts": counts, "drained_after": time.time() - load_end, "complete": not waiting}


def audit_refusals(engine) -> int:
    from sqlalchemy import text

    with engine.connect() as connection:
        return connection.execute(text("SELECT COUNT(*) FROM audit_log WHERE action = 'refused'")).scalar_one()


def stored_keys(engine) -> tuple[int, set[str]]:
    from sqlalchemy import text

    with engine.connect() as connection:
        keys = connection.execute(text("SELECT delivery_key FROM inbound_deliveries WHERE platform = 'wecom'")).all()
    return len(keys), {key for (key,) in keys}


# --- Report --------------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def report(runs: list[Run], best: dict[str, Run], cores: int) -> None:
    print(f"{'run':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'non-200':>9}"
          f"{'>5 s':>7}{'server CPU':>12}{'CPU µs/req':>12}{'load CPU':>10}")
    for run in runs:
        mark = "*" if best[run.target] is run else " "
        label = f"{run.target} #{run.round + 1}{mark}"
        per_request = run.server_cpu / run.completed * 1e6 if run.completed else math.nan
        print(f"{label:<16}{run.rate:>10,.0f}{ms(run.quantile(0.5)):>10}{ms(run.quantile(0.99)):>10}"
              f"{ms(run.latencies[-1] if run.latencies else math.nan):>10}{run.not_ok:>9}{run.late:>7}"
              f"{run.server_cpu / run.seconds:>11.0%} {per_request:>11,.0f}{run.load_cpu / run.seconds:>10.0%}")
        odd = {status: n for status, n in run.statuses.items() if status != "200"}
        if odd:
            print(f"{'':4}answers other than 200: {odd}")
        if run.extra:
            print(f"{'':4}{run.extra:,} payloads built on the clock (pre-built {run.prebuilt:,} ran out)")
    print(f"* best of its kind (highest req/s). CPU in % of one core over the measured window; "
          f"{cores} cores shared by the servers and the load generator.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of each run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients in all")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of bare and bot (best kept)")
    parser.add_argument("--strangers", type=float, default=0.2, help="share of messages from a user without a role")
    parser.add_argument("--users", type=int, default=1, help="administrators the other messages come from")
    parser.add_argument("--db-url", help="a PostgreSQL server URL; a fresh database is created there and dropped")
    parser.add_argument("--drain-timeout", type=float, default=600.0,
                        help="seconds to wait for the bot to process what it stored")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (and the bot's log)")
    args = parser.parse_args(argv)
    if args.procs < 1 or args.clients < args.procs:
        parser.error("need at least one client per load-generator process")

    work = Path(tempfile.mkdtemp(prefix="shuangsui-webhook-bench-"))
    ctx = multiprocessing.get_context("spawn")
    cores = os.cpu_count() or 1
    admins = [ADMIN] if args.users == 1 else [f"{ADMIN}{n:03d}" for n in range(args.users)]
    aes_key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))
    servers: list = []
    bot_process: subprocess.Popen | None = None
    log = None
    pg_name = None
    failures: list[str] = []
    try:
        db_url, pg_name = prepare_database(args, work)
        kind = "PostgreSQL" if pg_name else "SQLite"
        say(f"{args.clients} clients in {args.procs} processes, {args.seconds:g} s per run, {kind}, "
            f"{cores} cores, in {work}")

        stub_port, bare_port, same_port, bot_port = free_port(), free_port(), free_port(), free_port()
        stub_url = f"http://127.0.0.1:{stub_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHUANGSUI")}
        env |= {
            "SHUANGSUI__DATABASE__URL": db_url, "SHUANGSUI__SERVER__HOST": "127.0.0.1",
            "SHUANGSUI__SERVER__PORT": str(bot_port), "SHUANGSUI__WECOM__CORP_ID": CORP_ID,
            "SHUANGSUI__WECOM__AGENT_ID": str(AGENT_ID), "SHUANGSUI__WECOM__SECRET": "bench-secret",
            "SHUANGSUI__WECOM__TOKEN": TOKEN, "SHUANGSUI__WECOM__ENCODING_AES_KEY": aes_key,
            "SHUANGSUI__WECOM__API_BASE": stub_url,
            "SHUANGSUI__ROLES__ADMINS": "[" + ",".join(f'"{a}"' for a in admins) + "]",
            "SHUANGSUI__SECURITY__KEYS": f'["{new_key()}"]',
        }
        say("shuangsui db upgrade …")
        done = subprocess.run([*cli_command(), "db", "upgrade"], env=env, cwd=work, capture_output=True, text=True)
        if done.returncode:
            print(f"shuangsui db upgrade failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
            return 1

        for target, port, extra in ((run_stub_api, stub_port, ()), (run_bare, bare_port, ("asyncio",)),
                                    (run_bare, same_port, ("bot",))):
            process = ctx.Process(target=target, args=(port, *extra), name=target.__name__, daemon=True)
            process.start()
            servers.append(process)
            wait_ready(f"http://127.0.0.1:{port}/healthz", process.is_alive, target.__name__)
        log = (work / "serve.log").open("ab")
        bot_process = subprocess.Popen([*cli_command(), "serve"], env=env, cwd=work, stdout=log, stderr=log)
        bot_url = f"http://127.0.0.1:{bot_port}"
        wait_ready(bot_url + "/readyz", lambda: bot_process.poll() is None, "shuangsui serve")

        targets = {"bare": (f"http://127.0.0.1:{bare_port}", servers[1].pid),
                   "bare-same-loop": (f"http://127.0.0.1:{same_port}", servers[2].pid),
                   "bot": (bot_url, bot_process.pid)}
        reader_engine = reader(db_url)
        runs: list[Run] = []
        fastest = float(FIRST_GUESS)
        run_ids = itertools.count(1)
        for round_ in range(args.rounds):
            for target, (url, pid) in targets.items():
                prebuilt = max(2000, math.ceil(fastest * 1.5 * (args.warmup + args.seconds + 1) / args.procs))
                run = load_run(ctx, target, url, pid, round_, next(run_ids), prebuilt, args, aes_key, admins)
                runs.append(run)
                fastest = max(fastest, run.rate)
                say(f"{target}: {run.rate:,.0f} req/s, p99 {ms(run.quantile(0.99))} ms, {run.not_ok} not 200")
                if target == "bot":
                    say("waiting for the bot to process what it acknowledged …")
                    run.drain = wait_processed(reader_engine, run, args.drain_timeout)

        # What the database holds against what was acknowledged, over every bot run.
        bot_runs = [run for run in runs if run.target == "bot"]
        acked = {f"app:msg:{msg_id}" for run in bot_runs for msg_id in run.acked}
        rows, keys = stored_keys(reader_engine)
        lost, unacked, doubled = len(acked - keys), len(keys - acked), rows - len(keys)
        strangers_acked = sum(1 for run in bot_runs for msg_id in run.acked
                              if is_stranger(msg_id % 10**10, args.strangers))
        refusals = audit_refusals(reader_engine)
        deliveries = by_status(reader_engine, "inbound_deliveries")
        outbox = by_status(reader_engine, "outbox")
        sends = stub_counts(stub_url)
        reader_engine.dispose()
        if lost:
            failures.append(f"{lost} acknowledged deliveries not stored")
        if doubled:
            failures.append(f"{doubled} deliveries stored twice")
        if any(not run.drain.get("complete") for run in bot_runs):
            failures.append(f"deliveries still waiting after {args.drain_timeout:g} s")
        if refusals != strangers_acked:
            failures.append(f"{refusals} refusals audited for {strangers_acked} messages from {STRANGER}")
        if bot_process.poll() is not None:
            failures.append(f"shuangsui serve exited ({bot_process.returncode}) during the bench")

        best = {target: max((r for r in runs if r.target == target), key=lambda r: r.rate) for target in targets}
        bare, same, bot = best["bare"], best["bare-same-loop"], best["bot"]
        ratio = bot.rate / bare.rate if bare.rate else math.nan
        same_ratio = bot.rate / same.rate if same.rate else math.nan
        verdict = "MET" if ratio >= TARGET else "MISSED"

        print()
        report(runs, best, cores)
        print()
        for run in bot_runs:
            after = run.drain["drained_after"]
            if run.drain["complete"]:
                pace = len(run.acked) / (run.warmup + run.seconds + after)
                print(f"bot #{run.round + 1}: {len(run.acked):,} acknowledged with 200 (warm-up and stragglers "
                      f"included), all processed {after:.1f} s after the load ended ({pace:,.0f} processed/s "
                      f"from the first request)")
            else:
                print(f"bot #{run.round + 1}: NOT all processed {after:.0f} s after the load ended: "
                      f"{dict(run.drain['counts'])}")
        print(f"database: {rows:,} deliveries stored for {len(acked):,} acknowledged MsgIds: {lost} lost, "
              f"{unacked} stored but not acknowledged, {doubled} stored twice; by status {dict(deliveries)}; "
              f"{refusals:,} refusals audited for {strangers_acked:,} messages from {STRANGER}")
        print(f"answers: outbox {dict(outbox)} (WeCom allows 30 a minute per member: the rest wait); "
              f"stub API got {sends.get('message/send', 0):,} message/send, {sends.get('gettoken', 0)} gettoken")
        print()
        summary = (f"webhook: {args.clients} clients ({args.procs} procs), {args.seconds:g} s, {kind}: bot "
                   f"{bot.rate:,.0f} req/s, p50 {ms(bot.quantile(0.5))} ms, p99 {ms(bot.quantile(0.99))} ms, "
                   f"{bot.not_ok} not 200, {bot.late} over {DEADLINE:g} s; bare aiohttp {bare.rate:,.0f} req/s, "
                   f"p99 {ms(bare.quantile(0.99))} ms; ratio {ratio:.2f} {verdict} (target ≥ {TARGET:g}); "
                   f"against a bare handler on the bot's own loop ({same.rate:,.0f} req/s) {same_ratio:.2f}; "
                   f"{lost} lost, {doubled} doubled"
                   + ("" if not failures else f"; FAILED: {'; '.join(failures)}"))
        print(summary)
        err()
        err(bar_chart([("bare aiohttp req/s", round(bare.rate)), ("bare, bot's loop req/s", round(same.rate)),
                       ("bot req/s", round(bot.rate))]))
        err(bar_chart([("bare aiohttp p99 ms", round(bare.quantile(0.99) * 1000)),
                       ("bot p99 ms", round(bot.quantile(0.99) * 1000))]))
        err(summary)
        return 1 if failures else 0
    except RuntimeError as exc:
        print(f"bench failed: {exc}")
        return 1
    finally:
        if bot_process is not None and bot_process.poll() is None:
            bot_process.send_signal(signal.SIGTERM)
            try:
                bot_process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                bot_process.kill()
                bot_process.wait()
        if log is not None:
            log.close()
        stop_all(servers)
        if pg_name:
            drop_database(args, pg_name)
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
