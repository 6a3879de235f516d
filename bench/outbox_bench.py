"""How fast the outbox empties when the platform, not the bot, is the limit (issue 20 item 1).

A recording stub WeCom API in a process of its own answers every ``message/send`` after
``--latency`` (40 ms: a realistic round trip). In this process, on a fresh SQLite database
(or ``--db-url`` PostgreSQL), the bot's own dispatcher (``bot.chat.dispatcher``, one
instance, ``[outbox] concurrency``) sends through the real WeCom sender:

* **sustained**: ``--messages`` texts to as many distinct members (no member's budget
  binds), the rate from the first claim to the last recorded outcome;
* **fan-out**: a draw's ``--cards`` task cards to as many inspectors, queued in one
  transaction, until the last is recorded sent (target: 2,000 within 15 s);
* **floor**: the same number of bare aiohttp POSTs of the same bodies against the same stub,
  ``concurrency`` at a time: what the platform's latency allows.

Prints rates and the ratio to the floor of the same run (stdout), progress and a chart on
stderr, and checks at the stub and the database that every message arrived exactly once and
is marked sent. Never fails on timing. Usage: ``.venv/bin/python bench/outbox_bench.py
[--messages N] [--cards N] [--latency S] [--concurrency N] [--db-url URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path

import aiohttp
from harness import by_status, conclude, free_port, reader, say, scratch, start_server, stop_all
from wecom_load import AGENT_ID, CORP_ID, run_recording_stub, stub_calls

from bot.chat.dispatcher import Dispatcher
from bot.outbound import USER, Button, Card, Destination, Text
from bot.settings import Settings
from bot.terminal import bar_chart, err
from bot.wecom.api import WeComAPI
from bot.wecom.sender import WeComSender
from storage import outbox, schema
from storage.db import make_engine, transaction
from storage.sealing import Sealer, new_key

TARGET_RATE = 150.0  # sends a second on one instance: the WeCom corp limit (10,000 a minute)
TARGET_FANOUT = 15.0  # seconds for 2,000 cards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--cards", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.040)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--db-url", help="a fresh PostgreSQL database URL (default: SQLite in a temporary directory)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    with scratch("shuangsui-outbox-bench-", args.keep) as work:
        return asyncio.run(bench(args, work))


async def bench(args, work: Path) -> int:
    url = args.db_url or f"sqlite:///{work / 'bench.db'}"
    engine = make_engine(url, sealer=Sealer([new_key()]))
    schema.upgrade(engine)
    counting = reader(url)
    port = free_port()
    stub = start_server(multiprocessing.get_context("spawn"), run_recording_stub, port, args.latency)
    base = f"http://127.0.0.1:{port}"
    wecom = {"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": "s", "token": "t", "encoding_aes_key": "a" * 43,
             "api_base": base}
    # (a bot before [outbox] existed is measured too: its dispatcher sends a claimed batch at a time)
    sending = {"outbox": {"concurrency": args.concurrency}} if "outbox" in Settings.model_fields else {}
    settings = Settings(wecom=wecom, **sending)
    try:
        say(f"floor: {args.messages} bare POSTs, {args.concurrency} at a time, {args.latency * 1000:.0f} ms each")
        floor = await bare_posts(base, args.messages, args.concurrency)
        say(f"sustained: {args.messages} texts to as many members through the dispatcher")
        texts = [(Destination("wecom", USER, f"m{n:06d}"), Text(f"通知 {n}"), f"bench-text:{n}")
                 for n in range(args.messages)]
        sustained = await drained(engine, counting, settings, texts)
        say(f"fan-out: {args.cards} task cards to as many inspectors")
        fanout = await drained(engine, counting, settings, [(Destination("wecom", USER, f"i{n:06d}"), card(n),
                                                   f"bench-card:{n}") for n in range(args.cards)])
        calls = stub_calls(base)
    finally:
        stop_all([stub])
    bot_calls = {key: count for key, count in calls.items() if key.startswith("send|") and
                 not key.startswith("send|floor|")}
    twice = sum(1 for count in bot_calls.values() if count > 1)
    delivered = len(bot_calls)
    statuses = by_status(counting, "outbox")
    expected = args.messages + args.cards
    rates = [("floor (bare POSTs)", args.messages / floor), ("dispatcher, texts", args.messages / sustained),
             ("dispatcher, cards", args.cards / fanout)]
    print(f"latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, "
          f"{'PostgreSQL' if args.db_url else 'SQLite'}")
    for label, rate in rates:
        print(f"{label:<20} {rate:8.1f} sends/s  ({rate / rates[0][1]:.2f}× floor)")
    print(f"fan-out of {args.cards} cards: {fanout:.1f} s (target ≤ {TARGET_FANOUT:.0f} s for 2,000)")
    print(f"delivered {delivered}/{expected}, sent twice {twice}, outbox {dict(statuses)}")
    err(bar_chart([(label, round(rate)) for label, rate in rates]))
    ok = delivered == expected and twice == 0 and statuses.get("sent", 0) == expected
    conclude(f"outbox: {args.messages / sustained:.0f} sends/s sustained (target ≥ {TARGET_RATE:.0f}), "
             f"{args.messages / sustained / rates[0][1]:.2f}× the platform floor; {args.cards} cards in "
             f"{fanout:.1f} s; {'nothing lost or sent twice' if ok else 'LOST OR DUPLICATED MESSAGES'}")
    return 0 if ok else 1


def card(n: int) -> Card:
    return Card(f"ss-bench-{n}", "检查任务", f"对象 {n}：请确认与检查对象无利害关系", [("批次", "2026-DS-001")],
                [Button("confirm", "无利害关系", str(n)), Button("recuse", "申请回避", str(n))])


async def bare_posts(base: str, count: int, concurrency: int) -> float:
    """``count`` POSTs of a text message, ``concurrency`` at a time: the platform's floor."""
    body = {"touser": "floor", "msgtype": "text", "agentid": AGENT_ID, "text": {"content": "通知"}}
    pending = iter(range(count))
    async with aiohttp.ClientSession() as http:
        async def worker() -> None:
            for n in pending:
                async with http.post(f"{base}/cgi-bin/message/send?access_token=t",
                                     json={**body, "text": {"content": f"floor {n}"}}) as response:
                    await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def drained(engine, counting, settings: Settings, messages: list) -> float:
    """Queue ``messages`` in one transaction, then run one dispatcher until all are recorded."""
    with transaction(engine) as session:
        outbox.queue_many(session, messages)
    async with aiohttp.ClientSession() as http:
        api = WeComAPI(settings.wecom, engine, "bench", http)
        dispatcher = Dispatcher(engine, settings, [WeComSender(settings, api)], "bench")
        started = time.perf_counter()
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run(stop))
        while left(counting):
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        stop.set()
        dispatcher.nudge()
        await running
        await dispatcher.flush(5)
    return elapsed


def left(counting) -> int:
    statuses = by_status(counting, "outbox")
    return statuses.get("pending", 0) + statuses.get("sending", 0)


if __name__ == "__main__":
    sys.exit(main())
