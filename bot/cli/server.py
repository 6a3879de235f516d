"""``shuangsui serve`` (the bot as an operator runs it) and ``shuangsui demo`` (a
synthetic district seeded, then served)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot import demo
from bot.cli.options import Commands
from bot.settings import Settings
from bot.texts import say


def add_demo(commands: Commands) -> None:
    parser = commands.add_parser("demo", help=say("cli", "help_demo"))
    parser.set_defaults(run=run_demo)
    parser.add_argument("--data", default="demo-data", help=say("cli", "help_demo_data"))
    parser.add_argument("--seed-only", action="store_true", help=say("cli", "help_seed_only"))
    parser.add_argument("--objects", type=int, default=30_000, help=say("cli", "help_demo_objects"))


def add_serve(commands: Commands) -> None:
    commands.add_parser("serve", help=say("cli", "help_serve")).set_defaults(run=serve)


def serve(settings: Settings, args: argparse.Namespace) -> int:
    # The server stack (aiohttp, the scheduler, every handler): a second of start-up
    # that no other command needs.
    from bot import logs
    from bot.app import serve as serve_app
    from bot.console.routes import exposed
    from bot.terminal import err

    if problem := exposed(settings):  # the console acts as anyone: never beyond loopback
        err(problem)
        return 2
    logs.configure()
    serve_app(settings)
    return 0


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    return demo.run(settings, Path(args.data), serve_after=not args.seed_only, objects=args.objects)
