"""``shuangsui import KIND FILE`` (SPEC §3): a directory file, or the annual plans, read
whole and applied all or nothing; ``--dry-run`` prints the changes and writes nothing."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bot.cli.options import Commands, engine_of, operator
from bot.clock import bureau_today
from bot.refusal import Refusal
from bot.settings import Settings
from bot.terminal import bar_chart, err, progress
from bot.texts import say
from storage.importing import import_file

KIND_CHOICES = ("units", "objects", "inspectors", "teams", "items", "conflicts", "holidays", "plans")


def add_parser(commands: Commands) -> None:
    imports = commands.add_parser("import", help=say("cli", "help_import"))
    imports.add_argument("kind", choices=KIND_CHOICES)
    imports.add_argument("file", type=Path)
    imports.add_argument("--dry-run", action="store_true", help=say("cli", "help_dry_run"))
    imports.add_argument("--partial", action="store_true", help=say("cli", "help_partial"))
    imports.add_argument("--reason", help=say("plans", "help_reason"))  # plans only: a changed plan (art. 11)
    imports.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``import KIND FILE`` — and ``plan import FILE``, where a changed plan needs ``--reason``."""
    started = time.perf_counter()
    actor = operator()
    if getattr(args, "reason", None) and args.kind != "plans":
        err(say("plans", "reason_for_plans_only", kind=args.kind))
        return 2
    try:
        if args.kind == "plans":
            from bot.plans import import_plans  # its draw-count rules only for plans (start-up, issue 20)

            outcome = import_plans(engine_of(settings), args.file, actor=actor, reason=getattr(args, "reason", None),
                                   today=bureau_today(settings.bureau.timezone), dry_run=args.dry_run,
                                   partial=args.partial, progress=progress, min_ratio=settings.plans.min_ratio)
        else:
            outcome = import_file(engine_of(settings), args.kind, args.file, dry_run=args.dry_run,
                                  partial=args.partial, actor=actor, progress=progress)
    except Refusal as refusal:
        err(refusal.text())
        return 1
    if not outcome.ok:
        for problem in outcome.problems:
            err(say("import", "problem", line=problem.line, reason=problem.reason))
        err(say("import", "refused", path=str(args.file), count=len(outcome.problems)))
        return 1
    if args.dry_run:
        for change in outcome.changes:
            print(say("import", "change", action_name=change.action, key="|".join(map(str, change.key)),
                      fields=change.fields))
    counts = outcome.counts()
    err(bar_chart([(say("import", "action", name=key), count) for key, count in counts.items()
                   if count or key != "removed"]))
    err(say("import", "summary", kind=args.kind, counts=counts, seconds=time.perf_counter() - started,
            dry_run=args.dry_run))
    return 0
