"""Two ``shuangsui serve`` instances on one PostgreSQL database under 200 concurrent signed WeCom
callbacks — mixed commands and card clicks — beside bare aiohttp handlers of the same run.

Starts, each in its own process:

* a recording stub WeCom API (``gettoken``, ``message/send``, ``update_template_card``, all
  answering ``errcode 0``) that remembers every call by recipient and content (a text's
  digest, a card's ``task_id``), so that a message sent twice shows;
* ``--instances`` bare aiohttp apps (``wecom_load.run_bare``) whose ``POST /wecom/callback``
  reads the body and answers an empty 200: the floor any aiohttp handler pays on this machine;
* a fresh PostgreSQL database on the server of ``--db-url`` (dropped after), migrated and
  seeded as an operator would, through the CLI: the small district of ``tests/support/batch_district.py``
  with WeCom accounts for its eight inspectors, and a batch of 20 objects published and drawn,
  whose task cards the bot sends to the inspectors before the load starts;
* ``--instances`` bot instances, ``shuangsui serve`` on that database with one configuration,
  each on its own port with its own log, behind no proxy.

Then, against the bare handlers, the bot, and the bare handlers again, a load generator of
``--procs`` processes with ``--clients`` concurrent aiohttp clients in all, each posting signed,
encrypted self-built app callbacks (PROTOCOLS.md A.2–A.5, B.4) one after the other, request by
request round robin over the instances: 40% ``帮助`` / ``进度 批次=…`` from the administrator,
20% ``帮助`` / ``抽取 批次=…`` from a user without a role (refused and audited), 20% ``确认 任务=N``
from inspectors on their own tasks and 20% clicks on their task cards (``template_card_event``,
``confirm:<task>`` on ``ss-t<task>-a<assignment>``); in among them ``--again`` (2%) re-deliveries:
an earlier callback byte for byte, posted to another instance than the first, which must be
acknowledged and not processed again. Callbacks are built and encrypted before the clock starts
(the bare handlers, which store nothing, cycle through a pool of them). After a warm-up every
request that completes within ``--seconds`` counts: throughput, p50 and p99 latency, per instance
and per kind; answers other than 200 and answers slower than WeCom's 5 s deadline count over the
whole run. The CPU the servers, the local PostgreSQL and the load generator used in the measured
window is read from ``/proc``.

After the bot's load the bench waits until every stored delivery is processed (by either
instance), stops the instances (SIGTERM: they send what is due) and checks, at the database and
the stub: every acknowledged delivery stored exactly once (none lost, none twice), each processed
once (``done``, answered once, every refusal audited once, every confirmation recorded once),
and every outbox row marked sent received by the stub exactly once (none sent twice, none marked
sent without reaching it). It says which instance processed and sent how much, and how long the
backlog took to drain after the load ended (at most ``--drain-timeout``, an hour by default;
what is still waiting then is reported, and the checks cover what was processed).

The machine is noisy and the load generator shares its cores with the servers: the ratio
bot/bare of the same run matters more than the figures. Timing never fails the run. It exits 1
only if a server does not start or the database and the stub disagree with what was acknowledged.

Usage: ``.venv/bin/python bench/load_bench.py [--seconds 60] [--warmup 2] [--clients 200] [--instances 2]
[--procs 2] [--again 0.02] [--users 1] [--drain-timeout 3600] [--keep]
[--db-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]`` (``--seconds 10`` for a quick check).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import multiprocessing
import os
import secrets
import signal
import sys
import threading
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the checkout: tests/support/batch_district.py

from harness import (
    Column,
    Instance,
    Table,
    bot_env,
    by_status,
    create_database,
    drop_database,
    free_port,
    ms,
    quantile,
    reader,
    ready,
    run_cli,
    say,
    scratch,
    start_serve,
    start_server,
    stop_all,
    stop_serve,
)
from wecom_load import (
    AGENT_ID,
    CALLBACK,
    CORP_ID,
    DEADLINE,
    STRANGER,
    TOKEN,
    Run,
    admins_of,
    bot_settings,
    build_payload,
    client_shares,
    digest,
    drive,
    is_stranger,
    msg_id_base,
    new_aes_key,
    run_bare,
    run_recording_stub,
    seal,
    stub_calls,
    stub_counts,
    wait_processed,
)

from bot.callback_crypto import MsgCrypt
from bot.chat.long_text import split_text
from bot.terminal import bar_chart, err
from bot.wecom.sender import TEXT_BYTES

# The mix, one slot per callback in this order, over and over: 40% admin, 20% each of the rest.
MIX = ("admin", "stranger", "admin", "command", "click", "admin", "command", "stranger", "click", "admin")
KINDS = ("admin", "stranger", "command", "click", "again")
AGAIN = KINDS.index("again")
LABELS = {"admin": "admin 帮助/进度", "stranger": "stranger (refused)", "command": "确认 任务=N",
          "click": "card click 确认", "again": "re-delivery"}
BARE_POOL = 20_000  # callbacks per load process the bare handlers cycle through
FIRST_GUESS = 3000  # req/s, to size the bot's pre-built callbacks if the bare run saw less


# --- The traffic: who sends what, to which instance -------------------------------------------------------


@dataclass(frozen=True)
class Seat:
    """An inspector's place on a drawn task: what they confirm, and the card they click."""

    user: str
    task: int
    assignment: int


@dataclass(frozen=True)
class Entry:
    instance: int
    query: str
    body: bytes
    key: str  # the delivery key the bot makes of it (bot/wecom/parse.py)
    kind: int  # index in KINDS


@dataclass
class Mix:
    """What one load process sends: where, how many clients, and the data the callbacks name."""

    proc: int
    procs: int
    urls: list[str]
    clients: int
    run_id: int
    prebuilt: int
    cycle: bool  # bare handlers: cycle through the pre-built callbacks (they store nothing)
    aes_key: str
    admins: list[str]
    batch: str
    seats: list[Seat]
    again: float
    clock0: int  # clicks' CreateTime counts down from here: each click its own delivery key
    warmup: float
    seconds: float


class Traffic:
    """The callbacks of one load process, built in order; a re-delivery repeats an earlier one."""

    def __init__(self, mix: Mix) -> None:
        self.mix = mix
        self.crypt = MsgCrypt(TOKEN, mix.aes_key, CORP_ID)
        self.base = msg_id_base(mix.run_id, mix.proc)
        self.entries: list[Entry] = []
        self.made: Counter[str] = Counter()
        self.clicks: Counter[int] = Counter()  # per seat
        self.back = 2 * mix.clients + 50  # a re-delivery repeats a callback issued at least this many before

    def upto(self, index: int) -> None:
        while len(self.entries) <= index:
            self.entries.append(self._next())

    def _next(self) -> Entry:
        i, mix = len(self.entries), self.mix
        instances = len(mix.urls)
        if is_stranger(i, mix.again) and i >= self.back + 50:  # evenly spread, like webhook_bench's strangers
            j = i - self.back - i % 50
            while self.entries[j].kind == AGAIN:  # repeat an original, so that it reaches another instance
                j -= 1
            first = self.entries[j]
            return Entry((first.instance + 1) % instances, first.query, first.body, first.key, AGAIN)
        kind = MIX[self.made["slot"] % len(MIX)]
        self.made["slot"] += 1
        n = self.made[kind]
        self.made[kind] += 1
        msg_id = self.base + i
        if kind == "admin":
            sender = mix.admins[n % len(mix.admins)]
            text = "帮助" if n % 2 == 0 else f"进度 批次={mix.batch}"
            query, body = build_payload(self.crypt, msg_id, sender, text)
        elif kind == "stranger":  # asks for help, or tries to draw
            text = "帮助" if n % 2 == 0 else f"抽取 批次={mix.batch}"
            query, body = build_payload(self.crypt, msg_id, STRANGER, text)
        elif kind == "command":
            seat = mix.seats[(n * mix.procs + mix.proc) % len(mix.seats)]
            query, body = build_payload(self.crypt, msg_id, seat.user, f"确认 任务={seat.task}")
        else:
            return self._click(i, mix.seats[(n * mix.procs + mix.proc + 1) % len(mix.seats)])
        return Entry(i % instances, query, body, f"app:msg:{msg_id}", KINDS.index(kind))

    def _click(self, i: int, seat: Seat) -> Entry:
        """The inspector clicks 无利害关系 on the task card (B.4, as the fake WeCom of tests/support/fakes sends it)."""
        mix = self.mix
        created = mix.clock0 - (self.clicks[seat.assignment] * mix.procs + mix.proc)
        self.clicks[seat.assignment] += 1
        card, event_key = f"ss-t{seat.task}-a{seat.assignment}", f"confirm:{seat.task}"
        now = str(int(time.time()))
        inner = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{seat.user}]]>"
                 f"</FromUserName><CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                 f"<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[{event_key}]]></EventKey>"
                 f"<TaskId><![CDATA[{card}]]></TaskId><CardType><![CDATA[button_interaction]]></CardType>"
                 f"<ResponseCode><![CDATA[{secrets.token_urlsafe(24)}]]></ResponseCode>"
                 f"<AgentID>{AGENT_ID}</AgentID></xml>")
        query, body = seal(self.crypt, inner, now)
        return Entry(i % len(mix.urls), query, body, f"app:card:{seat.user}:{created}:{card}:{event_key}",
                     KINDS.index("click"))


# --- The load generator (--procs processes) ----------------------------------------------------------------


def generate(mix: Mix, go, start, results) -> None:
    """One load-generator process: build its callbacks, say so, wait for the start, send."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops it, after Ctrl-C too
    traffic = Traffic(mix)
    traffic.upto(mix.prebuilt - 1)
    results.put(("ready", mix.proc, None))
    go.wait()
    outcome = asyncio.run(_send(mix, traffic, start.value))
    results.put(("done", mix.proc, outcome))


async def _send(mix: Mix, traffic: Traffic, start: float) -> dict:
    import aiohttp
    import yarl

    def url_of(entry: Entry):
        return yarl.URL(mix.urls[entry.instance] + CALLBACK + entry.query, encoded=True)

    urls = [url_of(entry) for entry in traffic.entries]
    measure_from, end = start + mix.warmup, start + mix.warmup + mix.seconds
    latencies, kinds, instances = array("d"), array("b"), array("b")
    acked: list[str] = []
    again: list[str] = []  # keys of the re-deliveries posted
    statuses: Counter[str] = Counter()  # the measured window
    errors: Counter[str] = Counter()  # answers other than 200, over the whole run
    posted: Counter[int] = Counter()  # by kind, whole run
    ok: Counter[int] = Counter()  # answered 200, by kind, whole run
    late = 0
    issued = itertools.count()
    extra = 0
    headers = {"Content-Type": "text/xml"}
    connector = aiohttp.TCPConnector(limit=0)  # one keep-alive connection per client and instance
    timeout = aiohttp.ClientTimeout(total=60)

    pace = getattr(mix, "pace", 0.0)  # seconds between one client's requests (0: one after the other)

    async def client(n: int) -> None:
        nonlocal extra, late
        # the clients' turns spread over the pace
        next_at = start + pace * ((n * mix.procs + mix.proc) / (mix.clients * mix.procs) - 1)
        while time.time() < end:
            if pace:  # an offered rate: each client waits for its next turn
                next_at += pace
                if next_at > time.time():
                    await asyncio.sleep(next_at - time.time())
                if time.time() >= end:
                    break
            i = next(issued)
            if mix.cycle:
                i %= len(urls)
            elif i >= len(urls):  # ran out of pre-built callbacks: build on the clock (counted, reported)
                traffic.upto(i)
                urls.extend(url_of(entry) for entry in traffic.entries[len(urls):])
                extra += 1
            entry = traffic.entries[i]
            began = time.perf_counter()
            try:
                async with session.post(urls[i], data=entry.body, headers=headers) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            latency = time.perf_counter() - began
            posted[entry.kind] += 1
            if entry.kind == AGAIN and not mix.cycle:
                again.append(entry.key)
            if status == "200":
                ok[entry.kind] += 1
                if not mix.cycle:
                    acked.append(entry.key)
            else:
                errors[status] += 1
            late += latency > DEADLINE
            if measure_from <= time.time() < end:
                latencies.append(latency)
                kinds.append(entry.kind)
                instances.append(entry.instance)
                statuses[status] += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.sleep(max(0.0, start - time.time()))
        await asyncio.gather(*(client(n) for n in range(mix.clients)))
    return {"latencies": latencies.tobytes(), "kinds": kinds.tobytes(), "instances": instances.tobytes(),
            "acked": acked, "again": again, "statuses": dict(statuses), "errors": dict(errors),
            "posted": dict(posted), "ok": dict(ok),
            "late": late, "extra": extra}


@dataclass
class MixedRun(Run):
    """A timed run over several instances: what webhook_bench measures, per kind and per instance too."""

    instances: int = 1
    by_kind: dict[int, list[float]] = field(default_factory=dict)  # sorted latencies
    by_instance: dict[int, list[float]] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)  # whole run
    posted: Counter = field(default_factory=Counter)  # whole run, by kind
    ok: Counter = field(default_factory=Counter)  # answered 200, whole run, by kind
    again_keys: set = field(default_factory=set)  # the keys re-delivered
    late_all: int = 0
    db_cpu: float = math.nan
    acked_keys: list[str] = field(default_factory=list)  # every 200, re-deliveries included

    @property
    def label(self) -> str:
        return f"{self.target} ×{self.instances} #{self.round}"


def load_run(ctx, target: str, urls: list[str], pids: list[int], round_: int, run_id: int, prebuilt: int,
             cycle: bool, args, aes_key: str, admins: list[str], batch: str, seats: list[Seat]) -> MixedRun:
    """``--procs`` load-generator processes against ``urls``; their requests merged."""
    shares = client_shares(args.clients, args.procs)
    clock0 = int(time.time())
    mixes = [Mix(p, args.procs, urls, shares[p], run_id, prebuilt, cycle, aes_key, admins, batch, seats, args.again,
                 clock0, args.warmup, args.seconds) for p in range(args.procs) if shares[p]]
    run = MixedRun(target, round_, args.seconds, args.warmup, prebuilt=prebuilt * len(mixes), instances=len(urls))
    window = drive(ctx, generate, mixes, pids, label=run.label, prebuilt=prebuilt,
                   clients=f"{args.clients} clients over {len(urls)} instances", warmup=args.warmup,
                   seconds=args.seconds, done_timeout=180, db_cpu=True)
    run.started, run.server_cpu, run.load_cpu, run.db_cpu = (window.started, window.server_cpu, window.load_cpu,
                                                             window.db_cpu)
    latencies, kinds, instances = array("d"), array("b"), array("b")
    for outcome in window.outcomes:
        latencies.frombytes(outcome["latencies"])
        kinds.frombytes(outcome["kinds"])
        instances.frombytes(outcome["instances"])
        run.acked_keys += outcome["acked"]
        run.statuses.update(outcome["statuses"])
        run.errors.update(outcome["errors"])
        run.posted.update({int(k): n for k, n in outcome["posted"].items()})
        run.ok.update({int(k): n for k, n in outcome["ok"].items()})
        run.again_keys.update(outcome["again"])
        run.late_all += outcome["late"]
        run.extra += outcome["extra"]
    run.latencies = sorted(latencies)
    for code in set(kinds):
        run.by_kind[code] = sorted(x for x, k in zip(latencies, kinds, strict=True) if k == code)
    for code in set(instances):
        run.by_instance[code] = sorted(x for x, n in zip(latencies, instances, strict=True) if n == code)
    run.acked = set(run.acked_keys)
    return run


# --- Seeding, through the CLI as an operator would ---------------------------------------------------------


def cli(env: dict, work: Path, *argv: str) -> str:
    done = run_cli(list(argv), env=env, cwd=work)
    if done.returncode:
        raise RuntimeError(f"shuangsui {' '.join(argv)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def seed(env: dict, work: Path) -> str:
    """Migrate, import the district of tests/support/batch_district.py (inspectors with WeCom accounts),
    create, publish and draw a batch of 20 objects; returns the batch id."""
    from tests.support.batch_district import INSPECTORS as INSPECTOR_ROWS
    from tests.support.batch_district import ITEMS, OBJECTS, TEAMS, UNITS

    lines = INSPECTOR_ROWS.splitlines()
    inspectors = "\n".join([lines[0] + ",wecom_userid"] + [f"{line},insp{n:02d}" for n, line in
                                                             enumerate(lines[1:], start=1)]) + "\n"
    cli(env, work, "db", "upgrade")
    for kind, text in (("units", UNITS), ("items", ITEMS), ("inspectors", inspectors), ("teams", TEAMS),
                       ("objects", OBJECTS)):
        path = work / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        cli(env, work, "import", kind, str(path))
    batch = cli(env, work, "batch", "new", "名称=压测", "事项=A01", "数量=20", "方式=大随机",
                "截止=2026-12-31").strip().splitlines()[-1]
    cli(env, work, "batch", "publish", f"批次={batch}")
    cli(env, work, "batch", "draw", f"批次={batch}")
    return batch


def seats_of(engine) -> list[Seat]:
    from sqlalchemy import text

    with engine.connect() as connection:
        found = connection.execute(text(
            "SELECT i.wecom_userid, a.task_id, a.id FROM assignments a JOIN inspectors i ON i.id = a.inspector_id "
            "WHERE a.status <> 'recused' AND i.wecom_userid IS NOT NULL ORDER BY a.id")).all()
    return [Seat(user, task, assignment) for user, task, assignment in found]


def drain_lines(engine, stop: threading.Event, every: float = 60.0) -> None:
    """A line on standard error now and then while the backlog drains (the bar shows only at a terminal)."""
    while not stop.wait(every):
        counts = by_status(engine, "inbound_deliveries")
        say(f"processing: {counts['done']:,} done, {counts['pending'] + counts['processing']:,} waiting")


def wait_sent(engine, timeout: float) -> Counter:
    """Until the outbox holds nothing due (the draw's task cards are out)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = by_status(engine, "outbox")
        if not (counts["pending"] + counts["sending"]) or time.monotonic() > deadline:
            return counts
        time.sleep(0.3)


# --- The bot's instances -----------------------------------------------------------------------------------


def start_instances(env: dict, work: Path, count: int) -> list[Instance]:
    instances = [start_serve(env, work, "ABCDEFGHI"[n], free_port(), work / f"serve-{'ABCDEFGHI'[n]}.log",
                             own_session=True)  # Ctrl-C is ours
                 for n in range(count)]
    for instance in instances:
        ready(instance, f"shuangsui serve {instance.name} (:{instance.port})")
    return instances


def stop_instances(instances: list[Instance]) -> dict[str, int | None]:
    """SIGTERM, as an orchestrator stops them: each finishes its work and sends what is due."""
    return stop_serve(instances, timeout=40)


# --- The checks at the database and the stub ---------------------------------------------------------------


def scalar(engine, sql: str, **params):
    from sqlalchemy import text

    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def rows(engine, sql: str, **params) -> list:
    from sqlalchemy import text

    with engine.connect() as connection:
        return connection.execute(text(sql), params).all()


def expected_calls(engine, status: str) -> Counter[str]:
    """The stub calls the outbox rows in ``status`` stand for (a long text goes in parts)."""
    found: Counter[str] = Counter()
    for recipient, kind, payload in rows(engine, "SELECT recipient, kind, payload FROM outbox "
                                                 "WHERE status = :s AND platform = 'wecom'", s=status):
        if isinstance(payload, str):  # SQLite gives the JSON column back as text to a plain query
            payload = json.loads(payload)
        message = payload["message"]
        if kind == "text":
            text = message["text"]
            parts = split_text(text, TEXT_BYTES) if len(text.encode()) > TEXT_BYTES else [text]
            found.update(f"send|{recipient}|text|{digest(part)}" for part in parts)
        elif kind == "card":
            found[f"send|{recipient}|template_card|{message['card_id']}"] += 1
        elif kind == "card_update":
            found[f"update|{recipient}|{message['update_token']}"] += 1
        else:
            found[f"send|{recipient}|{kind}|"] += 1
    return found


def answered(engine) -> set[str]:
    """Delivery keys with an answer queued (``event:wecom:<key>:<n>reply…``, bot/chat/context.py)."""
    keys = rows(engine, "SELECT idempotency_key FROM outbox WHERE idempotency_key LIKE 'event:wecom:%'")
    return {key.removeprefix("event:wecom:").rpartition(":")[0] for (key,) in keys
            if "reply" in key.rpartition(":")[2]}


@dataclass
class Checks:
    rows: int = 0
    keys: set = field(default_factory=set)
    lost: int = 0
    unacked: int = 0
    doubled: int = 0
    deliveries: Counter = field(default_factory=Counter)
    reclaimed: int = 0
    unanswered: int = 0
    strangers: int = 0
    refusals: int = 0
    confirmed: int = 0
    confirmations: int = 0
    confirmed_twice: int = 0
    twice: list = field(default_factory=list)  # what a doubled confirmation came from
    again_keys: int = 0
    again_rows: int = 0
    owners: Counter = field(default_factory=Counter)
    senders: Counter = field(default_factory=Counter)
    outbox: Counter = field(default_factory=Counter)
    sent_calls: int = 0
    stub_calls: int = 0
    sent_twice: int = 0
    never_arrived: int = 0
    in_flight: int = 0  # calls for rows left 'sending' at the stop
    in_doubt: int = 0
    stub: dict = field(default_factory=dict)


def check(engine, run: MixedRun, again_keys: set[str], stub_url: str) -> Checks:
    c = Checks()
    stored = rows(engine, "SELECT delivery_key, status, owner, attempts FROM inbound_deliveries "
                          "WHERE platform = 'wecom'")
    c.rows, c.keys = len(stored), {key for key, *_ in stored}
    c.lost, c.unacked, c.doubled = len(run.acked - c.keys), len(c.keys - run.acked), c.rows - len(c.keys)
    c.deliveries = Counter(status for _, status, _, _ in stored)
    c.reclaimed = sum(1 for *_, attempts in stored if attempts > 1)
    c.owners = Counter(owner for _, status, owner, _ in stored if status == "done")
    done = {key for key, status, *_ in stored if status == "done"}
    c.unanswered = len(done - answered(engine))
    c.strangers = scalar(engine, "SELECT COUNT(*) FROM inbound_deliveries WHERE event->>'sender' = :s "
                                 "AND status = 'done'", s=STRANGER)
    c.refusals = scalar(engine, "SELECT COUNT(*) FROM audit_log WHERE action = 'refused' AND actor = :a",
                        a=f"wecom:{STRANGER}")
    c.confirmed = scalar(engine, "SELECT COUNT(*) FROM assignments WHERE status = 'confirmed'")
    c.confirmations = scalar(engine, "SELECT COUNT(*) FROM audit_log WHERE action = 'task.confirmed'")
    c.confirmed_twice = scalar(engine, "SELECT COUNT(*) FROM (SELECT subject, detail->>'inspector' FROM audit_log "
                                       "WHERE action = 'task.confirmed' GROUP BY 1, 2 HAVING COUNT(*) > 1) AS twice")
    if c.confirmed_twice:
        c.twice = doubled_confirmations(engine)
    c.again_keys = len(again_keys)
    c.again_rows = sum(1 for key, *_ in stored if key in again_keys)
    c.outbox = Counter(dict(rows(engine, "SELECT status, COUNT(*) FROM outbox GROUP BY status")))
    c.senders = Counter(dict(rows(engine, "SELECT owner, COUNT(*) FROM outbox WHERE status = 'sent' GROUP BY owner")))
    c.in_doubt = scalar(engine, "SELECT COUNT(*) FROM outbox WHERE in_doubt")
    # A row left 'sending' (claimed when a stopping instance's flush budget ran out) may or may not
    # have reached the stub: any instance sends it again after the lease, in doubt (duplicate check).
    sent, sending, received = expected_calls(engine, "sent"), expected_calls(engine, "sending"), stub_calls(stub_url)
    c.sent_calls, c.stub_calls = sum(sent.values()), sum(received.values())
    c.sent_twice = sum((received - (sent + sending)).values())
    c.never_arrived = sum((sent - received).values())
    c.in_flight = sum(((received - sent) & sending).values())
    c.stub = stub_counts(stub_url)
    return c


def doubled_confirmations(engine, limit: int = 3) -> list[tuple]:
    """For a task confirmed twice by one inspector: the audit entries, and the first deliveries of that
    inspector confirming that task (command or card click) with where and when they were processed."""
    found = []
    doubled = rows(engine, "SELECT subject, detail->>'inspector' FROM audit_log WHERE action = 'task.confirmed' "
                           "GROUP BY 1, 2 HAVING COUNT(*) > 1 ORDER BY 1 LIMIT :n", n=limit)
    for task, inspector in doubled:
        audited = rows(engine, "SELECT seq, at FROM audit_log WHERE action = 'task.confirmed' AND subject = :t "
                               "AND detail->>'inspector' = :i ORDER BY seq", t=task, i=inspector)
        deliveries = rows(engine, "SELECT d.delivery_key, d.owner, d.done_at FROM inbound_deliveries d "
                                  "JOIN inspectors i ON lower(i.wecom_userid) = lower(d.event->>'sender') "
                                  "WHERE i.id = :i AND (d.event->>'text' = :text OR d.event->'action'->>'value' = :t) "
                                  "ORDER BY d.done_at LIMIT 3", i=inspector, t=task, text=f"确认 任务={task}")
        found.append((task, inspector, audited, deliveries))
    return found


def by_instance(counts: Counter, instances: list[Instance]) -> Counter[str]:
    """Counts by owner (``host:pid:random``, bot/app.py ``instance_name``) as counts by instance."""
    names = {str(i.process.pid): f"{i.name} (:{i.port})" for i in instances}
    found: Counter[str] = Counter({name: 0 for name in names.values()})
    for owner, n in counts.items():
        parts = (owner or "").split(":")
        found[names.get(parts[1] if len(parts) == 3 else "", f"other ({owner})")] += n
    return found


# --- Report ------------------------------------------------------------------------------------------------


RUNS = Table(Column("run", 22, left=True), Column("req/s", 9, ",.0f"), Column("p50 ms", 9), Column("p99 ms", 9),
             Column("max ms", 9), Column("non-200", 9), Column(">5 s", 6), Column("server CPU", 12, ".0%", trail=1),
             Column("db CPU", 8, ".0%", trail=1), Column("load CPU", 10, ".0%", trail=1))


def table(runs: list[MixedRun], bot: MixedRun, instances: list[Instance], cores: int) -> None:
    RUNS.header()
    for run in runs:
        RUNS.row(run.label, run.rate, ms(run.quantile(0.5)), ms(run.quantile(0.99)),
                 ms(run.latencies[-1] if run.latencies else math.nan), sum(run.errors.values()), run.late_all,
                 run.server_cpu / run.seconds, run.db_cpu / run.seconds, run.load_cpu / run.seconds)
        if run is bot:
            for n, instance in enumerate(instances):
                got = run.by_instance.get(n, [])
                RUNS.row(f"  instance {instance.name} :{instance.port}", *latency_cells(got, run.seconds),
                         f"{len(got) / max(1, run.completed):>9.0%} of requests")
            for code, kind in enumerate(KINDS):
                got = run.by_kind.get(code, [])
                RUNS.row(f"  {LABELS[kind]}", *latency_cells(got, run.seconds),
                         f"{len(got) / max(1, run.completed):>9.1%} of requests")
        if run.errors:
            RUNS.note(f"answers other than 200: {dict(run.errors)}")
        if run.extra:
            RUNS.note(f"{run.extra:,} callbacks built on the clock (pre-built {run.prebuilt:,} ran out)")
    print(f"req/s and latency over the {bot.seconds:g} s measured window; non-200 and >5 s over the whole run "
          f"(warm-up included); CPU in % of one core over the window ({cores} cores shared by the servers, "
          "PostgreSQL and the load generator; db CPU: the local postgres processes, whoever asked them).")


def latency_cells(got: list[float], seconds: float) -> tuple:
    """req/s, p50, p99 and max of a part of a run's requests (sorted latencies)."""
    return (len(got) / seconds, ms(quantile(got, 0.5)), ms(quantile(got, 0.99)),
            ms(got[-1] if got else math.nan))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds of each run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients in all")
    parser.add_argument("--instances", type=int, default=2, help="shuangsui serve instances (and bare handlers)")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--again", type=float, default=0.02, help="share of re-deliveries of an earlier callback")
    parser.add_argument("--users", type=int, default=1, help="administrators the admin messages come from")
    parser.add_argument("--db-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server URL; a fresh database is created there and dropped")
    parser.add_argument("--drain-timeout", type=float, default=3600.0,
                        help="seconds to wait for the instances to process what they stored")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (and the serve logs)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds the stub WeCom API takes to answer each send (0.04: a realistic platform)")
    args = parser.parse_args(argv)
    if args.procs < 1 or args.clients < args.procs:
        parser.error("need at least one client per load-generator process")
    if not 1 <= args.instances <= 9:
        parser.error("--instances: 1 to 9")
    if not args.db_url.startswith("postgresql"):
        parser.error("--db-url: a PostgreSQL server (several instances share one database)")

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    with scratch("shuangsui-load-bench-", args.keep) as work:
        return bench(args, work)


def bench(args, work: Path) -> int:
    began = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    cores = os.cpu_count() or 1
    admins = admins_of(args.users)
    aes_key = new_aes_key()
    servers: list = []
    instances: list[Instance] = []
    pg_name = None
    failures: list[str] = []
    engine = None
    try:
        db_url, pg_name = create_database(args.db_url)
        say(f"{args.instances} instances, {args.clients} clients in {args.procs} processes, {args.seconds:g} s "
            f"per run, PostgreSQL, {cores} cores, in {work}")
        stub_port = free_port()
        stub_url = f"http://127.0.0.1:{stub_port}"
        env = bot_env(bot_settings(db_url, aes_key, admins, stub_url) | {"SHUANGSUI__BUREAU__DEFAULT_LEAD": "U-XY"})
        say("shuangsui db upgrade, import, batch new / publish / draw …")
        batch = seed(env, work)
        engine = reader(db_url)
        seats = seats_of(engine)
        if not seats:
            raise RuntimeError("the draw assigned no inspector with a WeCom account")
        say(f"batch {batch}: {len(seats)} assignments of {len({s.task for s in seats})} tasks to "
            f"{len({s.user for s in seats})} inspectors")

        servers.append(start_server(ctx, run_recording_stub, stub_port, args.latency, name="stub WeCom API"))
        bare_urls = []
        for _ in range(args.instances):
            port = free_port()
            servers.append(start_server(ctx, run_bare, port, "asyncio", name="bare aiohttp"))
            bare_urls.append(f"http://127.0.0.1:{port}")
        bare_pids = [p.pid for p in servers[1:]]
        say(f"starting {args.instances} × shuangsui serve …")
        instances = start_instances(env, work, args.instances)
        cards = wait_sent(engine, 60)
        say(f"task cards out before the load: outbox {dict(cards)}")

        common = dict(args=args, aes_key=aes_key, admins=admins, batch=batch, seats=seats)
        run_ids = itertools.count(1)
        runs: list[MixedRun] = []
        bare1 = load_run(ctx, "bare aiohttp", bare_urls, bare_pids, 1, next(run_ids), BARE_POOL, True, **common)
        runs.append(bare1)
        say(f"bare: {bare1.rate:,.0f} req/s, p99 {ms(bare1.quantile(0.99))} ms, {sum(bare1.errors.values())} not 200")

        guess = max(bare1.rate, FIRST_GUESS)
        prebuilt = max(2000, math.ceil(guess * 1.5 * (args.warmup + args.seconds + 1) / args.procs))
        bot = load_run(ctx, "bot", [i.url for i in instances], [i.process.pid for i in instances], 1,
                       next(run_ids), prebuilt, False, **common)
        runs.append(bot)
        say(f"bot: {bot.rate:,.0f} req/s, p99 {ms(bot.quantile(0.99))} ms, {sum(bot.errors.values())} not 200")
        at_end = by_status(engine, "inbound_deliveries")  # a moment after the load: how far processing lags
        at_end_after = time.time() - (bot.started + bot.warmup + bot.seconds)
        say("waiting for the instances to process what they acknowledged …")
        quiet = threading.Event()
        if not sys.stderr.isatty():
            threading.Thread(target=drain_lines, args=(engine, quiet), daemon=True).start()
        try:
            bot.drain = wait_processed(engine, bot, args.drain_timeout)
        finally:
            quiet.set()
        alive = {i.name: i.process.poll() for i in instances}
        say("stopping the instances (SIGTERM) …")
        codes = stop_instances(instances)
        c = check(engine, bot, bot.again_keys, stub_url)

        bare2 = load_run(ctx, "bare aiohttp", bare_urls, bare_pids, 2, next(run_ids), BARE_POOL, True, **common)
        runs.append(bare2)
        say(f"bare: {bare2.rate:,.0f} req/s, p99 {ms(bare2.quantile(0.99))} ms")

        if c.lost:
            failures.append(f"{c.lost} acknowledged deliveries not stored")
        if c.doubled:
            failures.append(f"{c.doubled} deliveries stored twice")
        if c.deliveries["failed"]:  # given up after the last attempt (still waiting is timing: reported)
            failures.append(f"deliveries failed: {dict(c.deliveries)}")
        if c.unanswered:
            failures.append(f"{c.unanswered} processed deliveries without an answer")
        if c.refusals != c.strangers:
            failures.append(f"{c.refusals} refusals audited for {c.strangers} deliveries from {STRANGER}")
        if c.confirmations != c.confirmed or c.confirmed_twice:
            failures.append(f"{c.confirmations} confirmations audited for {c.confirmed} confirmed assignments, "
                            f"{c.confirmed_twice} twice")
        if c.again_rows != c.again_keys:
            failures.append(f"re-delivered keys: {c.again_rows} rows for {c.again_keys} keys")
        if c.sent_twice or c.never_arrived:
            failures.append(f"stub against outbox: {c.sent_twice} sent twice, {c.never_arrived} marked sent "
                            "but never received")
        dead = [name for name, code in alive.items() if code is not None]
        if dead:
            failures.append(f"instance {', '.join(dead)} exited during the bench")

        bare = max((bare1, bare2), key=lambda r: r.rate)
        ratio = bot.rate / bare.rate if bare.rate else math.nan

        print()
        table(runs, bot, instances, cores)
        print()
        after = bot.drain["drained_after"]
        if bot.drain["complete"]:
            left = at_end["pending"] + at_end["processing"]
            print(f"bot: {len(bot.acked_keys):,} callbacks acknowledged with 200 ({len(bot.acked):,} distinct "
                  f"deliveries; warm-up and stragglers included), all processed {after:.1f} s after the load "
                  f"ended ({len(bot.acked) / (bot.warmup + bot.seconds + after):,.0f} processed/s from the first "
                  f"request); {at_end_after:.1f} s after the load {at_end['done']:,} were processed and {left:,} "
                  f"waiting, which took {after - at_end_after:.1f} s more "
                  f"({left / max(0.1, after - at_end_after):,.0f}/s once the callbacks stopped)")
        else:
            print(f"bot: NOT all processed {after:.0f} s after the load ended (--drain-timeout): "
                  f"{dict(bot.drain['counts'])}; the checks below cover what was processed")
        processed, sent = by_instance(c.owners, instances), by_instance(c.senders, instances)
        print("instances: " + "; ".join(
            f"{name} processed {processed[name]:,} ({processed[name] / max(1, c.deliveries['done']):.0%}) and "
            f"sent {sent[name]:,} ({sent[name] / max(1, c.outbox['sent']):.0%})" for name in processed)
              + f"; exit codes on SIGTERM {codes}")
        print(f"database: {c.rows:,} deliveries stored for {len(bot.acked):,} acknowledged: {c.lost} lost, "
              f"{c.unacked} stored but not acknowledged, {c.doubled} stored twice; by status {dict(c.deliveries)}; "
              f"{c.reclaimed} claimed more than once")
        print(f"processed once: {c.deliveries['done'] - c.unanswered:,} answered of "
              f"{c.deliveries['done']:,} done ({c.unanswered} without an answer); {c.refusals:,} refusals audited "
              f"for {c.strangers:,} processed deliveries from {STRANGER}; {c.confirmations} confirmations audited for "
              f"{c.confirmed} confirmed assignments ({c.confirmed_twice} twice)")
        names = {str(i.process.pid): i.name for i in instances}
        for task, inspector, audited, deliveries in c.twice:
            print(f"  task {task} confirmed twice by {inspector}: audit seq "
                  + ", ".join(f"{seq} at {at:%H:%M:%S.%f}" for seq, at in audited) + "; first deliveries: "
                  + ", ".join(f"{'click' if key.startswith('app:card:') else 'command'} on "
                              f"{names.get((owner or '::').split(':')[1], owner)} at {done and f'{done:%H:%M:%S.%f}'}"
                              for key, owner, done in deliveries))
        print(f"re-deliveries: {bot.posted[AGAIN]:,} posted, each to another instance than the first, "
              f"{bot.ok[AGAIN]:,} answered 200; the {c.again_keys:,} keys re-delivered are stored as "
              f"{c.again_rows:,} rows, each processed once (above)")
        print(f"outbox: {dict(c.outbox)} (WeCom allows 30 a minute per member: the rest wait), {c.in_doubt} in "
              f"doubt; {c.sent_calls:,} sends marked sent = {c.stub_calls:,} calls at the stub "
              f"({c.stub.get('message/send', 0):,} message/send, {c.stub.get('update_template_card', 0)} "
              f"update_template_card, {c.stub.get('gettoken', 0)} gettoken): {c.sent_twice} sent twice, "
              f"{c.never_arrived} marked sent but never received"
              + (f"; {c.outbox['sending']} rows claimed when the stop's flush budget ran out are left 'sending' "
                 f"({c.in_flight} of them reached the stub): any instance sends them after the lease, in doubt"
                 if c.outbox["sending"] else ""))
        print()
        errors = sum(bot.errors.values())
        summary = (f"load: {args.instances} × shuangsui serve on PostgreSQL, {args.clients} clients ({args.procs} "
                   f"procs), {args.seconds:g} s of mixed callbacks: bot {bot.rate:,.0f} req/s, p50 "
                   f"{ms(bot.quantile(0.5))} ms, p99 {ms(bot.quantile(0.99))} ms, {errors} errors, {bot.late_all} "
                   f"over {DEADLINE:g} s; bare aiohttp ×{args.instances} {bare.rate:,.0f} req/s, p50 "
                   f"{ms(bare.quantile(0.5))} ms, p99 {ms(bare.quantile(0.99))} ms; ratio {ratio:.2f}; drained "
                   f"{after:.0f} s after the load; {c.lost} lost, {c.doubled} stored twice, {c.sent_twice} sent "
                   f"twice; {time.monotonic() - began:.0f} s in all"
                   + ("" if not failures else f"; FAILED: {'; '.join(failures)}"))
        print(summary)
        err()
        err(bar_chart([(f"bare aiohttp ×{args.instances} req/s", round(bare.rate)),
                       (f"bot ×{args.instances} req/s", round(bot.rate))]))
        err(bar_chart([("bare aiohttp p99 ms", round(bare.quantile(0.99) * 1000)),
                       ("bot p99 ms", round(bot.quantile(0.99) * 1000))]))
        err(summary)
        return 1 if failures else 0
    except RuntimeError as exc:
        print(f"bench failed: {exc}")
        return 1
    except KeyboardInterrupt:
        print("bench interrupted")
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if instances:
            stop_instances([i for i in instances if not i.log.closed])
        stop_all(servers)
        if engine is not None:
            engine.dispose()
        if pg_name:
            drop_database(args.db_url, pg_name)


if __name__ == "__main__":
    sys.exit(main())
