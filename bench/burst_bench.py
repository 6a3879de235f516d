"""A burst of callbacks against one ``shuangsui serve``, answered through a stub WeCom that
takes 40 ms a send: when handling finished and when the last answer reached the platform,
beside the floors of the same run (issue 20 item 2: "the burst … is fully answered within
60 s of its end at 40 ms platform latency, limited only by item 1").

Starts, each in its own process: a recording stub WeCom API (``wecom_load.run_recording_stub``,
``--latency`` a send, remembering when each call arrived and for whom), a bare aiohttp handler
(the acknowledgement floor) and ``--instances`` ``shuangsui serve`` (one by default, on SQLite
in a temporary directory; ``--db-url`` for a fresh PostgreSQL database). Seeded through the CLI
as an operator would: ``--users`` inspectors with WeCom accounts, ``--objects`` objects, a batch
of ``--tasks`` published and drawn, whose task cards go out before the burst.

The burst: ``--clients`` concurrent clients in ``--procs`` load processes post signed,
encrypted callbacks one after the other for ``--seconds`` (30: "30 s at the full
acknowledgement rate"): 80 % ``帮助`` from the inspectors in turn (each gets their help: a real
answer), 10 % ``确认 任务=N`` and 10 % clicks on the task card's confirm button by the drawn
inspectors, and ``--again`` (2 %) re-deliveries of an earlier callback. So many senders that no
member's 30-a-minute budget binds the answers unless the bench is asked to (``--users``).

Then it waits (at most ``--answer-timeout``) until every delivery is handled and the outbox
is empty, and prints, beside the floors of the same run:

* **acknowledged**: the burst's req/s against the bare handler's with the same clients;
* **handled**: when the last delivery was done, relative to the burst's end, and the
  deliveries handled a second from the burst's start (floor: the acknowledgements themselves —
  handling cannot end before the last one);
* **answered**: when the last answer reached the stub, relative to the burst's end, against
  the earliest it could have under the platform's budgets — per corp 10,000 calls a minute,
  per member 30 a minute, and the stub's 40 ms × ``[outbox] concurrency`` — with every answer
  ready the moment its callback was stored (a schedule computed from the same run's calls:
  the window floor), once with WeCom's published windows and once with the bot's own
  (``bot/wecom/sender.py``: the budget in force); and the plain division
  answers ÷ the tightest rate (10,000/min);
* a timeline every ``--every`` seconds: stored, handled, queued, sent — where the answers wait.

Checks (exit 1 when one fails, never on timing): every acknowledged delivery stored once and
handled once with an answer, every confirmation audited once, the outbox rows marked sent
received by the stub exactly once (none sent twice, none lost), none failed, and no member nor
the corp over WeCom's budget at the stub (WeCom drops the excess silently: a loss).

The machine's cores are shared by the load generator, the stub, the bot (and on a shared
machine, others): the ratios of the same run matter more than the figures. Usage:
``.venv/bin/python bench/burst_bench.py [--seconds 30] [--clients 100] [--procs 2] [--users 2000]
[--latency 0.04] [--concurrency 16] [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]``
(``--seconds 10`` for a quick run; the full one takes a few minutes).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from array import array
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the checkout

from harness import (
    Column,
    Table,
    bot_env,
    by_status,
    drop_database,
    free_port,
    fresh_database,
    ms,
    quantile,
    reader,
    say,
    scratch,
    start_server,
    stop_all,
)
from load_bench import (
    AGAIN,
    Entry,
    MixedRun,
    Seat,
    Traffic,
    _send,
    answered,
    cli,
    expected_calls,
    rows,
    scalar,
    start_instances,
    stop_instances,
    wait_sent,
)
from wecom_load import (
    ADMIN,
    bot_settings,
    build_payload,
    client_shares,
    drive,
    is_stranger,
    new_aes_key,
    run_bare,
    run_recording_stub,
    stub_arrivals,
    stub_calls,
    stub_counts,
)

from bot.terminal import bar_chart, err
from bot.wecom.sender import APP_LIMITS, MEMBER_LIMITS
from storage.outbox import RateLimit

KINDS = ("help", "stranger", "command", "click", "again")  # the codes load_bench's clients report by
LABELS = {"help": "帮助 (many users)", "command": "确认 任务=N", "click": "card click 确认", "again": "re-delivery"}
MIX = ("help", "help", "help", "command", "help", "help", "help", "help", "click", "help")
BARE_POOL = 20_000
FIRST_GUESS = 1500  # req/s, to size the pre-built callbacks if the bare run saw less
# WeCom's published budgets (PROTOCOLS.md B.2), and the bot's own (a margin on each window).
PUBLISHED_MEMBER = (RateLimit(30, timedelta(minutes=1)), RateLimit(1000, timedelta(hours=1)))
PUBLISHED_CORP = (RateLimit(10_000, timedelta(minutes=1)), RateLimit(150_000, timedelta(hours=1)))
WITHIN = 60.0  # seconds after the burst the issue wants every answer out by


# --- The traffic ----------------------------------------------------------------------------------------------


@dataclass
class BurstMix:
    """What one load process sends (the fields load_bench's Traffic and _send read)."""

    proc: int
    procs: int
    urls: list[str]
    clients: int
    run_id: int
    prebuilt: int
    cycle: bool
    aes_key: str
    users: list[str]
    seats: list[Seat]
    again: float
    clock0: int
    warmup: float
    seconds: float
    pace: float = 0.0  # seconds between one client's requests (--rate); 0: one after the other


class BurstTraffic(Traffic):
    """帮助 from many inspectors, their confirmations and card clicks; a re-delivery now and then."""

    def _next(self) -> Entry:
        i, mix = len(self.entries), self.mix
        instances = len(mix.urls)
        if is_stranger(i, mix.again) and i >= self.back + 50:
            j = i - self.back - i % 50
            while self.entries[j].kind == AGAIN:
                j -= 1
            first = self.entries[j]
            return Entry((first.instance + 1) % instances, first.query, first.body, first.key, AGAIN)
        kind = MIX[self.made["slot"] % len(MIX)]
        self.made["slot"] += 1
        n = self.made[kind]
        self.made[kind] += 1
        msg_id = self.base + i
        if kind == "help":
            user = mix.users[(n * mix.procs + mix.proc) % len(mix.users)]
            query, body = build_payload(self.crypt, msg_id, user, "帮助")
        elif kind == "command":
            seat = mix.seats[(n * mix.procs + mix.proc) % len(mix.seats)]
            query, body = build_payload(self.crypt, msg_id, seat.user, f"确认 任务={seat.task}")
        else:
            return self._click(i, mix.seats[(n * mix.procs + mix.proc + 7) % len(mix.seats)])
        return Entry(i % instances, query, body, f"app:msg:{msg_id}", KINDS.index(kind))


def generate(mix: BurstMix, go, start, results) -> None:
    """One load-generator process: build its callbacks, say so, wait for the start, send."""
    import asyncio

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    traffic = BurstTraffic(mix)  # type: ignore[arg-type]  # duck-typed: the fields Traffic reads
    traffic.upto(mix.prebuilt - 1)
    results.put(("ready", mix.proc, None))
    go.wait()
    outcome = asyncio.run(_send(mix, traffic, start.value))  # type: ignore[arg-type]
    results.put(("done", mix.proc, outcome))


def burst_run(ctx, target: str, urls: list[str], pids: list[int], round_: int, run_id: int, prebuilt: int,
              cycle: bool, seconds: float, args, aes_key: str, users: list[str], seats: list[Seat]) -> MixedRun:
    shares = client_shares(args.clients, args.procs)
    clock0 = int(time.time())
    pace = args.clients / args.rate if args.rate and not cycle else 0.0
    mixes = [BurstMix(p, args.procs, urls, shares[p], run_id, prebuilt, cycle, aes_key, users, seats, args.again,
                      clock0, 0.0, seconds, pace) for p in range(args.procs) if shares[p]]
    run = MixedRun(target, round_, seconds, 0.0, prebuilt=prebuilt * len(mixes), instances=len(urls))
    window = drive(ctx, generate, mixes, pids, label=run.label, prebuilt=prebuilt,
                   clients=f"{args.clients} clients over {len(urls)} instance(s)", warmup=0.0, seconds=seconds,
                   done_timeout=180)
    run.started, run.server_cpu, run.load_cpu = window.started, window.server_cpu, window.load_cpu
    latencies, kinds = array("d"), array("b")
    for outcome in window.outcomes:
        latencies.frombytes(outcome["latencies"])
        kinds.frombytes(outcome["kinds"])
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
    run.acked = set(run.acked_keys)
    return run


# --- Seeding -------------------------------------------------------------------------------------------------


def seed(env: dict, work: Path, users: int, objects: int, tasks: int) -> str:
    """Migrate; import two stations and an office, ``users`` inspectors with WeCom accounts and
    ``objects`` objects; create, publish and draw a batch of ``tasks``; returns its id."""
    from tests.support.batch_district import ITEMS, UNITS

    inspectors = "id,name,unit,certificate_no,certificate_expiry,specialties,active,wecom_userid\n" + "".join(
        f"I{n:05d},检查员{n},{'S-DC' if n % 2 else 'S-XC'},C{n},2030-12-31,,true,{user_of(n)}\n"
        for n in range(users))
    things = "id,name,kind,industry,region,unit,complaints,abnormal\n" + "".join(
        f"91150602{n:010d},对象{n},有限责任公司,{'餐饮服务' if n % 2 else '批发零售'},东区,"
        f"{'S-DC' if n % 2 else 'S-XC'},{n % 5},{'是' if n % 7 == 0 else '否'}\n" for n in range(1, objects + 1))
    cli(env, work, "db", "upgrade")
    for kind, text in (("units", UNITS), ("items", ITEMS), ("inspectors", inspectors), ("objects", things)):
        path = work / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        cli(env, work, "import", kind, str(path))
    batch = cli(env, work, "batch", "new", "名称=突发", "事项=A01", f"数量={tasks}", "方式=大随机",
                "截止=2026-12-31").strip().splitlines()[-1]
    cli(env, work, "batch", "publish", f"批次={batch}")
    cli(env, work, "batch", "draw", f"批次={batch}")
    return batch


def user_of(n: int) -> str:
    return f"insp{n:05d}"


def seats_of(engine) -> list[Seat]:
    found = rows(engine, "SELECT i.wecom_userid, a.task_id, a.id FROM assignments a JOIN inspectors i "
                         "ON i.id = a.inspector_id WHERE a.status <> 'recused' AND i.wecom_userid IS NOT NULL "
                         "ORDER BY a.id")
    return [Seat(user, task, assignment) for user, task, assignment in found]


# --- The floors ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    ready: float  # time.time() from which it could go (its callback was stored)
    member: str | None  # the member whose budget it spends (None: a card update, the corp's only)


def window_floor(sends: Sequence[Send], before: Sequence[Send], *, lanes: int, latency: float,
                 member: Sequence[RateLimit], corp: Sequence[RateLimit]) -> tuple[float, float, float]:
    """The earliest the last of ``sends`` can reach the platform, each from its ``ready`` time on,
    ``before`` (sends that reached it earlier, at their ``ready``) counted in the windows:
    (with ``lanes`` sends of ``latency`` in flight and the corp budget, scheduled greedily in the
    order ready — optimal for sends of one length —; each member's own budget alone; the lanes alone).
    A lower bound: the two budgets are not combined per send."""
    order = sorted(sends, key=lambda s: s.ready)
    starts = [s.ready for s in sorted(before, key=lambda s: s.ready)]
    free = [0.0] * lanes
    lanes_only = [0.0] * lanes
    last = last_lanes = 0.0
    for send in order:
        at = max(send.ready, free[0])
        for limit in corp:
            if len(starts) >= limit.count:
                at = max(at, starts[-limit.count] + limit.window.total_seconds())
        starts.append(at)
        heapq.heapreplace(free, at + latency)
        last = max(last, at)
        bare = max(send.ready, lanes_only[0])
        heapq.heapreplace(lanes_only, bare + latency)
        last_lanes = max(last_lanes, bare)
    by_member: dict[str, list[float]] = defaultdict(list)
    for send in before:
        if send.member:
            by_member[send.member].append(-send.ready)  # negative: already sent, fixed
    for send in order:
        if send.member:
            by_member[send.member].append(send.ready)
    last_member = 0.0
    for times in by_member.values():
        done = sorted(-t for t in times if t < 0)
        for ready in sorted(t for t in times if t >= 0):
            at = ready
            for limit in member:
                if len(done) >= limit.count:
                    at = max(at, done[-limit.count] + limit.window.total_seconds())
            done.append(at)
            last_member = max(last_member, at)
    return max(last, last_member), last_member, last_lanes


def over_budget(arrivals: Sequence[tuple[float, str, str]], limit: RateLimit, per_member: bool) -> int:
    """Calls at the stub beyond ``limit`` in any window (per member, or all together): what
    WeCom would have dropped."""
    groups: dict[str, list[float]] = defaultdict(list)
    for at, to, call in arrivals:
        if call == "message/send" or not per_member:
            groups[to if per_member else ""].append(at)
    window, excess = limit.window.total_seconds(), 0
    for times in groups.values():
        times.sort()
        inside: deque[float] = deque()
        for at in times:
            while inside and inside[0] <= at - window:
                inside.popleft()
            if len(inside) >= limit.count:
                excess += 1
                continue  # dropped: it does not count
            inside.append(at)
    return excess


# --- Watching ------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    stored: int
    handled: int
    queued: int  # outbox rows in all
    sent: int  # outbox rows sent
    arrived: int  # calls at the stub


def watch(engine, stub_url: str, samples: list[Sample], stop: threading.Event, every: float = 1.0) -> None:
    while not stop.wait(every):
        try:
            inbound, box = by_status(engine, "inbound_deliveries"), by_status(engine, "outbox")
            calls = stub_counts(stub_url)
        except Exception:  # noqa: BLE001 - a busy database now and then: the next sample
            continue
        samples.append(Sample(time.time(), sum(inbound.values()), inbound["done"], sum(box.values()), box["sent"],
                              calls.get("message/send", 0) + calls.get("update_template_card", 0)))


def wait_answered(engine, since: float, timeout: float) -> tuple[bool, Counter, Counter]:
    """Until no delivery waits and the outbox holds nothing pending or being sent."""
    while True:
        inbound, box = by_status(engine, "inbound_deliveries"), by_status(engine, "outbox")
        done = not (inbound["pending"] + inbound["processing"] + box["pending"] + box["sending"])
        if done or time.time() - since > timeout:
            return done, inbound, box
        time.sleep(0.5)


def epoch(value) -> float:
    """A stored timestamp (PostgreSQL: aware; SQLite through a plain query: ISO text in UTC) in seconds."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


# --- The bench -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of the burst")
    parser.add_argument("--bare-seconds", type=float, default=10.0, help="seconds of each bare-handler run")
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients in all")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="callbacks a second offered in all (556: the issue's burst); 0: as fast as acknowledged")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--instances", type=int, default=1, help="shuangsui serve instances (PostgreSQL for >1)")
    parser.add_argument("--users", type=int, default=2000, help="inspectors with WeCom accounts the 帮助 come from")
    parser.add_argument("--objects", type=int, default=600, help="objects imported")
    parser.add_argument("--tasks", type=int, default=300, help="tasks drawn (their inspectors confirm and click)")
    parser.add_argument("--again", type=float, default=0.02, help="share of re-deliveries of an earlier callback")
    parser.add_argument("--latency", type=float, default=0.04, help="seconds the stub takes to answer each send")
    parser.add_argument("--concurrency", type=int, default=16, help="[outbox] concurrency of the bot")
    parser.add_argument("--answer-timeout", type=float, default=600.0,
                        help="seconds after the burst to wait for every answer")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between the timeline's lines")
    parser.add_argument("--db-url", help="a PostgreSQL server URL (a fresh database, dropped after); default SQLite")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (and the serve log)")
    args = parser.parse_args(argv)
    if args.procs < 1 or args.clients < args.procs:
        parser.error("need at least one client per load-generator process")
    if args.instances != 1 and not args.db_url:
        parser.error("--instances > 1 needs --db-url (SQLite is one serve deployment)")

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    with scratch("shuangsui-burst-bench-", args.keep) as work:
        return bench(args, work)


def bench(args, work: Path) -> int:
    began = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    aes_key = new_aes_key()
    servers: list = []
    instances: list = []
    pg_name = None
    engine = None
    failures: list[str] = []
    stop_watch = threading.Event()
    try:
        db_url, pg_name = fresh_database(args.db_url, work)
        database = "PostgreSQL" if pg_name else "SQLite"
        say(f"{args.instances} × serve on {database}, {args.clients} clients in {args.procs} processes, "
            f"{args.seconds:g} s burst, stub WeCom {args.latency * 1000:g} ms a send, [outbox] concurrency "
            f"{args.concurrency}, {os.cpu_count()} cores, in {work}")
        stub_port = free_port()
        stub_url = f"http://127.0.0.1:{stub_port}"
        env = bot_env(bot_settings(db_url, aes_key, [ADMIN], stub_url)
                      | {"SHUANGSUI__BUREAU__DEFAULT_LEAD": "U-XY",
                         "SHUANGSUI__OUTBOX__CONCURRENCY": str(args.concurrency)})
        say(f"seeding: {args.users:,} inspectors, {args.objects:,} objects, a batch of {args.tasks} drawn …")
        batch = seed(env, work, args.users, args.objects, args.tasks)
        engine = reader(db_url)
        seats = seats_of(engine)
        if not seats:
            raise RuntimeError("the draw assigned no inspector with a WeCom account")
        users = [user_of(n) for n in range(args.users)]
        say(f"batch {batch}: {len(seats)} assignments of {len({s.task for s in seats})} tasks")

        servers.append(start_server(ctx, run_recording_stub, stub_port, args.latency, name="stub WeCom API"))
        bare_port = free_port()
        servers.append(start_server(ctx, run_bare, bare_port, "asyncio", name="bare aiohttp"))
        bare_url, bare_pid = f"http://127.0.0.1:{bare_port}", servers[1].pid
        say(f"starting {args.instances} × shuangsui serve …")
        instances = start_instances(env, work, args.instances)
        cards = wait_sent(engine, 120)
        say(f"task cards out before the burst: outbox {dict(cards)}")

        common = dict(args=args, aes_key=aes_key, users=users, seats=seats)
        bare1 = burst_run(ctx, "bare aiohttp", [bare_url], [bare_pid], 1, 1, BARE_POOL, True, args.bare_seconds,
                          **common)
        say(f"bare: {bare1.rate:,.0f} req/s, p99 {ms(bare1.quantile(0.99))} ms")
        expected = args.rate * 1.05 if args.rate else max(0.6 * bare1.rate, FIRST_GUESS)
        prebuilt = max(2000, math.ceil(expected * (args.seconds + 1) / args.procs))
        samples: list[Sample] = []
        watcher = threading.Thread(target=watch, args=(engine, stub_url, samples, stop_watch), daemon=True)
        watcher.start()
        bot = burst_run(ctx, "bot burst", [i.url for i in instances], [i.process.pid for i in instances], 1, 2,
                        prebuilt, False, args.seconds, **common)
        start, end = bot.started, bot.started + bot.seconds
        say(f"burst: {bot.rate:,.0f} req/s, p99 {ms(bot.quantile(0.99))} ms, {sum(bot.errors.values())} not 200; "
            "waiting for every answer …")
        complete, inbound_left, outbox_left = wait_answered(engine, end, args.answer_timeout)
        waited = time.time() - end
        stop_watch.set()
        alive = {i.name: i.process.poll() for i in instances}
        say("stopping serve (SIGTERM) …")
        codes = stop_instances(instances)
        bare2 = burst_run(ctx, "bare aiohttp", [bare_url], [bare_pid], 2, 3, BARE_POOL, True, args.bare_seconds,
                          **common)
        say(f"bare: {bare2.rate:,.0f} req/s, p99 {ms(bare2.quantile(0.99))} ms")

        # --- what the database and the stub hold
        stored = rows(engine, "SELECT delivery_key, status, received_at, done_at FROM inbound_deliveries")
        keys = {key for key, *_ in stored}
        received = {key: epoch(at) for key, _, at, _ in stored}
        statuses = Counter(status for _, status, _, _ in stored)
        done_at = [epoch(done) for _, status, _, done in stored if status == "done"]
        lost, doubled = len(bot.acked - keys), len(stored) - len(keys)
        unanswered = len({key for key, status, *_ in stored if status == "done"} - answered(engine))
        confirmed_twice = scalar(engine, "SELECT COUNT(*) FROM (SELECT subject, detail->>'inspector' FROM audit_log "
                                         "WHERE action = 'task.confirmed' GROUP BY 1, 2 HAVING COUNT(*) > 1) AS t")
        confirmed = scalar(engine, "SELECT COUNT(*) FROM assignments WHERE status = 'confirmed'")
        confirmations = scalar(engine, "SELECT COUNT(*) FROM audit_log WHERE action = 'task.confirmed'")
        box = rows(engine, "SELECT idempotency_key, rate_key, kind, status, created_at, sent_at, payload FROM outbox")
        box_status = Counter(status for _, _, _, status, *_ in box)
        sent, sending, calls = expected_calls(engine, "sent"), expected_calls(engine, "sending"), stub_calls(stub_url)
        sent_twice = sum((calls - (sent + sending)).values())
        never_arrived = sum((sent - calls).values())
        arrivals = stub_arrivals(stub_url)
        over_member = over_budget(arrivals, PUBLISHED_MEMBER[0], per_member=True)
        over_corp = over_budget(arrivals, PUBLISHED_CORP[0], per_member=False)

        # --- the answers of the burst, and their floors
        def delivery_of(idempotency_key: str) -> str | None:
            if not idempotency_key.startswith("event:wecom:"):
                return None
            return idempotency_key.removeprefix("event:wecom:").rpartition(":")[0]

        ready: list[Send] = []
        answer_lag: list[float] = []
        parts = 0
        for key, rate_key, kind, status, created, sent_at, payload in box:
            made = epoch(created)
            if made < start - 1.0:
                continue  # the task cards, out before the burst (counted below as sends already made)
            origin = received.get(delivery_of(key) or "", made)
            member = rate_key.split(":", 2)[2] if rate_key else None
            if isinstance(payload, str):
                payload = json.loads(payload)
            n = len(expected_calls_of(kind, payload))
            parts += n
            ready.extend(Send(origin, member) for _ in range(n))
            if status == "sent":
                answer_lag.append(epoch(sent_at) - origin)
        answer_lag.sort()
        before = [Send(at, to if call == "message/send" else None) for at, to, call in arrivals if at < start]
        burst_calls = [at for at, _, _ in arrivals if at >= start]
        last_call = max(burst_calls, default=math.nan)
        floors = {}
        for name, member, corp in (("published", PUBLISHED_MEMBER, PUBLISHED_CORP),
                                   ("in force", MEMBER_LIMITS, APP_LIMITS)):
            floors[name] = window_floor(ready, before, lanes=args.concurrency, latency=args.latency,
                                        member=member, corp=corp)
        corp_rate = PUBLISHED_CORP[0].count / PUBLISHED_CORP[0].window.total_seconds()
        lane_rate = args.concurrency / args.latency
        plain = len(ready) / min(corp_rate, lane_rate)

        # --- report
        bare = max((bare1, bare2), key=lambda r: r.rate)
        last_done = max(done_at, default=math.nan)
        handled = len(done_at)
        print()
        print(f"burst: 1 × {args.seconds:g} s, {args.clients} clients ({args.procs} procs), {len(users):,} users, "
              f"{len(seats)} drawn seats, {database}, stub {args.latency * 1000:g} ms a send, [outbox] concurrency "
              f"{args.concurrency}")
        table = Table(Column("", 34, left=True), Column("measured", 16), Column("floor", 16), Column("ratio", 8))
        table.header()
        if args.rate:
            table.row("acknowledged req/s (offered)", f"{bot.rate:,.0f}", f"{args.rate:,.0f}",
                      f"{bot.rate / args.rate:.2f}")
        table.row("acknowledged req/s (bare aiohttp)", f"{bot.rate:,.0f}", f"{bare.rate:,.0f}",
                  f"{bot.rate / bare.rate:.2f}" if bare.rate else "-")
        table.row("ack p99 ms (bare aiohttp)", ms(bot.quantile(0.99)), ms(bare.quantile(0.99)),
                  f"{bot.quantile(0.99) / bare.quantile(0.99):.2f}" if bare.latencies else "-")
        table.row("handling done, s after burst end", f"{last_done - end:+,.1f}", "+0.0", "")
        table.row("handled/s from burst start (ack/s)", f"{handled / max(0.001, last_done - start):,.0f}",
                  f"{bot.rate:,.0f}", f"{handled / max(0.001, last_done - start) / bot.rate:.2f}" if bot.rate else "-")
        for name, (floor, member_floor, lanes_floor) in floors.items():
            table.row(f"last answer at stub, s (floor {name})", f"{last_call - end:+,.1f}", f"{floor - end:+,.1f}",
                      f"{(last_call - start) / max(0.001, floor - start):.2f}")
        table.row("  the same, from burst start (s)", f"{last_call - start:,.1f}",
                  f"{floors['in force'][0] - start:,.1f}", "")
        table.row("answers ÷ 10,000/min (plain floor)", f"{last_call - start:,.1f}", f"{plain:,.1f}",
                  f"{(last_call - start) / plain:.2f}" if plain else "-")
        print(f"the floors: every answer ready when its callback was stored, at most {args.concurrency} sends of "
              f"{args.latency * 1000:g} ms in flight (alone: last at {floors['in force'][2] - end:+.1f} s), the corp "
              f"budget of 10,000 calls a minute (published) or {APP_LIMITS[0].window.total_seconds():g} s (in force: "
              f"bot/wecom/sender.py), each member's 30 a minute alone (last at "
              f"{floors['in force'][1] - end:+.1f} s in force); the "
              f"{len(before):,} calls made before the burst (the task cards) count in the windows")
        print(f"answers: {len(ready):,} calls for the burst ({box_status['sent']:,} outbox rows sent in all); "
              f"callback stored → answer recorded sent: p50 {quantile(answer_lag, 0.5):,.1f} s, p99 "
              f"{quantile(answer_lag, 0.99):,.1f} s, max {answer_lag[-1] if answer_lag else math.nan:,.1f} s; "
              f"all out within {WITHIN:g} s of the burst's end: {'yes' if last_call - end <= WITHIN else 'NO'} "
              f"(floor in force: {'yes' if floors['in force'][0] - end <= WITHIN else 'no'})")
        if not complete:
            print(f"NOT all answered {waited:.0f} s after the burst (--answer-timeout): inbound "
                  f"{dict(inbound_left)}, outbox {dict(outbox_left)}")
        timeline(samples, start, end, args.every)
        print(f"database: {len(stored):,} deliveries stored for {len(bot.acked):,} acknowledged: {lost} lost, "
              f"{doubled} stored twice; by status {dict(statuses)}; {unanswered} done without an answer; "
              f"{confirmations} confirmations audited for {confirmed} confirmed assignments ({confirmed_twice} twice)")
        print(f"re-deliveries: {bot.posted[AGAIN]:,} posted, {bot.ok[AGAIN]:,} answered 200, "
              f"{len(bot.again_keys & keys):,} of their {len(bot.again_keys):,} keys stored (once each, above)")
        print(f"outbox: {dict(box_status)}; {sum(sent.values()):,} calls marked sent = {sum(calls.values()):,} at "
              f"the stub: {sent_twice} sent twice, {never_arrived} marked sent but never received; over WeCom's "
              f"budget at the stub (dropped by WeCom): {over_member} per member, {over_corp} per corp")
        print(f"serve exit codes on SIGTERM {codes}")
        for label, failed in ((f"{lost} acknowledged deliveries not stored", lost),
                              (f"{doubled} deliveries stored twice", doubled),
                              (f"deliveries failed: {statuses['failed']}", statuses["failed"]),
                              (f"{unanswered} done deliveries without an answer", unanswered),
                              (f"{confirmations} confirmations audited for {confirmed} confirmed",
                               confirmations != confirmed or confirmed_twice),
                              (f"{sent_twice} sent twice", sent_twice),
                              (f"{never_arrived} marked sent but never received", never_arrived),
                              (f"{box_status['failed']} outbox rows failed", box_status["failed"]),
                              (f"over WeCom's budget: {over_member} per member, {over_corp} per corp",
                               over_member or over_corp),
                              (f"instance exited during the bench: {alive}",
                               any(code is not None for code in alive.values()))):
            if failed:
                failures.append(label)
        print()
        summary = (f"burst: {bot.rate:,.0f} req/s acknowledged ({bot.rate / bare.rate:.2f}× bare), handling done "
                   f"{last_done - end:+.1f} s after the burst ({handled / max(0.001, last_done - start):,.0f}/s), "
                   f"last of {len(ready):,} answers at the stub {last_call - end:+.1f} s (floor in force "
                   f"{floors['in force'][0] - end:+.1f} s, published {floors['published'][0] - end:+.1f} s; ratio "
                   f"{(last_call - start) / max(0.001, floors['in force'][0] - start):.2f}); {lost} lost, {doubled} "
                   f"stored twice, {sent_twice} sent twice; {time.monotonic() - began:.0f} s in all"
                   + (f"; FAILED: {'; '.join(failures)}" if failures else ""))
        print(summary)
        err()
        err(bar_chart([("last answer, s from burst start", round(last_call - start)),
                       ("floor in force", round(floors["in force"][0] - start)),
                       ("floor published", round(floors["published"][0] - start)),
                       ("handling done", round(last_done - start))]))
        err(summary)
        return 1 if failures else 0
    except RuntimeError as exc:
        print(f"bench failed: {exc}")
        return 1
    except KeyboardInterrupt:
        print("bench interrupted")
        return 130
    finally:
        stop_watch.set()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if instances:
            stop_instances([i for i in instances if not i.log.closed])
        stop_all(servers)
        if engine is not None:
            engine.dispose()
        if pg_name:
            drop_database(args.db_url, pg_name)


def expected_calls_of(kind: str, payload: dict) -> list[str]:
    """The calls one outbox row makes (a long text in parts)."""
    from bot.chat.long_text import split_text
    from bot.wecom.sender import TEXT_BYTES

    message = payload["message"]
    if kind == "text" and len(message["text"].encode()) > TEXT_BYTES:
        return split_text(message["text"], TEXT_BYTES)
    return [kind]


def timeline(samples: list[Sample], start: float, end: float, every: float) -> None:
    """Every ``every`` seconds from the burst's start: stored, handled, queued, sent, and the rates between."""
    if not samples:
        return
    table = Table(Column("t s", 7), Column("stored", 9, ","), Column("/s", 7, ",.0f"), Column("handled", 9, ","),
                  Column("/s", 7, ",.0f"), Column("queued", 9, ","), Column("sent", 9, ","), Column("/s", 7, ",.0f"),
                  Column("waiting", 9, ","))
    print(f"timeline (t from the burst's start; the burst ends at {end - start:g} s; queued: outbox rows, "
          "sent: calls at the stub, waiting: queued − sent rows):")
    table.header()
    previous, mark = samples[0], start
    for sample in samples:
        if sample.at < mark and sample is not samples[-1]:
            continue
        span = max(0.001, sample.at - previous.at)
        table.row(f"{sample.at - start:.0f}", sample.stored, (sample.stored - previous.stored) / span, sample.handled,
                  (sample.handled - previous.handled) / span, sample.queued, sample.arrived,
                  (sample.arrived - previous.arrived) / span, sample.queued - sample.sent)
        previous, mark = sample, sample.at + every
        if sample.stored == sample.handled and sample.queued == sample.sent and sample.at > end + every:
            break


if __name__ == "__main__":
    sys.exit(main())
