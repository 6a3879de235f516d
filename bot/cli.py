"""The ``shuangsui`` command (SPEC §3). Standard output carries only what the contract
says; progress, summaries and logs go to standard error."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime
from pathlib import Path

from bot.settings import ConfigError, Settings, load_settings
from bot.terminal import bar_chart, err, progress
from bot.texts import say

KIND_CHOICES = ("units", "objects", "inspectors", "teams", "items", "conflicts", "holidays", "plans")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shuangsui", description=say("cli", "description"))
    parser.add_argument("-c", "--config", help=say("cli", "help_config"))
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help=say("cli", "help_demo"))
    demo.add_argument("--data", default="demo-data", help=say("cli", "help_demo_data"))
    demo.add_argument("--seed-only", action="store_true", help=say("cli", "help_seed_only"))
    demo.add_argument("--objects", type=int, default=30_000, help=say("cli", "help_demo_objects"))
    commands.add_parser("serve", help=say("cli", "help_serve"))

    db = commands.add_parser("db", help=say("cli", "help_db"))
    db.add_subparsers(dest="db_command", required=True).add_parser("upgrade", help=say("cli", "help_db_upgrade"))

    imports = commands.add_parser("import", help=say("cli", "help_import"))
    imports.add_argument("kind", choices=KIND_CHOICES)
    imports.add_argument("file", type=Path)
    imports.add_argument("--dry-run", action="store_true", help=say("cli", "help_dry_run"))
    imports.add_argument("--partial", action="store_true", help=say("cli", "help_partial"))

    from bot import batch_cli, plan_cli, public_cli

    batch_cli.add_parser(commands)
    plan_cli.add_parser(commands)
    public_cli.add_parser(commands)
    verify = commands.add_parser("verify", help=say("cli", "help_verify"))
    verify.add_argument("directory", type=Path)

    keys = commands.add_parser("keys", help=say("cli", "help_keys"))
    keys.add_subparsers(dest="keys_command", required=True).add_parser("rotate", help=say("cli", "help_keys_rotate"))

    audit = commands.add_parser("audit", help=say("cli", "help_audit"))
    audit.add_subparsers(dest="audit_command", required=True).add_parser("verify", help=say("cli", "help_audit_verify"))
    reminders = commands.add_parser("reminders", help=say("cli", "help_reminders"))
    actions = reminders.add_subparsers(dest="reminders_command", required=True)
    run = actions.add_parser("run", help=say("cli", "help_reminders_run"))
    run.add_argument("--now", required=True, type=instant, help=say("cli", "help_now"))
    listing = actions.add_parser("list", help=say("cli", "help_reminders_list"))
    listing.add_argument("--now", type=instant, help=say("cli", "help_now"))
    snooze = actions.add_parser("snooze", help=say("cli", "help_reminders_snooze"))
    snooze.add_argument("deadline", type=int)
    snooze.add_argument("--until", required=True, type=date.fromisoformat, help=say("cli", "help_until"))
    snooze.add_argument("--reason", required=True)
    snooze.add_argument("--as", dest="actor", help=say("cli", "help_as"))
    ack = actions.add_parser("ack", help=say("cli", "help_reminders_ack"))
    ack.add_argument("deadline", type=int)
    ack.add_argument("--reason", required=True)
    ack.add_argument("--as", dest="actor", help=say("cli", "help_as"))

    summaries = commands.add_parser("summaries", help=say("cli", "help_summaries"))
    send = summaries.add_subparsers(dest="summaries_command", required=True).add_parser(
        "send", help=say("cli", "help_summaries_send"))
    send.add_argument("kind", choices=("daily", "weekly"))
    send.add_argument("--now", type=instant, help=say("cli", "help_now"))
    return parser


def instant(value: str) -> datetime:
    """An ISO 8601 instant; without an offset it is bureau time (SPEC §3)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(say("cli", "bad_instant", value=value)) from None
    return moment


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "verify":  # the citizen's check needs no configuration or database
        from bot import verifier

        return verifier.main([str(args.directory)])
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        err(str(exc))
        return 2
    handler = {"demo": run_demo, "serve": run_serve, "db": run_db, "import": run_import, "audit": run_audit,
               "batch": run_batch, "plan": run_plan, "reminders": run_reminders,
               "summaries": run_summaries, "public": run_public, "keys": run_keys}
    return handler[args.command](settings, args)


def run_keys(settings: Settings, args) -> int:
    from bot.key_rotation import rotate_keys
    from storage.sealing import SealingError

    try:
        done = rotate_keys(_engine(settings))
    except SealingError as exc:
        err(say("cli", "keys_failed", error=str(exc)))
        return 1
    err(bar_chart([(say("cli", "sealed_kind", kind=kind), n) for kind, n in done.items()]))
    err(say("cli", "keys_rotated", count=sum(done.values())))
    return 0


def run_public(settings: Settings, args) -> int:
    from bot import public_cli

    return public_cli.run(settings, args)


def _engine(settings: Settings):
    """The database, with the sealer of ``[security] keys`` (one per command)."""
    from storage.db import engine_for
    from storage.sealing import Sealer

    return engine_for(settings.database.url, Sealer(settings.security.keys))


def run_db(settings: Settings, args) -> int:
    from storage import schema

    engine = _engine(settings)
    before = schema.current_revision(engine)
    schema.upgrade(engine)
    err(say("cli", "db_upgraded", before=before, after=schema.current_revision(engine)))
    return 0


def run_import(settings: Settings, args) -> int:
    """``import KIND FILE`` — and ``plan import FILE``, where a changed plan needs ``--reason``."""
    import getpass

    from bot.batches.errors import Refusal
    from bot.clock import bureau_today
    from bot.plans import import_plans
    from storage.importing import import_file

    started = time.perf_counter()
    actor = f"cli:{getpass.getuser()}"
    try:
        if args.kind == "plans":
            outcome = import_plans(_engine(settings), args.file, actor=actor, reason=getattr(args, "reason", None),
                                   today=bureau_today(settings.bureau.timezone), dry_run=args.dry_run,
                                   partial=args.partial, progress=progress)
        else:
            outcome = import_file(_engine(settings), args.kind, args.file, dry_run=args.dry_run,
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


def run_reminders(settings: Settings, args) -> int:
    """``run``: one sweep as of ``--now``, one line per message queued (SPEC §3);
    ``list``: what is due and when it will be sent; ``snooze`` / ``ack``: an admin's
    decision about a deadline, with its reason, audited."""
    from zoneinfo import ZoneInfo

    from bot.clock import now as clock_now
    from bot.reminders.sweep import sweep

    zone = ZoneInfo(settings.bureau.timezone)
    moment = getattr(args, "now", None) or clock_now()
    now = moment if moment.tzinfo else moment.replace(tzinfo=zone)
    if args.reminders_command == "list":
        return _list_reminders(settings, now)
    if args.reminders_command in ("snooze", "ack"):
        return _decide_reminder(settings, args)
    digests = sweep(_engine(settings), settings, now)
    for digest in digests:
        print(say("cli", "reminder_queued", platform=digest.destination.platform, user=digest.destination.address,
                  items=digest.items))
    err(say("cli", "reminders_done", count=len(digests)))
    return 0


def run_summaries(settings: Settings, args) -> int:
    """Queue a summary now (as the scheduler does); one line per recipient."""
    from zoneinfo import ZoneInfo

    from bot.clock import now as clock_now
    from bot.reports.chart import cjk_font
    from bot.reports.summary import send_summaries
    from storage.db import transaction

    moment = args.now or clock_now()
    now = moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(settings.bureau.timezone))
    with transaction(_engine(settings)) as session:
        sent = send_summaries(session, settings, args.kind, now)
    for destination in sent:
        print(f"{destination.platform}:{destination.kind}:{destination.address}")
    err(say("cli", "summaries_done", count=len(sent), chart=cjk_font() is not None))
    return 0


def _list_reminders(settings: Settings, now) -> int:
    from bot.reminders.operations import upcoming
    from storage.db import transaction

    with transaction(_engine(settings)) as session:
        found = upcoming(session, settings, now)
    for item in found:
        print(say("cli", "reminder_line", item=item))
    err(say("cli", "reminders_listed", count=len(found), chart=bar_chart(_by_next_day(found))))
    return 0


def _by_next_day(found) -> list[tuple[str, int]]:
    from collections import Counter

    days = Counter(item.next_on.isoformat() if item.next_on else "—" for item in found)
    return sorted(days.items())[:14]


def _decide_reminder(settings: Settings, args) -> int:
    import getpass

    from bot.batches.errors import Refusal
    from bot.reminders.operations import acknowledge, snooze
    from bot.roles import Actor, is_admin
    from storage import audit
    from storage.db import transaction

    actor = Actor.parse(args.actor) if args.actor else None
    label = actor.label if actor else f"cli:{getpass.getuser()}"
    engine = _engine(settings)
    try:
        with transaction(engine) as session:
            if actor is not None and not is_admin(settings, actor):
                raise Refusal("not_admin", actor=label)
            if args.reminders_command == "snooze":
                row = snooze(session, label, args.deadline, args.until, args.reason)
            else:
                row = acknowledge(session, label, args.deadline, args.reason)
    except Refusal as refusal:
        if refusal.message == "not_admin":
            with transaction(engine) as session:
                audit.record(session, label, "refused", f"reminders {args.reminders_command}", role="admin")
        err(refusal.text())
        return 1
    print(say("cli", "reminder_decided", row=row, action=args.reminders_command))
    return 0


def run_audit(settings: Settings, args) -> int:
    from storage import audit
    from storage.db import transaction

    with transaction(_engine(settings)) as session:
        report = audit.verify(session)
    if report.ok:
        print(say("cli", "audit_ok", entries=report.entries))
        return 0
    print(say("cli", "audit_broken", seq=report.broken_seq, problem=report.problem, entries=report.entries))
    return 1


def run_batch(settings: Settings, args) -> int:
    from bot import batch_cli

    return batch_cli.run(settings, args)


def run_plan(settings: Settings, args) -> int:
    from bot import plan_cli

    return plan_cli.run(settings, args)


def run_serve(settings: Settings, args) -> int:
    from bot import logs
    from bot.app import serve

    logs.configure()
    serve(settings)
    return 0


def run_demo(settings: Settings, args) -> int:
    from bot.demo import run

    return run(settings, Path(args.data), serve_after=not args.seed_only, objects=args.objects)


if __name__ == "__main__":
    sys.exit(main())
