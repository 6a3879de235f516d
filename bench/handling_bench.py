"""How fast stored deliveries are handled (issue 20 item 2): the pipeline's own rate, beside
the floor of the same run — one transaction per delivery that only marks it done.

On a fresh SQLite database (or ``--db-url`` PostgreSQL) with the small district of
``tests/support/batch_district.py`` (WeCom accounts linked) and a batch of 20 objects drawn,
``--deliveries`` stored deliveries in the issue's mix — the administrator's 帮助, inspectors'
``确认 任务=N`` and their clicks on the task card's confirm button, a third each, as a burst
leaves them — are handled by ``Pipeline.process`` (claim, identify, route, handler, answer queued, finish)
until none is left; then as many again are only claimed and finished, one transaction
each: the floor of any handler. Prints both rates and the ratio (stdout), progress and a
chart on stderr. Never fails on timing.
``--busy-loop 0.5`` keeps the event loop busy half the time meanwhile, as acknowledging a
burst does (the handlers' thread then waits for the GIL at its round trips).
Usage: ``.venv/bin/python bench/handling_bench.py [--deliveries N] [--db-url URL] [--busy-loop S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from harness import conclude, say, scratch

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the checkout: tests/support/

from sqlalchemy import Engine  # noqa: E402

from bot.chat.events import CardAction, Event  # noqa: E402
from bot.chat.pipeline import Pipeline  # noqa: E402
from bot.outbound import USER, Destination  # noqa: E402
from bot.terminal import bar_chart, err  # noqa: E402
from handlers import router  # noqa: E402
from storage import inbound, schema  # noqa: E402
from storage.db import make_engine, transaction  # noqa: E402
from storage.sealing import Sealer, new_key  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--db-url", help="a fresh PostgreSQL database URL (default: SQLite in a temporary directory)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--busy-loop", type=float, default=0.0, metavar="SHARE",
                        help="keep the event loop busy this share of the time (0–0.9), as acknowledging a "
                             "burst does, while the deliveries are handled")
    args = parser.parse_args(argv)
    with scratch("shuangsui-handling-bench-", args.keep) as work:
        return asyncio.run(bench(args, work))


async def bench(args, work: Path) -> int:
    from tests.support.batch_district import seed_district
    from tests.support.wecom_bot import fake_wecom, link_inspectors, wecom_settings

    url = args.db_url or f"sqlite:///{work / 'bench.db'}"
    engine = make_engine(url, sealer=Sealer([new_key()]))
    schema.upgrade(engine)
    seed_district(engine, work)
    link_inspectors(engine)
    seats = drawn_seats(engine)
    fake = fake_wecom()
    fake.base_url = "http://127.0.0.1:9"  # nothing is sent: no dispatcher runs
    settings = wecom_settings(fake)
    pipeline = Pipeline(engine, settings, router(), "bench")

    def stored(prefix: str) -> None:
        now = datetime.now(UTC)
        events = [mixed(prefix, n, now, seats[n % len(seats)]) for n in range(args.deliveries)]
        with transaction(engine) as session:
            inbound.take(session, [(e.platform, e.delivery_key, e.to_json()) for e in events], now)

    say(f"{args.deliveries} deliveries through the pipeline")
    stored("h")
    stop = asyncio.Event()
    busy = asyncio.create_task(busy_loop(args.busy_loop, stop))
    started, handled = time.perf_counter(), 0
    while found := await pipeline.process():
        handled += found
    handling = time.perf_counter() - started

    say(f"{args.deliveries} deliveries only claimed and finished (the floor)")
    stored("f")
    started, floored = time.perf_counter(), 0
    while rows := await asyncio.to_thread(pipeline._claim, None):
        def finish(rows=rows) -> None:
            for row in rows:
                with transaction(engine) as session:
                    inbound.finish(session, row.platform, row.delivery_key, pipeline.owner, datetime.now(UTC))
        await asyncio.to_thread(finish)
        floored += len(rows)
    floor = time.perf_counter() - started
    stop.set()
    await busy
    await pipeline.close()

    rates = [("floor: claim + finish", floored / floor), ("pipeline: 帮助/确认/click", handled / handling)]
    print(f"{'PostgreSQL' if args.db_url else 'SQLite'}, {args.deliveries} deliveries"
          + (f", the loop {args.busy_loop:.0%} busy" if args.busy_loop else ""))
    for label, rate in rates:
        print(f"{label:<24} {rate:8.0f} deliveries/s")
    err(bar_chart([(label, round(rate)) for label, rate in rates]))
    conclude(f"handling: {rates[1][1]:.0f} deliveries/s = {rates[1][1] / rates[0][1]:.2f}× the claim-and-finish "
             f"floor ({rates[0][1]:.0f}/s) of the same run")
    done, answered = counts(engine, args.deliveries)
    print(f"done {done} of {2 * args.deliveries}; answers queued for {answered} handled deliveries")
    return 0 if handled == floored == args.deliveries and done == 2 * args.deliveries \
        and answered == args.deliveries else 1


async def busy_loop(share: float, stop: asyncio.Event) -> None:
    """Hold the event loop (and the GIL) ``share`` of the time in 2 ms slices, as parsing
    and acknowledging callbacks does during a burst; both runs see it."""
    if share <= 0:
        return
    share = min(share, 0.9)
    while not stop.is_set():
        until = time.perf_counter() + 0.002
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(0.002 * (1 - share) / share)


def mixed(prefix: str, n: int, now: datetime, seat: tuple[str, int, int]) -> Event:
    """The n-th delivery of the mix: 帮助 from the admin, 确认 任务=N typed, the confirm button clicked."""
    from tests.support.wecom_bot import ADMIN

    user, task, assignment = seat
    if n % 3 == 0:
        return Event("wecom", f"{prefix}{n}", ADMIN, "private", Destination("wecom", USER, ADMIN), now, text="帮助")
    if n % 3 == 1:
        return Event("wecom", f"{prefix}{n}", user, "private", Destination("wecom", USER, user), now,
                     text=f"确认 任务={task}")
    click = CardAction(f"ss-t{task}-a{assignment}", "confirm", str(task), update_token=f"rc{prefix}{n}")
    return Event("wecom", f"{prefix}{n}", user, "private", Destination("wecom", USER, user), now, action=click)


def drawn_seats(engine: Engine) -> list[tuple[str, int, int]]:
    """Draw a batch of 20 objects; each drawn inspector's (WeCom user, task, assignment)."""
    from sqlalchemy import text

    from tests.support.results_district import drawn_batch

    drawn_batch(engine, count=20)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT i.wecom_userid, a.task_id, a.id FROM assignments a JOIN inspectors i ON i.id = a.inspector_id "
            "WHERE a.status <> 'recused' AND i.wecom_userid IS NOT NULL ORDER BY a.id"))]


def counts(engine: Engine, deliveries: int) -> tuple[int, int]:
    """Deliveries done; and those of the pipeline's run (keys ``h…``) whose answer is in the outbox."""
    from sqlalchemy import text

    from bot.outbox_keys import reply

    with engine.connect() as connection:
        done = connection.execute(text("SELECT COUNT(*) FROM inbound_deliveries WHERE status = 'done'")).scalar_one()
        keys = set(connection.execute(text("SELECT idempotency_key FROM outbox")).scalars())
    return done, sum(reply("wecom", f"h{n}", 0).value in keys for n in range(deliveries))


if __name__ == "__main__":
    sys.exit(main())
