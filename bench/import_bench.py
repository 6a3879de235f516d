"""How long ``shuangsui import objects`` takes on a large directory, against floors.

Runs the installed command line, as an administrator would, on a fresh SQLite
database in a temporary directory::

    shuangsui db upgrade
    shuangsui import units units.csv
    shuangsui import objects objects.csv      # 100k new objects            (timed)
    shuangsui import objects objects.csv      # unchanged: diff only        (timed)
    shuangsui import objects changed.csv      # ~1% changed, ~1% removed    (timed)
    shuangsui import objects bad.csv          # one bad row at the end: exit 1, nothing written

and, in the same run, two floors for the same rows: reading them with ``csv.reader``,
and a bare ``sqlite3`` ``executemany`` into a table of the same shape. The floors run
inside this process (Python and ``csv``/``sqlite3`` already loaded) while each command
starts a process of its own, so "parse + executemany" is also timed as a process of its
own (``python -c``, the same code: the cold floor) — ×floor is against the warm floor
(the stricter), ×cold against the cold one. The machine is noisy, so the ratios to the
floors matter more than the seconds. A re-import of the unchanged units file measures
the fixed cost of any import (start-up, schema check).

With ``--db-url postgresql+psycopg://…`` the commands run against a fresh database on
that server (dropped after); the floors stay csv + sqlite3.

Usage: ``.venv/bin/python bench/import_bench.py [--objects N] [--repeat R] [--db-url URL] [--keep]``.
Exits 1 if a step's exit status is not the expected one or the refused import wrote.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import resource
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import Column, Table, conclude, create_database, drop_database, run_cli, say, scratch, timed

from bot.synthetic_district import HEADERS, unit_rows, write_objects
from bot.terminal import bar_chart, err

SCRATCH_TABLE = """
CREATE TABLE objects (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, industry TEXT,
    region TEXT, unit TEXT NOT NULL, address TEXT, status TEXT NOT NULL,
    complaints INTEGER NOT NULL, abnormal INTEGER NOT NULL,
    serious_violation INTEGER NOT NULL, key_sector INTEGER NOT NULL
)"""


@dataclass
class Step:
    label: str
    rows: int
    seconds: float
    cli: bool = False
    cpu: float | None = None  # CPU seconds (user + system) of the step's process
    note: str = ""
    stderr: str = ""


# --- Input files ---------------------------------------------------------------------


def write_inputs(work: Path, n: int, seed: int) -> tuple[dict[str, Path], float, dict]:
    """The units file, ``n`` objects, a changed snapshot and a snapshot with a bad row."""
    files = {name: work / f"{name}.csv" for name in ("units", "objects", "changed", "bad")}
    with files["units"].open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADERS["units"])
        writer.writerows(unit_rows())
    started = time.perf_counter()
    write_objects(files["objects"], n, seed=seed)
    generation = time.perf_counter() - started

    rng = random.Random(f"{seed}:bench")
    rows = read_rows(files["objects"])
    changed, kept, removed = [], 0, 0
    for row in rows:
        roll = rng.random()
        if roll < 0.01:
            removed += 1
            continue
        if roll < 0.02:
            row = row[:8] + [str(int(row[8]) + 1)] + row[9:]  # one more complaint
            kept += 1
        changed.append(row)
    write_rows(files["changed"], changed)
    bad_row = list(changed[-1])
    bad_row[0], bad_row[8] = "91150602MABENCHBAD", "多次"  # complaints must be a count
    write_rows(files["bad"], [*changed, bad_row])
    facts = {"changed": kept, "removed": removed, "changed_rows": len(changed),
             "bad_line": len(changed) + 2}  # the header is line 1
    return files, generation, facts


def read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = csv.reader(f)
        next(rows)
        return list(rows)


def write_rows(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADERS["objects"])
        writer.writerows(rows)


# --- Floors ----------------------------------------------------------------------------


def best_of(repeat: int, run):
    return min(run() for _ in range(repeat))


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_parse(path: Path) -> float:
    started = time.perf_counter()
    read_rows(path)
    return time.perf_counter() - started


def time_sqlite(path: Path, rows: list[tuple] | None = None, *,
                source: Path | None = None) -> tuple[float, float]:
    """A bare executemany into a fresh file, with the product's SQLite settings.

    Given ``source`` instead of ``rows``, reading and converting it is timed too. Returns
    the seconds and the CPU seconds this process spent.
    """
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    started, cpu = time.perf_counter(), time.process_time()
    if source is not None:
        rows = typed(read_rows(source))
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(SCRATCH_TABLE)
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany("INSERT INTO objects VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    connection.execute("COMMIT")
    connection.close()
    return time.perf_counter() - started, time.process_time() - cpu


def typed(rows: list[list[str]]) -> list[tuple]:
    """CSV cells as the scratch table stores them (the count and flags as integers)."""
    return [(*r[:8], int(r[8]), r[9] == "true", r[10] == "true", r[11] == "true") for r in rows]


COLD_FLOOR = """
import csv, sqlite3, sys
with open(sys.argv[1], encoding="utf-8-sig", newline="") as f:
    rows = csv.reader(f)
    next(rows)
    rows = [(*r[:8], int(r[8]), r[9] == "true", r[10] == "true", r[11] == "true") for r in rows]
connection = sqlite3.connect(sys.argv[2], isolation_level=None)
connection.execute("PRAGMA journal_mode=WAL")
connection.execute("PRAGMA synchronous=NORMAL")
connection.execute(sys.argv[3])
connection.execute("BEGIN IMMEDIATE")
connection.executemany("INSERT INTO objects VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
connection.execute("COMMIT")
connection.close()
"""


def time_cold(path: Path, source: Path) -> tuple[float, float]:
    """``time_sqlite(source=…)`` as a process of its own, timed from start to exit like a
    command: seconds and the process's CPU seconds."""
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    cpu = children_cpu()
    seconds, _ = timed(lambda: subprocess.run([sys.executable, "-c", COLD_FLOOR, str(source), str(path),
                                               SCRATCH_TABLE], check=True))
    return seconds, children_cpu() - cpu


# --- The command line ----------------------------------------------------------------------


def time_cli(args: list[str], *, env: dict, cwd: Path) -> tuple[float, float, int, str]:
    """One ``shuangsui`` command timed from start to exit: seconds, its CPU seconds, exit
    status, standard error."""
    cpu = children_cpu()
    seconds, done = timed(lambda: run_cli(args, env=env, cwd=cwd))
    return seconds, children_cpu() - cpu, done.returncode, done.stderr


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output on stderr)"


def snapshot(db_url: str) -> dict[str, tuple[int, str]]:
    """Row count and content digest of every table, to prove a refusal wrote nothing."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            state = {}
            for table in sorted(inspect(connection).get_table_names()):
                rows = sorted(repr(tuple(row)) for row in connection.execute(text(f'SELECT * FROM "{table}"')))
                state[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
            return state
    finally:
        engine.dispose()


# --- Report ------------------------------------------------------------------------------


STEPS = Table(Column("step", 46, left=True), Column("rows", 9), Column("seconds", 10, ".3f"),
              Column("rows/s", 10, ",.0f"), Column("×parse", 9, ".1f"), Column("×floor", 9, ".1f"),
              Column("×cold", 7, ".1f"), Column("net×floor", 11, ".1f"), Column("cpu s", 8, ".3f"),
              Column("cpu×floor", 10, ".1f"))


def report(steps: list[Step], parse: float, floor: float, cold: float, fixed: float, floor_cpu: float) -> None:
    STEPS.header()
    for step in steps:
        rate = step.rows / step.seconds if step.rows > 100 else ""
        net = [step.seconds / cold, max(step.seconds - fixed, 0) / floor] if step.cli else ["", ""]
        cpu = [step.cpu, step.cpu / floor_cpu] if step.cpu is not None else []
        STEPS.row(step.label, step.rows, step.seconds, rate, step.seconds / parse, step.seconds / floor, *net, *cpu)
        if step.note:
            STEPS.note(step.note)
    print("floor = csv parse + sqlite3 executemany in this process; cold = the same as a process of its own; "
          "net = seconds minus the fixed cost of an import (re-importing the unchanged units file); "
          "cpu = CPU seconds of the step's process (PostgreSQL's own not counted), against the warm floor's.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000, help="objects to import")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each floor (best kept)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--db-url", help="a PostgreSQL server (postgresql+psycopg://…): the commands run "
                                         "against a fresh database on it, dropped after")
    args = parser.parse_args(argv)

    with scratch("shuangsui-bench-", args.keep) as work:
        if not args.db_url:
            return bench(args, work, f"sqlite:///{work / 'bench.db'}")
        db_url, name = create_database(args.db_url)
        try:
            return bench(args, work, db_url)
        finally:
            drop_database(args.db_url, name)


def bench(args, work: Path, db_url: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "SHUANGSUI_CONFIG"}
    env["SHUANGSUI__DATABASE__URL"] = db_url
    failures: list[str] = []
    backend = db_url.partition(":")[0]
    say(f"{args.objects:,} objects, seed {args.seed}, {backend}, in {work}")
    files, generation, facts = write_inputs(work, args.objects, args.seed)
    n = args.objects

    parse = best_of(args.repeat, lambda: time_parse(files["objects"]))
    rows = typed(read_rows(files["objects"]))
    scratch_db = work / "scratch.db"
    insert, _ = best_of(args.repeat, lambda: time_sqlite(scratch_db, rows))
    floor, floor_cpu = best_of(args.repeat, lambda: time_sqlite(scratch_db, source=files["objects"]))
    cold, cold_cpu = best_of(args.repeat, lambda: time_cold(scratch_db, files["objects"]))
    steps = [
        Step("generate objects (synthetic_district)", n, generation),
        Step("floor: csv.reader parse", n, parse),
        Step("floor: sqlite3 executemany (rows in memory)", n, insert),
        Step("floor: parse + executemany", n, floor, cpu=floor_cpu),
        Step("cold floor: parse + executemany, own process", n, cold, cpu=cold_cpu),
    ]

    def cli(label: str, rows: int, cli_args: list[str], expect: int, *, timed=True) -> Step:
        say(f"{label} …")
        seconds, cpu, code, stderr = time_cli(cli_args, env=env, cwd=work)
        note = f"exit {code}: {last_line(stderr)}"
        if code != expect:
            failures.append(f"{label}: exit {code}, expected {expect}")
            note += "\n    " + "\n    ".join(stderr.strip().splitlines()[-15:])
        elif code:  # a refusal: show the reported rows above the summary
            note = f"exit {code}: " + "\n    ".join(stderr.strip().splitlines()[-3:])
        step = Step(label, rows, seconds, cli=True, note=note, stderr=stderr, cpu=cpu)
        if timed:
            steps.append(step)
        else:
            say(f"  {note}")
        return step

    cli("shuangsui db upgrade", 0, ["db", "upgrade"], 0, timed=False)
    cli("shuangsui import units", 16, ["import", "units", str(files["units"])], 0, timed=False)
    fixed = cli("fixed cost: import units (unchanged, 16 rows)", 16,
                ["import", "units", str(files["units"])], 0).seconds
    first = cli("import objects (all new)", n, ["import", "objects", str(files["objects"])], 0)
    again = cli("re-import objects (unchanged)", n,
                ["import", "objects", str(files["objects"])], 0)
    diff = cli(f"re-import ({facts['changed']} changed, {facts['removed']} removed)",
               facts["changed_rows"], ["import", "objects", str(files["changed"])], 0)
    before = snapshot(db_url)
    bad = cli("failing import (1 bad row at the end)", facts["changed_rows"] + 1,
              ["import", "objects", str(files["bad"])], 1)
    after = snapshot(db_url)
    differ = sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
    wrote = [t for t in differ if not t.startswith("audit")]  # the refusal is audited
    bad.note += (f"\n    tables changed: {', '.join(differ) or 'none'}"
                 f" ({'nothing written' if not wrote else 'WROTE ' + ', '.join(wrote)})")
    if wrote:
        failures.append(f"refused import changed {', '.join(wrote)}")
    if str(facts["bad_line"]) not in bad.stderr:
        failures.append(f"the refusal did not name line {facts['bad_line']}")

    print()
    report(steps, parse, floor, cold, fixed, floor_cpu)
    err("milliseconds per step:")
    err(bar_chart([(step.label[:34], round(step.seconds * 1000)) for step in steps]))
    print()
    conclude(f"objects ({backend}): {n:,} generated at {n / generation:,.0f} rows/s; import "
             f"{first.seconds:.2f} s ({first.seconds / floor:.2f}× floor, {first.seconds / cold:.2f}× cold floor, "
             f"CPU {first.cpu or 0:.2f} s = {(first.cpu or 0) / floor_cpu:.2f}× the floor's, "
             f"{first.seconds / parse:.1f}× parse), unchanged re-import {again.seconds:.1f} s "
             f"({again.seconds / floor:.1f}×), 1%/1% diff {diff.seconds:.1f} s "
             f"({diff.seconds / floor:.1f}×), bad row refused in {bad.seconds:.1f} s "
             f"({'nothing written' if not wrote else 'WROTE'}); fixed cost {fixed:.1f} s"
             + ("" if not failures else f"; FAILED: {'; '.join(failures)}"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
