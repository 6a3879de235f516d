"""How long an SSR-1 draw takes on a large pool, against floors.

Builds a synthetic district (``generate_district``: 1,000,000 objects and 2,000
inspectors by default) on a fresh SQLite database in a temporary directory, imports it
through ``import_file`` as an administrator would, creates a 5% ``cross`` (交叉随机)
batch announcing a beacon, and publishes it (freezing the pool). Only then is the
beacon value made up, so nothing of the draw can be computed at publication. With it,
the same run times:

* naive: ``SELECT id FROM objects ORDER BY RANDOM() LIMIT k`` on the same database
  (fast, but nobody can check it);
* hash floor: one SHA-256 per pool member in a plain loop (one core);
* selection: the frozen pool read from the database, its digest checked, every member
  scored and the k best kept (``thaw`` + ``select_from_pool``), on every core and in
  one process;
* matching: ``matching_inputs`` and ``matching.match`` for that selection's tasks, and
  (untimed) how many SHA-256 each task's lazy walk cost (DRAW.md §5);
* the whole draw: ``draw.draw`` in one transaction, storing tasks and assignments,
  commit included.

Set-up (generation, imports, publication) is timed for information only. The machine
is noisy, so the ratios to the floors matter more than the seconds; timing never fails
the run. It exits 1 only if an import is refused or the draw disagrees with the phases
timed separately (the same seed must give the same selection and teams).

Usage: ``.venv/bin/python bench/draw_bench.py [--objects N] [--inspectors N]
[--ratio P] [--repeat R] [--keep]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

try:
    import bot  # noqa: F401
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.batches import create, draw, publish, selection
from bot.rules import matching, ssr1
from bot.rules.arguments import parse_arguments
from bot.sealing import keys_of, new_key, unseal
from bot.settings import Settings
from bot.synthetic_district import CREDIT_OFFICE, generate_district
from storage.db import make_engine, transaction
from storage.importing import import_file
from storage.models import Assignment, Batch, InspectionObject, Stratum, Task
from storage.pools import thaw
from storage.schema import upgrade

IMPORT_ORDER = ("units", "items", "inspectors", "teams", "objects", "conflicts")
BEACON_RULE = "开奖后公布的体彩排列5号码"  # announced at publication; its value comes at the draw
TARGET = 2.0  # selection within 2× the hash floor of the same run


@dataclass
class Phase:
    label: str
    seconds: float
    note: str = ""
    ratios: bool = True  # set-up rows are shown without ratios


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """The best time of ``repeat`` runs, with the last run's result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        seconds, result = timed(run)
        best = min(best, seconds)
    return best, result


def say(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


# --- Set-up ----------------------------------------------------------------------------------


def set_up(work: Path, args, failures: list[str]) -> tuple[Any, Settings, list[Phase]]:
    """The district generated, the schema created and every file imported."""
    phases = []
    say(f"generating {args.objects:,} objects, {args.inspectors:,} inspectors …")
    seconds, files = timed(lambda: generate_district(work / "district", seed=args.seed, objects=args.objects,
                                                     inspectors=args.inspectors))
    phases.append(Phase("set-up: generate district (CSV)", seconds, ratios=False))
    db = work / "bench.db"
    settings = Settings(database={"url": f"sqlite:///{db}"}, security={"keys": [new_key()]},
                        bureau={"default_lead": CREDIT_OFFICE})
    engine = make_engine(settings.database.url)
    upgrade(engine)
    for kind in IMPORT_ORDER:
        say(f"import {kind} …")
        seconds, outcome = timed(lambda kind=kind: import_file(engine, kind, files[kind], actor="bench"))
        counts = outcome.counts()
        note = f"{counts['added']:,} added"
        if outcome.problems:
            failures.append(f"import {kind} refused: {outcome.problems[:3]}")
            note = f"REFUSED: {outcome.problems[:3]}"
        phases.append(Phase(f"set-up: import {kind}", seconds, note, ratios=False))
    return engine, settings, phases


def new_and_publish(engine, settings: Settings, ratio: str) -> tuple[str, list[Phase]]:
    """A draft 5% cross batch on A01 announcing a beacon, then published (pool frozen)."""
    today = datetime.now(UTC).astimezone(ZoneInfo(settings.bureau.timezone)).date()
    due = today + timedelta(days=30)
    text = f"名称=基准 事项=A01 比例={ratio}% 方式=交叉随机 截止={due.isoformat()}"
    seconds_new, batch_id = timed(lambda: _new(engine, settings, text, today))
    say(f"publish {batch_id} (freezing the pool) …")
    seconds, _ = timed(lambda: _publish(engine, settings, batch_id))
    return batch_id, [Phase("set-up: new batch (pool counted)", seconds_new, ratios=False),
                      Phase("set-up: publish (freeze pool, commit)", seconds, ratios=False)]


def _new(engine, settings: Settings, text: str, today) -> str:
    with transaction(engine) as session:
        return create.new_batch(session, settings, "bench", parse_arguments(text, create.NEW_KEYS), today).batch.id


def _publish(engine, settings: Settings, batch_id: str) -> None:
    arguments = parse_arguments(f"批次={batch_id} 信标={BEACON_RULE}", publish.PUBLISH_KEYS)
    with transaction(engine) as session:
        publish.publish(session, settings, "bench", arguments, datetime.now(UTC))


# --- The phases ------------------------------------------------------------------------------


def naive(db: Path, k: int, repeat: int) -> tuple[float, int]:
    """The unverifiable draw: SQLite's own PRNG over the whole table."""
    connection = sqlite3.connect(db)
    try:
        return best_of(repeat, lambda: len(connection.execute(
            "SELECT id FROM objects ORDER BY RANDOM() LIMIT ?", (k,)).fetchall()))
    finally:
        connection.close()


def hash_floor(ids: list[str], stratum_seed: str, repeat: int) -> float:
    """One SHA-256 per member, in the plainest loop: what any scoring must at least cost."""
    prefix = stratum_seed + "|"

    def run() -> None:
        for member_id in ids:
            hashlib.sha256((prefix + member_id + "|0").encode()).hexdigest()

    return best_of(repeat, run)[0]


def select_objects(session, stratum_id: int, stratum_seed: str, workers: int | None) -> list[ssr1.Scored]:
    """As the draw selects: the frozen pool read and checked, scored, the k best kept."""
    pool, digest, runs, size, k = session.connection().execute(
        select(Stratum.pool, Stratum.pool_digest, Stratum.pool_runs, Stratum.pool_size, Stratum.k)
        .where(Stratum.id == stratum_id)).one()
    return selection.select_from_pool(thaw(pool, digest, runs), size, stratum_seed, k, workers=workers)


def match(seed: str, inputs: dict, batch: Batch, on) -> list[matching.Assignment]:
    """``matching.match`` called exactly as ``draw.draw`` calls it."""
    return matching.match(
        seed,
        [matching.TaskObject(o["id"], o["unit"], frozenset(o["required_specialties"])) for o in inputs["objects"]],
        [matching.Inspector(i["id"], i["unit"], frozenset(i["specialties"]), i["active"], qualified=i["qualified"])
         for i in inputs["inspectors"]],
        mode=batch.mode, on=on, teams=[matching.Team(t["id"], tuple(t["members"])) for t in inputs["teams"]],
        conflicts={tuple(pair) for pair in inputs["conflicts"]}, team_size=batch.team_size, slack=batch.slack)


def hashes_per_task(seed: str, inputs: dict, batch: Batch, on) -> Counter[str]:
    """SHA-256 calls of each task's walk (untimed: ``matching.H`` wrapped by a counter)."""
    counts: Counter[str] = Counter()
    original = matching.H

    def counting(s: str) -> str:
        counts[s.split("|", 3)[2]] += 1  # seed|inspector|object|p
        return original(s)

    matching.H = counting
    try:
        match(seed, inputs, batch, on)
    finally:
        matching.H = original
    return counts


# --- Report ------------------------------------------------------------------------------------


def report(phases: list[Phase], floor: float, naive_seconds: float) -> None:
    print(f"{'phase':<52}{'seconds':>10}{'×hash floor':>13}{'×naive':>9}")
    for phase in phases:
        ratios = f"{phase.seconds / floor:>13.2f}{phase.seconds / naive_seconds:>9.2f}" if phase.ratios else ""
        print(f"{phase.label:<52}{phase.seconds:>10.3f}{ratios}")
        if phase.note:
            print(f"{'':4}{phase.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000, help="objects in the district")
    parser.add_argument("--inspectors", type=int, default=2_000, help="inspectors in the district")
    parser.add_argument("--ratio", default="5", help="percent of the pool drawn")
    parser.add_argument("--seed", type=int, default=2026, help="district seed")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each phase but the draw (best kept)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="shuangsui-draw-bench-"))
    failures: list[str] = []
    try:
        say(f"{args.objects:,} objects, {args.inspectors:,} inspectors, {args.ratio}% cross, "
            f"{os.cpu_count()} cores, in {work}")
        engine, settings, setup = set_up(work, args, failures)
        if failures:
            print("\n".join(failures))
            return 1
        batch_id, published = new_and_publish(engine, settings, args.ratio)
        setup += published

        # The beacon's value is published after the plan: only now can anything be computed.
        beacon = f"{secrets.randbelow(10**5):05d}"
        at = datetime.now(UTC)
        on = at.astimezone(ZoneInfo(settings.bureau.timezone)).date()
        with transaction(engine) as session:  # reads only: commits nothing
            batch = session.get(Batch, batch_id)
            stratum = publish.strata_of(session, batch_id)[0]
            seed = ssr1.seed(batch_id, unseal(batch.secret_encrypted, keys_of(settings)), beacon)
            stratum_seed = ssr1.stratum_seed(seed, stratum.name, stratum.pool_digest)
            size, k = stratum.pool_size, stratum.k
            objects_total = session.scalar(select(func.count()).select_from(InspectionObject))
            say(f"naive ORDER BY RANDOM() LIMIT {k:,} …")
            naive_seconds, naive_rows = naive(work / "bench.db", k, args.repeat)

            ids = [line.rpartition("|")[0] for line in thaw(stratum.pool, stratum.pool_digest,
                                                                 stratum.pool_runs).decode().splitlines()]
            say(f"hash floor over {len(ids):,} members …")
            floor = hash_floor(ids, stratum_seed, args.repeat)
            del ids

            cores = os.cpu_count() or 1
            parallel = size >= selection.PARALLEL_FROM and cores >= 2
            say("selection …")
            select_all, chosen = best_of(args.repeat, lambda: select_objects(session, stratum.id, stratum_seed, None))
            select_one, chosen_one = best_of(args.repeat, lambda: select_objects(session, stratum.id, stratum_seed, 1))
            read_check = best_of(args.repeat, lambda: thaw(stratum.pool, stratum.pool_digest, stratum.pool_runs))[0]

            tasks = ssr1.task_list([(stratum.name, stratum.items, [s.id for s in chosen])])
            say(f"matching {len(tasks):,} tasks …")
            inputs_seconds, inputs = best_of(args.repeat, lambda: draw.matching_inputs(session, batch, tasks, on))
            match_seconds, staffed = best_of(args.repeat, lambda: match(seed, inputs, batch, on))
            per_task = hashes_per_task(seed, inputs, batch, on)
            eligible = sum(1 for i in inputs["inspectors"] if i["active"] and i["qualified"])

        say("the whole draw …")
        arguments = parse_arguments(f"批次={batch_id} 信标值={beacon}", draw.DRAW_KEYS)
        started = time.perf_counter()
        with transaction(engine) as session:
            drawn = draw.draw(session, settings, "bench", arguments, at)
        whole = time.perf_counter() - started

        with transaction(engine) as session:  # what the draw stored, against the phases
            stored = publish.strata_of(session, batch_id)[0].selected
            stored_inputs = session.get(Batch, batch_id).matching_inputs
            task_rows = session.scalar(select(func.count()).select_from(Task).where(Task.batch_id == batch_id))
            assignment_rows = session.scalar(select(func.count()).select_from(Assignment).join(
                Task, Task.id == Assignment.task_id).where(Task.batch_id == batch_id))
        if chosen != chosen_one:
            failures.append("selection on every core differs from selection in one process")
        if stored != [[s.id, s.score] for s in chosen]:
            failures.append("the draw stored another selection than the one timed")
        if [(a["object_id"], tuple(a["inspectors"])) for a in stored_inputs["assignments"]] != [
                (a.object_id, a.inspectors) for a in staffed]:
            failures.append("the draw staffed the tasks otherwise than the matching timed")
        if task_rows != len(tasks) or assignment_rows != sum(len(a.inspectors) for a in staffed):
            failures.append(f"stored {task_rows} tasks / {assignment_rows} assignments")

        walks = sorted(per_task[t.object_id] for t in tasks)
        mean_walk = statistics.fmean(walks) if walks else 0.0
        verdict = "PASS" if select_all <= TARGET * floor else "MISS"
        workers = f"{cores} processes" if parallel else "1 process (pool below PARALLEL_FROM or one core)"
        phases = [
            *setup,
            Phase(f"naive: ORDER BY RANDOM() LIMIT {k:,}", naive_seconds,
                  f"{naive_rows:,} of the objects table's {objects_total:,} rows, unverifiable"),
            Phase(f"hash floor: 1 SHA-256 × {size:,} members, plain loop", floor),
            Phase("selection: read + digest check + score + k best", select_all,
                  f"{workers}; {verdict} against {TARGET:g}× the hash floor"),
            Phase("selection, one process (workers=1)", select_one),
            Phase("  of which thaw (decompress + digest check)", read_check),
            Phase("matching: matching_inputs (read directory)", inputs_seconds,
                  f"{len(inputs['inspectors']):,} inspectors ({eligible:,} eligible), "
                  f"{len(inputs['conflicts']):,} conflicts"),
            Phase(f"matching: match ({len(tasks):,} tasks, cross, n={batch.team_size})", match_seconds,
                  f"SHA-256 per task: mean {mean_walk:.2f}, median {statistics.median(walks) if walks else 0:g}, "
                  f"max {walks[-1] if walks else 0} (a full shuffle would be ~{eligible:,})"),
            Phase("whole draw: draw.draw + store + commit", whole,
                  f"{drawn.tasks:,} tasks, {assignment_rows:,} assignments, "
                  f"{drawn.needs_expert:,} need an expert; run once"),
        ]

        print()
        report(phases, floor, naive_seconds)
        print(f"pool {size:,} of {args.objects:,} objects, k = {k:,} ({args.ratio}%), "
              f"{args.inspectors:,} inspectors, beacon {beacon!r} given at the draw; best of {args.repeat} "
              f"but the draw; {cores} cores.")
        print()
        print(f"draw: {args.objects:,} objects / {args.inspectors:,} inspectors, k {k:,}: selection "
              f"{select_all:.2f} s = {select_all / floor:.2f}× hash floor ({floor:.2f} s) {verdict} "
              f"(target ≤ {TARGET:g}×; one process {select_one / floor:.2f}×), {select_all / naive_seconds:.1f}× "
              f"naive ORDER BY RANDOM() ({naive_seconds:.2f} s); matching {inputs_seconds + match_seconds:.2f} s "
              f"({mean_walk:.2f} SHA-256/task, max {walks[-1] if walks else 0}); whole draw {whole:.2f} s = "
              f"{whole / floor:.1f}× floor, {whole / naive_seconds:.1f}× naive"
              + ("" if not failures else f"; FAILED: {'; '.join(failures)}"))
        return 1 if failures else 0
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
