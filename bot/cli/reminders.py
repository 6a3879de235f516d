"""``shuangsui reminders run|list|snooze|ack`` (SPEC §3): ``run``, one sweep as of
``--now``, one line per message queued; ``list``, what is due and when it will be sent;
``snooze`` / ``ack``, an admin's decision about a deadline, with its reason, audited."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import date, datetime

from bot.cli.options import Commands, as_of, engine_of, instant, operator
from bot.refusal import Refusal
from bot.reminders.operations import Upcoming, acknowledge, snooze, upcoming
from bot.reminders.sweep import sweep
from bot.roles import Actor, is_admin
from bot.settings import Settings
from bot.terminal import bar_chart, err
from bot.texts import say
from storage import audit
from storage.db import transaction


def add_parser(commands: Commands) -> None:
    reminders = commands.add_parser("reminders", help=say("cli", "help_reminders"))
    reminders.set_defaults(run=run)
    actions = reminders.add_subparsers(dest="reminders_command", required=True)
    sweeping = actions.add_parser("run", help=say("cli", "help_reminders_run"))
    sweeping.add_argument("--now", required=True, type=instant, help=say("cli", "help_now"))
    listing = actions.add_parser("list", help=say("cli", "help_reminders_list"))
    listing.add_argument("--now", type=instant, help=say("cli", "help_now"))
    snoozing = actions.add_parser("snooze", help=say("cli", "help_reminders_snooze"))
    snoozing.add_argument("deadline", type=int)
    snoozing.add_argument("--until", required=True, type=date.fromisoformat, help=say("cli", "help_until"))
    snoozing.add_argument("--reason", required=True)
    snoozing.add_argument("--as", dest="actor", help=say("cli", "help_as"))
    ack = actions.add_parser("ack", help=say("cli", "help_reminders_ack"))
    ack.add_argument("deadline", type=int)
    ack.add_argument("--reason", required=True)
    ack.add_argument("--as", dest="actor", help=say("cli", "help_as"))


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.reminders_command in ("snooze", "ack"):
        return _decide(settings, args)
    now = as_of(settings, args.now)
    if args.reminders_command == "list":
        return _list(settings, now)
    digests = sweep(engine_of(settings), settings, now)
    for digest in digests:
        print(say("cli", "reminder_queued", platform=digest.destination.platform, user=digest.destination.address,
                  items=digest.items))
    err(say("cli", "reminders_done", count=len(digests)))
    return 0


def _list(settings: Settings, now: datetime) -> int:
    with transaction(engine_of(settings)) as session:
        found = upcoming(session, settings, now)
    for item in found:
        print(say("cli", "reminder_line", item=item))
    err(say("cli", "reminders_listed", count=len(found), chart=bar_chart(_by_next_day(found))))
    return 0


def _by_next_day(found: list[Upcoming]) -> list[tuple[str, int]]:
    days = Counter(item.next_on.isoformat() if item.next_on else "—" for item in found)
    return sorted(days.items())[:14]


def _decide(settings: Settings, args: argparse.Namespace) -> int:
    actor = Actor.parse(args.actor) if args.actor else None
    label = actor.label if actor else operator()
    engine = engine_of(settings)
    try:
        with transaction(engine) as session:
            if actor is not None and not is_admin(settings, actor):
                raise Refusal("not_admin", actor=label)
            if args.reminders_command == "snooze":
                row = snooze(session, label, args.deadline, args.until, args.reason).row
            else:
                row = acknowledge(session, label, args.deadline, args.reason).row
    except Refusal as refusal:
        if refusal.message == "not_admin":
            with transaction(engine) as session:
                audit.record(session, label, "refused", f"reminders {args.reminders_command}", role="admin")
        err(refusal.text())
        return 1
    print(say("cli", "reminder_decided", row=row, action=args.reminders_command))
    return 0
