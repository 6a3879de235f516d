"""How fast stored deliveries are handled (issue 20 item 2): the pipeline's own rate, beside
the floor of the same run — one transaction per delivery that only marks it done.

On a fresh SQLite database (or ``--db-url`` PostgreSQL) with the small district of
``tests/support/batch_district.py`` (WeCom accounts linked), ``--deliveries`` stored
deliveries from the administrator — 帮助 and 进度 alternately, as a burst leaves them — are
handled by ``Pipeline.process`` (claim, identify, route, handler, answer queued, finish)
until none is left; then as many again are only claimed and finished, one transaction
each: the floor of any handler. Prints both rates and the ratio (stdout), progress and a
chart on stderr. Never fails on timing.
Usage: ``.venv/bin/python bench/handling_bench.py [--deliveries N] [--db-url URL]``.
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

from bot.chat.events import Event  # noqa: E402
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
    args = parser.parse_args(argv)
    with scratch("shuangsui-handling-bench-", args.keep) as work:
        return asyncio.run(bench(args, work))


async def bench(args, work: Path) -> int:
    from tests.support.batch_district import seed_district
    from tests.support.wecom_bot import ADMIN, fake_wecom, link_inspectors, wecom_settings

    url = args.db_url or f"sqlite:///{work / 'bench.db'}"
    engine = make_engine(url, sealer=Sealer([new_key()]))
    schema.upgrade(engine)
    seed_district(engine, work)
    link_inspectors(engine)
    fake = fake_wecom()
    fake.base_url = "http://127.0.0.1:9"  # nothing is sent: no dispatcher runs
    settings = wecom_settings(fake)
    pipeline = Pipeline(engine, settings, router(), "bench")

    def stored(prefix: str) -> None:
        now = datetime.now(UTC)
        events = [Event("wecom", f"{prefix}{n}", ADMIN, "private", Destination("wecom", USER, ADMIN), now,
                        text="帮助" if n % 2 else "进度") for n in range(args.deliveries)]
        with transaction(engine) as session:
            inbound.take(session, [(e.platform, e.delivery_key, e.to_json()) for e in events], now)

    say(f"{args.deliveries} deliveries through the pipeline")
    stored("h")
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

    rates = [("floor: claim + finish", floored / floor), ("pipeline: 帮助/进度", handled / handling)]
    print(f"{'PostgreSQL' if args.db_url else 'SQLite'}, {args.deliveries} deliveries")
    for label, rate in rates:
        print(f"{label:<24} {rate:8.0f} deliveries/s")
    err(bar_chart([(label, round(rate)) for label, rate in rates]))
    conclude(f"handling: {rates[1][1]:.0f} deliveries/s = {rates[1][1] / rates[0][1]:.2f}× the claim-and-finish "
             f"floor ({rates[0][1]:.0f}/s) of the same run")
    return 0 if handled == floored == args.deliveries else 1


if __name__ == "__main__":
    sys.exit(main())
