"""The ``shuangsui`` command (SPEC §3). Standard output carries only what the contract
says; progress, summaries and logs go to standard error.

The parser and ``main`` are here; each family of commands is a module beside this one
that adds its parser and names the function that runs it (``run`` in the namespace).
A command line naming its command imports only that command's family (start-up time, issue
20: a 100,000-row import should not wait for the draw's or the migrations' modules); help
and anything the short path cannot tell import them all."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from pathlib import Path

from bot.chat import platforms
from bot.settings import ConfigError, load_settings
from bot.terminal import err
from bot.texts import say

__all__ = ["build_parser", "main"]


#: Each command in the order the help lists them: the family (``bot.cli.<module>``) and its
#: function that adds the command's parser; ``verify`` is added here.
FAMILIES: dict[str, tuple[str, str] | None] = {
    "demo": ("server", "add_demo"), "serve": ("server", "add_serve"), "db": ("upkeep", "add_db"),
    "import": ("imports", "add_parser"), "batch": ("batch", "add_parser"), "plan": ("plan", "add_parser"),
    "public": ("public", "add_parser"), "verify": None, "keys": ("upkeep", "add_keys"),
    "audit": ("upkeep", "add_audit"), "reminders": ("reminders", "add_parser"),
    "summaries": ("summaries", "add_parser"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, just that command (its family alone is imported)."""
    parser = argparse.ArgumentParser(prog="shuangsui", description=say("cli", "description"))
    parser.add_argument("-c", "--config", help=say("cli", "help_config"))
    commands = parser.add_subparsers(dest="command", required=True)
    for command, family in FAMILIES.items():
        if only is not None and command != only:
            continue
        if family is None:
            verify = commands.add_parser("verify", help=say("cli", "help_verify"))
            verify.add_argument("directory", type=Path)
        else:
            module, add = family
            getattr(import_module(f"bot.cli.{module}"), add)(commands)
    _config_after_subcommands(parser)
    return parser


def command_of(argv: list[str]) -> str | None:
    """The command a command line names, when it can be told without the parser (the first
    word that is neither ``-c/--config`` nor its file); None for help, any other option
    before the command, or a word that is no command (the whole parser then answers)."""
    iterator = iter(argv)
    for token in iterator:
        if token in ("-c", "--config"):
            next(iterator, None)
        elif token.startswith("--config=") or (token.startswith("-c") and not token.startswith("--")):
            continue
        elif token.startswith("-"):
            return None
        else:
            return token if token in FAMILIES else None
    return None


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
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(command_of(argv)).parse_args(argv)
    if isinstance(getattr(args, "arguments", None), list):  # batch …: the words after the action, whole
        args.arguments, config = _config_among(args.arguments)
        args.config = config if config is not None else args.config
    if args.command == "verify":  # the citizen's check needs no configuration or database
        from bot import verifier  # imported by this command alone (start-up, issue 20)

        return verifier.main([str(args.directory)])
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        err(str(exc))
        return 2
    if args.command != "serve":  # serve says it at start, in its own log lines (bot.app)
        platforms.warn_ambiguous_entries(settings)
    return args.run(settings, args)
