"""``shuangsui public export|results``: the disclosure site as static files, and the
published results as CSV or XLSX for the national disclosure system."""

from __future__ import annotations

import time
from pathlib import Path

from bot.settings import Settings
from bot.terminal import bar_chart, err, progress
from bot.texts import say
from storage.db import engine_for, reading
from storage.sealing import Sealer


def add_parser(commands) -> None:
    public = commands.add_parser("public", help=say("cli", "help_public"))
    actions = public.add_subparsers(dest="public_command", required=True)
    export = actions.add_parser("export", help=say("cli", "help_public_export"))
    export.add_argument("--out", required=True, type=Path)
    results = actions.add_parser("results", help=say("cli", "help_public_results"))
    results.add_argument("--out", required=True, type=Path)


def run(settings: Settings, args) -> int:
    engine = engine_for(settings.database.url, Sealer(settings.security.keys))
    if args.public_command == "export":
        from bot.public.export import NotEmpty, export_site

        started = time.perf_counter()
        label = say("public", "export_progress")
        try:
            written = export_site(engine, settings, args.out,
                                  lambda files, total: progress(files, total=total, desc=label))
        except NotEmpty:
            err(say("public", "out_not_empty", out=args.out))
            return 1
        count = sum(1 for _ in args.out.rglob("*") if _.is_file())
        err(bar_chart([(say("public", "export_kind", kind=kind), size // 1024 or 1) for kind, size in
                       written.most_common()]))
        err(say("public", "export_done", out=args.out, count=count, size=sum(written.values()),
                seconds=time.perf_counter() - started))
        return 0
    from bot.public import disclosure, feeds

    suffix = args.out.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        err(say("public", "feed_format", value=args.out.name))
        return 1
    with reading(engine) as session:
        results = disclosure.published_results(session, settings.bureau.timezone)
    args.out.write_bytes(feeds.to_csv(results) if suffix == ".csv" else feeds.to_xlsx(results))
    err(say("public", "feed_written", out=args.out, count=len(results)))
    return 0
