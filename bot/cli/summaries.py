"""``shuangsui summaries send daily|weekly``: queue a summary now, as the scheduler does;
one line per recipient."""

from __future__ import annotations

import argparse

from bot.cli.options import Commands, as_of, engine_of, instant
from bot.reports.chart import cjk_font
from bot.reports.summary import send_summaries
from bot.settings import Settings
from bot.terminal import err
from bot.texts import say
from storage.db import transaction


def add_parser(commands: Commands) -> None:
    summaries = commands.add_parser("summaries", help=say("cli", "help_summaries"))
    summaries.set_defaults(run=run)
    send = summaries.add_subparsers(dest="summaries_command", required=True).add_parser(
        "send", help=say("cli", "help_summaries_send"))
    send.add_argument("kind", choices=("daily", "weekly"))
    send.add_argument("--now", type=instant, help=say("cli", "help_now"))


def run(settings: Settings, args: argparse.Namespace) -> int:
    now = as_of(settings, args.now)
    with transaction(engine_of(settings)) as session:
        sent = send_summaries(session, settings, args.kind, now)
    for destination in sent:
        print(f"{destination.platform}:{destination.kind}:{destination.address}")
    err(say("cli", "summaries_done", count=len(sent), chart=cjk_font() is not None))
    return 0
