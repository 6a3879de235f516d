"""``shuangsui plan import|list|show`` (art. 11 annual plans)."""

from __future__ import annotations

import getpass
from datetime import date
from pathlib import Path

from bot import plans
from bot.batches.errors import Refusal
from bot.clock import bureau_today
from bot.settings import Settings
from bot.terminal import err
from bot.texts import say
from storage.db import engine_for, transaction
from storage.sealing import Sealer


def add_parser(commands) -> None:
    plan = commands.add_parser("plan", help=say("plans", "help_plan"))
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


def run(settings: Settings, args) -> int:
    engine = engine_for(settings.database.url, Sealer(settings.security.keys))
    try:
        if args.plan_command == "import":
            return _import(settings, args)
        with transaction(engine) as session:
            if args.plan_command == "list":
                print(say("plans", "listing", rows=plans.list_plans(session, args.year)))
            elif args.plan_command == "record":
                on = args.on or bureau_today(settings.bureau.timezone)
                plan = plans.record_filing(session, f"cli:{getpass.getuser()}", args.plan_id, args.step, on)
                print(say("plans", "recorded", plan=plan, step=args.step, on=on))
            else:
                print(say("plans", "detail", view=plans.show_plan(session, args.plan_id)))
    except Refusal as refusal:
        err(refusal.text())
        return 1
    return 0


def _import(settings: Settings, args) -> int:
    from bot.cli import run_import

    args.kind, args.partial = "plans", False
    return run_import(settings, args)
