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
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness import (
    Column,
    Instance,
    Table,
    bot_env,
    by_status,
    drop_database,
    free_port,
    fresh_database,
    ms,
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
    drive,
    is_stranger,
    msg_id_base,
    new_aes_key,
    run_bare,
    run_stub_api,
    sender_of,
    stub_counts,
    wait_processed,
)

from bot.callback_crypto import MsgCrypt
from bot.terminal import bar_chart, err

TARGET = 0.5  # the bot keeps at least half the bare handler's throughput
P99_TARGET = 2.0  # the bot's p99 acknowledgement latency at most twice the bare handler's
FIRST_GUESS = 15000  # req/s, to size the first run's pre-built payloads; later runs use what was seen


# --- The load generator (--procs processes) ------------------------------------------------------------------


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


def load_run(ctx, target: str, url: str, server_pid: int, round_: int, run_id: int, prebuilt: int, args,
             aes_key: str, admins: list[str]) -> Run:
    """``--procs`` load-generator processes against ``url``; their requests merged."""
    shares = client_shares(args.clients, args.procs)
    loads = [Load(p, url + CALLBACK, shares[p], run_id, prebuilt, aes_key, args.strangers, admins, args.warmup,
                  args.seconds) for p in range(args.procs) if shares[p]]
    run = Run(target, round_, args.seconds, args.warmup, prebuilt=prebuilt * len(loads))
    window = drive(ctx, generate, loads, [server_pid], label=target, prebuilt=prebuilt,
                   clients=f"{args.clients} clients", warmup=args.warmup, seconds=args.seconds, done_timeout=120)
    run.started, run.server_cpu, run.load_cpu = window.started, window.server_cpu, window.load_cpu
    latencies = array("d")
    for outcome in window.outcomes:
        latencies.frombytes(outcome["latencies"])
        acked = array("q")
        acked.frombytes(outcome["acked"])
        run.acked.update(acked)
        run.statuses.update(outcome["statuses"])
        run.extra += outcome["extra"]
    run.latencies = sorted(latencies)
    return run


# --- The database --------------------------------------------------------------------------------------------


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

RUNS = Table(Column("run", 16, left=True), Column("req/s", 10, ",.0f"), Column("p50 ms", 10), Column("p99 ms", 10),
             Column("max ms", 10), Column("non-200", 9), Column(">5 s", 7), Column("server CPU", 12, ".0%", trail=1),
             Column("CPU µs/req", 12, ",.0f"), Column("load CPU", 10, ".0%"))


def report(runs: list[Run], best: dict[str, Run], cores: int) -> None:
    RUNS.header()
    for run in runs:
        mark = "*" if best[run.target] is run else " "
        per_request = run.server_cpu / run.completed * 1e6 if run.completed else math.nan
        RUNS.row(f"{run.target} #{run.round + 1}{mark}", run.rate, ms(run.quantile(0.5)), ms(run.quantile(0.99)),
                 ms(run.latencies[-1] if run.latencies else math.nan), run.not_ok, run.late,
                 run.server_cpu / run.seconds, per_request, run.load_cpu / run.seconds)
        odd = {status: n for status, n in run.statuses.items() if status != "200"}
        if odd:
            RUNS.note(f"answers other than 200: {odd}")
        if run.extra:
            RUNS.note(f"{run.extra:,} payloads built on the clock (pre-built {run.prebuilt:,} ran out)")
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

    with scratch("shuangsui-webhook-bench-", args.keep) as work:
        return bench(args, work)


def bench(args, work: Path) -> int:
    ctx = multiprocessing.get_context("spawn")
    cores = os.cpu_count() or 1
    admins = admins_of(args.users)
    aes_key = new_aes_key()
    servers: list = []
    bots: list[Instance] = []
    pg_name = None
    failures: list[str] = []
    try:
        db_url, pg_name = fresh_database(args.db_url, work)
        kind = "PostgreSQL" if pg_name else "SQLite"
        say(f"{args.clients} clients in {args.procs} processes, {args.seconds:g} s per run, {kind}, "
            f"{cores} cores, in {work}")

        stub_port, bare_port, same_port, bot_port = free_port(), free_port(), free_port(), free_port()
        stub_url = f"http://127.0.0.1:{stub_port}"
        env = bot_env(bot_settings(db_url, aes_key, admins, stub_url))
        say("shuangsui db upgrade …")
        done = run_cli(["db", "upgrade"], env=env, cwd=work)
        if done.returncode:
            print(f"shuangsui db upgrade failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
            return 1

        for target, port, extra in ((run_stub_api, stub_port, ()), (run_bare, bare_port, ("asyncio",)),
                                    (run_bare, same_port, ("bot",))):
            servers.append(start_server(ctx, target, port, *extra))
        bots.append(start_serve(env, work, "bot", bot_port, work / "serve.log"))
        ready(bots[0], "shuangsui serve")
        bot_process, bot_url = bots[0].process, bots[0].url

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
        p99_ratio = bot.quantile(0.99) / bare.quantile(0.99) if bare.latencies else math.nan
        p99_verdict = "MET" if p99_ratio <= P99_TARGET else "MISSED"

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
                   f"p99 ratio {p99_ratio:.2f} {p99_verdict} (target ≤ {P99_TARGET:g}); "
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
        stop_serve(bots, timeout=20)
        stop_all(servers)
        if pg_name:
            drop_database(args.db_url, pg_name)


if __name__ == "__main__":
    sys.exit(main())
