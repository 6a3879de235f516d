"""``shuangsui plan import|list|show|record`` (art. 11 annual plans)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from bot import plans
from bot.cli.imports import run as run_import
from bot.cli.options import Commands, engine_of, operator
from bot.clock import bureau_today
from bot.refusal import Refusal
from bot.settings import Settings
from bot.terminal import err
from bot.texts import say
from storage.db import transaction


def add_parser(commands: Commands) -> None:
    plan = commands.add_parser("plan", help=say("plans", "help_plan"))
    plan.set_defaults(run=run)
    actions = plan.add_subparsers(dest="plan_command", required=True)
    importing = actions.add_parser("import", help=say("plans", "help_import"))
    importing.add_argument("file", type=Path)
    importing.add_argument("--reason", help=say("plans", "help_reason"))
    importing.add_argument("--dry-run", action="store_true")
    listing = actions.add_parser("list", help=say("plans", "help_list"))
    listing.add_argument("--year", type=int)
    showing = actions.add_parser("show", help=say("plans", "help_show"))
    showing.add_argument("plan_id", type=int)
    record = actions.add_parser("record", help=say("plans", "help_record"))
    record.add_argument("plan_id", type=int)
    record.add_argument("step", choices=plans.FILING_STEPS)
    record.add_argument("--on", type=date.fromisoformat, help=say("plans", "help_on"))


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.plan_command == "import":  # ``import plans FILE``, all or nothing, with the reason for a change
        args.kind, args.partial = "plans", False
        return run_import(settings, args)
    try:
        with transaction(engine_of(settings)) as session:
            if args.plan_command == "list":
                print(say("plans", "listing", rows=plans.list_plans(session, args.year)))
            elif args.plan_command == "record":
                on = args.on or bureau_today(settings.bureau.timezone)
                filing = plans.record_filing(session, operator(), args.plan_id, args.step, on)
                print(say("plans", "recorded", plan=filing.plan, step=args.step, on=on, already=filing.already))
            else:
                print(say("plans", "detail", view=plans.show_plan(session, args.plan_id)))
    except Refusal as refusal:
        err(refusal.text())
        return 1
    return 0
