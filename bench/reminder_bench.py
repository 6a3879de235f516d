"""How long a reminder sweep takes over 100,000 open tasks (issue 6: under 1 s for the
computation of what is due).

Builds a synthetic district (``generate_district``) on a fresh SQLite database (or
``--db-url`` PostgreSQL), draws one batch of ``--tasks`` tasks through the real service
calls, then spreads the tasks over the workflow by plain SQL: a third waiting for the
inspection, a third inspected on dates over the last six weeks (result due in 20
working days), a third submitted for approval. Then, as of a working morning, it times:

* load: the open work read in bulk (``deadlines.open_work``);
* compute: every deadline on the official calendar and today's rung of each
  (``deadlines_for`` + ``rules.deadlines.step_for``), no I/O — the figure the target is about;
* the first sweep (deadlines stored, reminders and digests queued) and a second one as
  of an hour later (everything already sent: what a routine tick costs).

Prints the figures on stdout, progress and a chart on stderr; never fails on timing.
Usage: ``.venv/bin/python bench/reminder_bench.py [--tasks N] [--db-url URL] [--keep]``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from harness import conclude, say, scratch, timed
from sqlalchemy import text

from bot.batches import commands
from bot.reminders.deadlines import deadlines_for, open_work
from bot.reminders.sweep import policy_of, sweep
from bot.rules.deadlines import step_for
from bot.settings import Settings
from bot.synthetic_district import CREDIT_OFFICE, generate_district
from bot.terminal import bar_chart, err
from storage import schema
from storage.calendar import load_calendar
from storage.db import make_engine, transaction
from storage.importing import import_file
from storage.sealing import Sealer, new_key

TZ = ZoneInfo("Asia/Shanghai")
TARGET = 1.0  # seconds for the computation of what is due


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--db-url", help="a fresh PostgreSQL database URL (default: SQLite in a temporary directory)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    with scratch("shuangsui-reminder-bench-", args.keep) as work:
        return bench(args, work)


def bench(args, work: Path) -> int:
    url = args.db_url or f"sqlite:///{work / 'bench.db'}"
    engine = make_engine(url, sealer=Sealer([new_key()]))
    schema.upgrade(engine)
    objects = max(args.tasks, 1000)
    say(f"generating a district of {objects:,} objects …")
    files = generate_district(work / "district", objects=objects, inspectors=2000)
    for kind in ("units", "items", "inspectors", "teams", "objects"):
        outcome = import_file(engine, kind, files[kind], actor="bench")
        if not outcome.ok:
            print(f"import {kind} refused: {outcome.problems[:3]}")
            return 1
    settings = Settings(security={"keys": [new_key()]}, bureau={"default_lead": CREDIT_OFFICE})
    drawn_on = date(2026, 11, 2)
    at = datetime(2026, 11, 2, 10, tzinfo=TZ)
    say(f"drawing {args.tasks:,} tasks …")
    with transaction(engine) as session:
        batch = commands.run(session, settings, "bench", "new",
                             f"名称=基准 事项=A01 数量={args.tasks} 方式=大随机 截止=2026-12-18", at).batch_id
    for action in ("publish", "draw"):
        with transaction(engine) as session:
            commands.run(session, settings, "bench", action, f"批次={batch}", at)
    with transaction(engine) as session:  # spread the tasks over the workflow
        session.execute(text("UPDATE tasks SET status = 'accepted' WHERE batch_id = :b"), {"b": batch})
        session.execute(text("UPDATE tasks SET status = 'inspected', inspected_on = :d "
                             "WHERE batch_id = :b AND id % 3 = 1"), {"b": batch, "d": drawn_on})
        for offset in range(30):
            session.execute(text("UPDATE tasks SET inspected_on = :d WHERE batch_id = :b AND id % 3 = 1 "
                                 "AND id % 30 = :o"), {"b": batch, "d": drawn_on + timedelta(days=offset),
                                                       "o": offset})
        session.execute(text("UPDATE tasks SET status = 'submitted', inspected_on = :d "
                             "WHERE batch_id = :b AND id % 3 = 2"), {"b": batch, "d": drawn_on})
        session.execute(text(
            "INSERT INTO results (task_id, category, note, status, submitted_by, submitted_at) "
            "SELECT id, 1, '', 'submitted', 'bench', :at FROM tasks WHERE batch_id = :b AND id % 3 = 2"),
            {"b": batch, "at": datetime(2026, 12, 3, 2, tzinfo=UTC)})
    # As of a working morning in mid-December: some due soon, some overdue.
    now = datetime(2026, 12, 10, 9, 30, tzinfo=TZ)
    settings = Settings(security={"keys": [new_key()]}, bureau={"default_lead": CREDIT_OFFICE},
                        console={"enabled": True})
    with transaction(engine) as session:
        calendar = load_calendar(session)
        load_s, work_items = timed(lambda: open_work(session, settings))
    policy, today = policy_of(settings), now.date()

    def compute():
        found = deadlines_for(work_items, calendar, settings.reminders.approval_days)
        cache = {}
        return found, [step_for(today, d["due"], calendar, policy, cache) for d in found.values()]
    compute_s, (found, steps) = timed(compute)
    due_now = sum(1 for s in steps if s)
    first_s, digests = timed(lambda: sweep(engine, settings, now))
    again_s, again = timed(lambda: sweep(engine, settings, now + timedelta(hours=1)))
    kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"open tasks: {len(work_items):,}; deadlines: {len(found):,}; due a reminder today: {due_now:,}")
    print(f"load open work: {load_s:.3f} s")
    print(f"compute deadlines and today's rungs (no I/O): {compute_s:.3f} s "
          f"({compute_s / max(len(found), 1) * 1e6:.1f} µs per deadline) — target < {TARGET:g} s: "
          f"{'MET' if compute_s < TARGET else 'MISSED'}")
    print(f"first sweep (store deadlines, queue {len(digests):,} digests): {first_s:.3f} s")
    print(f"next tick (nothing new: {len(again)} digests): {again_s:.3f} s")
    err(bar_chart([("load", round(load_s * 1000)), ("compute", round(compute_s * 1000)),
                   ("first sweep", round(first_s * 1000)), ("next tick", round(again_s * 1000))]))
    summary = (f"reminders: {len(work_items):,} open tasks on {kind}: compute {compute_s:.3f} s "
               f"({'MET' if compute_s < TARGET else 'MISSED'} < {TARGET:g} s), load {load_s:.2f} s, "
               f"first sweep {first_s:.2f} s ({len(digests):,} digests), next tick {again_s:.2f} s")
    conclude(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
