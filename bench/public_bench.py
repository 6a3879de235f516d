"""The public pages under load while the bot takes a burst of callbacks (issue 20 item 6).

Starts, each in its own process: a stub WeCom API (where the bot's answers go), ``shuangsui
serve`` on a fresh database seeded through the CLI (the small district of
tests/support/batch_district.py, a batch published and drawn: its plan, draw record and
objects' credit records are public), and a bare aiohttp app that answers the same public
paths with the same bytes from memory and the callbacks with an empty 200 — the floor any
aiohttp server pays here.

Against the bare app and the bot in turn, three measured windows, each with load generators in
processes of their own:

* **pages**: ``--clients`` clients GET the public pages and feeds, round robin;
* **burst**: ``--burst-clients`` clients POST signed, encrypted 帮助 callbacks (PROTOCOLS.md A.2–A.5)
  at ``--burst-rate`` a second in all (open loop: a callback is due at its time whether or not
  the earlier ones were answered, and its latency counts from then — 556/s is the burst the
  issue describes; 0 sends each as soon as the last was answered);
* **both** at once.

Prints each window's rates and p50/p99 (stdout), and the two figures the issue names: the
bot's page throughput during the burst against the bare app's during the same burst
(target ≥ 0.5), and the bot's acknowledgement p99 during the page load against its p99 in
the burst alone (target ≤ 2×). Checks at the database that every acknowledged callback was
stored once and processed, and that every page answered 200 with the body the bot serves;
exits 1 otherwise. Never fails on timing.

Usage: ``.venv/bin/python bench/public_bench.py [--seconds S] [--clients N] [--burst-clients N]
[--burst-rate R] [--procs P] [--keep]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import multiprocessing
import os
import re
import sys
import time
import urllib.request
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
    free_port,
    fresh_database,
    ms,
    quantile,
    reader,
    ready,
    say,
    scratch,
    start_serve,
    start_server,
    stop_all,
    stop_serve,
)
from load_bench import seed
from wecom_load import (
    CALLBACK,
    CORP_ID,
    TOKEN,
    admins_of,
    bot_settings,
    build_payload,
    client_shares,
    drive,
    msg_id_base,
    new_aes_key,
    run_stub_api,
)

from bot.callback_crypto import MsgCrypt
from bot.terminal import bar_chart, err

PAGES_TARGET = 0.5  # the bot serves at least half the bare app's pages during the burst
P99_TARGET = 2.0  # and its acknowledgement p99 does not double under the page load
PAGES = ("index.html", "items.html", "plans.html", "objects.html", "results.csv", "anchor.txt")
LINK = re.compile(r'href="(?:/public/)?((?:batches|objects)/[^"#?]+\.html)"')


# --- The bare app: the same bytes from memory --------------------------------------------------------------


def run_bare_public(port: int, bodies: dict[str, tuple[bytes, str]]) -> None:
    """An aiohttp app answering ``/public/<path>`` with the bot's own bytes and the callback
    with an empty 200: what serving these pages costs aiohttp itself on this machine."""
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        body, content_type = bodies[request.match_info["path"]]
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "public, max-age=60"})

    async def callback(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/public/{path:.+}", page)
    app.router.add_post(CALLBACK, callback)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=asyncio.new_event_loop())


def public_bodies(url: str) -> dict[str, tuple[bytes, str]]:
    """The bot's public pages and feeds, and the plan, draw and credit-record pages they link."""
    def fetch(path: str) -> tuple[bytes, str]:
        with urllib.request.urlopen(f"{url}/public/{path}", timeout=30) as response:
            return response.read(), response.headers.get("Content-Type", "")

    bodies = {path: fetch(path) for path in PAGES}
    for path in list(bodies):
        for link in sorted(set(LINK.findall(bodies[path][0].decode("utf-8", "replace"))))[:20]:
            bodies.setdefault(link, fetch(link))
    return bodies


# --- The load generators ---------------------------------------------------------------------------------


@dataclass
class Load:
    kind: str  # "pages" | "burst"
    proc: int
    url: str
    clients: int
    run_id: int
    warmup: float
    seconds: float
    aes_key: str = ""
    admin: str = ""
    paths: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()  # the expected body of each path (pages)
    prebuilt: int = 0
    rate: float = 0.0  # callbacks a second this process offers (0: each client sends as soon as answered)


def generate(load: Load, go, start, results) -> None:
    """One load-generator process: build what it sends, say so, wait for the start, send."""
    payloads: list[tuple[str, bytes]] = []
    if load.kind == "burst":
        crypt = MsgCrypt(TOKEN, load.aes_key, CORP_ID)
        base = msg_id_base(load.run_id, load.proc)
        payloads = [build_payload(crypt, base + i, load.admin) for i in range(load.prebuilt)]
    results.put(("ready", load.proc, None))
    go.wait()
    results.put(("done", load.proc, asyncio.run(_send(load, payloads, start.value))))


async def _send(load: Load, payloads: list[tuple[str, bytes]], start: float) -> dict:
    import aiohttp
    import yarl

    measure_from, end = start + load.warmup, start + load.warmup + load.seconds
    latencies = array("d")
    acked = array("q")
    statuses: Counter[str] = Counter()
    wrong = 0
    issued = itertools.count()
    base = msg_id_base(load.run_id, load.proc)
    pages = [(yarl.URL(f"{load.url}/public/{path}"), digest) for path, digest in zip(load.paths, load.digests)]
    posts = [(yarl.URL(load.url + CALLBACK + query, encoded=True), body) for query, body in payloads]

    async def client() -> None:
        nonlocal wrong
        while time.time() < end:
            i = next(issued)
            if load.kind == "burst" and i >= len(posts):
                return  # ran out of pre-built callbacks (sized for the window: reported as fewer requests)
            late = 0.0
            if load.rate:  # open loop: the i-th callback is due at its time, answered or not the earlier ones
                due = start + i / load.rate
                if due >= end:
                    return
                await asyncio.sleep(max(0.0, due - time.time()))
                late = max(0.0, time.time() - due)  # every client was busy: the wait counts
            began = time.perf_counter() - late
            try:
                if load.kind == "pages":
                    url, digest = pages[i % len(pages)]
                    async with session.get(url) as response:
                        body = await response.read()
                        status = str(response.status)
                        wrong += status == "200" and hashlib.sha256(body).hexdigest() != digest
                else:
                    url, body = posts[i]
                    async with session.post(url, data=body, headers={"Content-Type": "text/xml"}) as response:
                        await response.read()
                        status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            latency = time.perf_counter() - began
            if load.kind == "burst" and status == "200":
                acked.append(base + i)
            if measure_from <= time.time() < end:
                latencies.append(latency)
                statuses[status] += 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.sleep(max(0.0, start - time.time()))
        await asyncio.gather(*(client() for _ in range(load.clients)))
    return {"kind": load.kind, "latencies": latencies.tobytes(), "acked": acked.tobytes(),
            "statuses": dict(statuses), "wrong": wrong}


@dataclass
class Measured:
    target: str
    window: str
    seconds: float
    pages: list[float]
    posts: list[float]
    statuses: Counter
    wrong: int
    acked: set

    def rate(self, kind: str) -> float:
        return len(self.pages if kind == "pages" else self.posts) / self.seconds

    def p(self, kind: str, q: float) -> float:
        return quantile(self.pages if kind == "pages" else self.posts, q)


def measure(ctx, target: str, window: str, url: str, pid: int, args, run_id: int, bodies, aes_key: str,
            admin: str, expected_rate: float) -> Measured:
    paths = tuple(sorted(bodies))
    digests = tuple(hashlib.sha256(bodies[p][0]).hexdigest() for p in paths)
    loads: list[Load] = []
    procs = max(1, args.procs // 2) if window == "both" else args.procs
    if window in ("pages", "both"):
        loads += [Load("pages", len(loads) + n, url, share, run_id, args.warmup, args.seconds, paths=paths,
                       digests=digests) for n, share in enumerate(client_shares(args.clients, procs)) if share]
    if window in ("burst", "both"):
        rate = args.burst_rate / procs
        prebuilt = int((rate or expected_rate * 1.5 / procs) * (args.warmup + args.seconds + 1)) + 500
        loads += [Load("burst", len(loads) + n, url, share, run_id, args.warmup, args.seconds, aes_key=aes_key,
                       admin=admin, prebuilt=prebuilt, rate=rate)
                  for n, share in enumerate(client_shares(args.burst_clients, procs)) if share]
    done = drive(ctx, generate, loads, [pid], label=f"{target} {window}", prebuilt=loads[-1].prebuilt,
                 clients=f"{len(loads)} load processes", warmup=args.warmup, seconds=args.seconds, done_timeout=120)
    pages, posts, acked = array("d"), array("d"), set()
    statuses: Counter[str] = Counter()
    wrong = 0
    for outcome in done.outcomes:
        (pages if outcome["kind"] == "pages" else posts).frombytes(outcome["latencies"])
        ids = array("q")
        ids.frombytes(outcome["acked"])
        acked.update(ids)
        statuses.update(outcome["statuses"])
        wrong += outcome["wrong"]
    return Measured(target, window, args.seconds, sorted(pages), sorted(posts), statuses, wrong, acked)


# --- Report ----------------------------------------------------------------------------------------------

WINDOWS = Table(Column("run", 18, left=True), Column("pages/s", 10, ",.0f"), Column("page p99 ms", 12),
                Column("callbacks/s", 12, ",.0f"), Column("ack p50 ms", 11), Column("ack p99 ms", 11),
                Column("non-200", 9), Column("wrong body", 11))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds of each window")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds of load before measuring")
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients reading public pages")
    parser.add_argument("--burst-clients", type=int, default=100, help="concurrent clients sending callbacks")
    parser.add_argument("--burst-rate", type=float, default=556.0,
                        help="callbacks a second offered in all (0: as fast as answered); 556/s is the burst "
                             "issue 20 describes")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes per kind of load")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds to wait for the bot to process")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (and the bot's log)")
    args = parser.parse_args(argv)
    with scratch("shuangsui-public-bench-", args.keep) as work:
        return bench(args, work)


def bench(args, work: Path) -> int:
    ctx = multiprocessing.get_context("spawn")
    aes_key, admin = new_aes_key(), admins_of(1)[0]
    servers: list = []
    bots: list[Instance] = []
    failures: list[str] = []
    try:
        db_url, _ = fresh_database(None, work)
        stub_port, bare_port, bot_port = free_port(), free_port(), free_port()
        env = bot_env(bot_settings(db_url, aes_key, [admin], f"http://127.0.0.1:{stub_port}")
                      | {"SHUANGSUI__BUREAU__DEFAULT_LEAD": "U-XY"})
        say("seeding through the CLI: the district, a batch published and drawn …")
        seed(env, work)
        servers.append(start_server(ctx, run_stub_api, stub_port))
        bots.append(start_serve(env, work, "bot", bot_port, work / "serve.log"))
        ready(bots[0], "shuangsui serve")
        bodies = public_bodies(bots[0].url)
        say(f"{len(bodies)} public paths, {sum(len(b) for b, _ in bodies.values()) / 1024:,.0f} KiB in all")
        servers.append(start_server(ctx, run_bare_public, bare_port, bodies))
        targets = {"bare": (f"http://127.0.0.1:{bare_port}", servers[-1].pid),
                   "bot": (bots[0].url, bots[0].process.pid)}
        engine = reader(db_url)
        run_ids = itertools.count(1)
        runs: dict[tuple[str, str], Measured] = {}
        for window in ("pages", "burst", "both"):
            for target, (url, pid) in targets.items():
                expected = 8000.0 if target == "bare" else 4000.0
                run = measure(ctx, target, window, url, pid, args, next(run_ids), bodies, aes_key, admin, expected)
                runs[(target, window)] = run
                say(f"{target} {window}: {run.rate('pages'):,.0f} pages/s, {run.rate('burst'):,.0f} callbacks/s, "
                    f"ack p99 {ms(run.p('burst', 0.99))} ms")
                if target == "bot" and window != "pages":
                    drained = _drain(engine, args.drain_timeout)
                    if not drained:
                        failures.append(f"deliveries still waiting {args.drain_timeout:g} s after the {window} window")
        acked = {f"app:msg:{msg_id}" for (target, _), run in runs.items() if target == "bot" for msg_id in run.acked}
        stored = _stored(engine)
        lost, doubled = len(acked - set(stored)), len(stored) - len(set(stored))
        engine.dispose()
        if lost:
            failures.append(f"{lost} acknowledged callbacks not stored")
        if doubled:
            failures.append(f"{doubled} callbacks stored twice")
        wrong = sum(run.wrong for run in runs.values())
        if wrong:
            failures.append(f"{wrong} pages answered with another body than the bot's")
        not_ok = {f"{t} {w}": dict(r.statuses) for (t, w), r in runs.items() if set(r.statuses) - {"200"}}
        if not_ok:
            failures.append(f"answers other than 200: {not_ok}")

        print()
        WINDOWS.header()
        for (target, window), run in runs.items():
            WINDOWS.row(f"{target} {window}", run.rate("pages"), ms(run.p("pages", 0.99)), run.rate("burst"),
                        ms(run.p("burst", 0.5)), ms(run.p("burst", 0.99)),
                        sum(n for s, n in run.statuses.items() if s != "200"), run.wrong)
        bare_both, bot_both, bot_burst = runs[("bare", "both")], runs[("bot", "both")], runs[("bot", "burst")]
        pages_ratio = bot_both.rate("pages") / bare_both.rate("pages") if bare_both.rate("pages") else float("nan")
        alone_ratio = (runs[("bot", "pages")].rate("pages") / runs[("bare", "pages")].rate("pages")
                       if runs[("bare", "pages")].rate("pages") else float("nan"))
        p99_ratio = bot_both.p("burst", 0.99) / bot_burst.p("burst", 0.99)
        bare_p99_ratio = bare_both.p("burst", 0.99) / runs[("bare", "burst")].p("burst", 0.99)
        verdict = ("MET" if pages_ratio >= PAGES_TARGET else "MISSED") + " / " + (
            "MET" if p99_ratio <= P99_TARGET else "MISSED")
        offered = f"{args.burst_rate:,.0f}/s offered" if args.burst_rate else "as fast as answered"
        summary = (f"public: {args.clients} page clients, {args.burst_clients} callback clients ({offered}), "
                   f"{args.seconds:g} s: pages during the burst {bot_both.rate('pages'):,.0f}/s against bare "
                   f"{bare_both.rate('pages'):,.0f}/s "
                   f"= {pages_ratio:.2f} (target ≥ {PAGES_TARGET:g}; alone {alone_ratio:.2f}); ack p99 "
                   f"{ms(bot_both.p('burst', 0.99))} ms with the pages against {ms(bot_burst.p('burst', 0.99))} ms "
                   f"without = {p99_ratio:.2f}× (target ≤ {P99_TARGET:g}×; the bare app's own {bare_p99_ratio:.2f}×) "
                   f"{verdict}; {len(acked):,} acknowledged, "
                   f"{lost} lost, {doubled} doubled, {wrong} wrong pages"
                   + ("" if not failures else f"; FAILED: {'; '.join(failures)}"))
        print()
        print(summary)
        err()
        err(bar_chart([("bare pages/s (burst on)", round(bare_both.rate("pages"))),
                       ("bot pages/s (burst on)", round(bot_both.rate("pages")))]))
        err(bar_chart([("bot ack p99 ms, burst alone", round(bot_burst.p("burst", 0.99) * 1000)),
                       ("bot ack p99 ms, with pages", round(bot_both.p("burst", 0.99) * 1000))]))
        err(summary)
        return 1 if failures else 0
    except RuntimeError as exc:
        print(f"bench failed: {exc}")
        return 1
    finally:
        stop_serve(bots, timeout=20)
        stop_all(servers)


def _drain(engine, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = by_status(engine, "inbound_deliveries")
        if not counts["pending"] + counts["processing"]:
            return True
        time.sleep(0.3)
    return False


def _stored(engine) -> list[str]:
    from sqlalchemy import text

    with engine.connect() as connection:
        return [key for (key,) in connection.execute(
            text("SELECT delivery_key FROM inbound_deliveries WHERE platform = 'wecom'"))]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
