"""The ``shuangsui`` command (SPEC §3). Standard output carries only what the contract
says; progress, summaries and logs go to standard error.

The parser and ``main`` are here; each family of commands is a module beside this one
that adds its parser and names the function that runs it (``run`` in the namespace)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot import verifier
from bot.chat import platforms
from bot.cli import batch, imports, plan, public, reminders, server, summaries, upkeep
from bot.settings import ConfigError, load_settings
from bot.terminal import err
from bot.texts import say

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shuangsui", description=say("cli", "description"))
    parser.add_argument("-c", "--config", help=say("cli", "help_config"))
    commands = parser.add_subparsers(dest="command", required=True)
    server.add_demo(commands)
    server.add_serve(commands)
    upkeep.add_db(commands)
    imports.add_parser(commands)
    batch.add_parser(commands)
    plan.add_parser(commands)
    public.add_parser(commands)
    verify = commands.add_parser("verify", help=say("cli", "help_verify"))
    verify.add_argument("directory", type=Path)
    upkeep.add_keys(commands)
    upkeep.add_audit(commands)
    reminders.add_parser(commands)
    summaries.add_parser(commands)
    _config_after_subcommands(parser)
    return parser


def _config_after_subcommands(parser: argparse.ArgumentParser) -> None:
    """``-c/--config`` is taken after the subcommand too (SPEC §3): every subcommand's parser
    knows it, without a default that would hide one given before the subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                subparser.add_argument("-c", "--config", default=argparse.SUPPRESS, help=say("cli", "help_config"))
                _config_after_subcommands(subparser)


def _config_among(tokens: list[str]) -> tuple[list[str], str | None]:
    """``-c FILE``, ``--config FILE`` or ``--config=FILE`` taken out of the words a command
    passes through whole (``batch new key=value …``); the last one given wins."""
    rest: list[str] = []
    config = None
    iterator = iter(tokens)
    for token in iterator:
        if token in ("-c", "--config"):
            config = next(iterator, "")
        elif token.startswith("--config="):
            config = token.removeprefix("--config=")
        else:
            rest.append(token)
    return rest, config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if isinstance(getattr(args, "arguments", None), list):  # batch …: the words after the action, whole
        args.arguments, config = _config_among(args.arguments)
        args.config = config if config is not None else args.config
    if args.command == "verify":  # the citizen's check needs no configuration or database
        return verifier.main([str(args.directory)])
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        err(str(exc))
        return 2
    if args.command != "serve":  # serve says it at start, in its own log lines (bot.app)
        platforms.warn_ambiguous_entries(settings)
    return args.run(settings, args)
