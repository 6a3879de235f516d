"""``shuangsui public export|results``: the disclosure site as static files, and the
published results as CSV or XLSX for the national disclosure system."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bot.cli.options import Commands, engine_of
from bot.public import disclosure
from bot.settings import Settings
from bot.terminal import bar_chart, err, progress
from bot.texts import say
from storage.db import reading


def add_parser(commands: Commands) -> None:
    public = commands.add_parser("public", help=say("cli", "help_public"))
    public.set_defaults(run=run)
    actions = public.add_subparsers(dest="public_command", required=True)
    export = actions.add_parser("export", help=say("cli", "help_public_export"))
    export.add_argument("--out", required=True, type=Path)
    results = actions.add_parser("results", help=say("cli", "help_public_results"))
    results.add_argument("--out", required=True, type=Path)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.public_command == "export":
        return _export_site(settings, args.out)
    return _results(settings, args.out)


def _export_site(settings: Settings, out: Path) -> int:
    from bot.public.export import NotEmpty, export_site  # the site's pages and files load openpyxl

    started = time.perf_counter()
    label = say("public", "export_progress")
    try:
        written = export_site(engine_of(settings), settings, out,
                              lambda files, total: progress(files, total=total, desc=label))
    except NotEmpty:
        err(say("public", "out_not_empty", out=out))
        return 1
    count = sum(1 for _ in out.rglob("*") if _.is_file())
    err(bar_chart([(say("public", "export_kind", kind=kind), size // 1024 or 1) for kind, size in
                   written.most_common()]))
    err(say("public", "export_done", out=out, count=count, size=sum(written.values()),
            seconds=time.perf_counter() - started))
    return 0


def _results(settings: Settings, out: Path) -> int:
    from bot.public import feeds  # openpyxl

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        err(say("public", "feed_format", value=out.name))
        return 1
    with reading(engine_of(settings)) as session:
        results = disclosure.published_results(session, settings.bureau.timezone)
    out.write_bytes(feeds.to_csv(results) if suffix == ".csv" else feeds.to_xlsx(results))
    err(say("public", "feed_written", out=out, count=len(results)))
    return 0
