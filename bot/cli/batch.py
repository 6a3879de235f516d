"""``shuangsui batch …`` (SPEC §3): the chat commands' service calls from a shell.

Arguments are the chat commands' ``key=value`` pairs; ``--as USER_ID`` names the acting
user, whose role is checked. Without it the local operator acts — someone who already
holds the configuration and the database — and is audited as ``cli:<login>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from bot.batches import commands
from bot.batches.export import export
from bot.cli.options import Commands, engine_of, operator
from bot.clock import now
from bot.refusal import Refusal
from bot.roles import Actor, is_admin
from bot.settings import Settings
from bot.terminal import err
from bot.texts import say
from storage import audit
from storage.db import transaction

ACTIONS = ("new", "stratum", "publish", "draw", "cancel", "export")


def add_parser(commands: Commands) -> None:
    batch = commands.add_parser("batch", help=say("cli", "help_batch"))
    batch.add_argument("action", choices=ACTIONS)
    batch.add_argument("arguments", nargs=argparse.REMAINDER)
    batch.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = engine_of(settings)
    rest, actor = _take_actor(list(args.arguments))
    label = actor.label if actor else operator()
    try:
        if args.action == "export":
            return _export(engine, rest)
        with transaction(engine) as session:
            if actor is not None and not is_admin(settings, actor):
                raise Refusal("not_admin", actor=actor.label)
            lines = _act(session, settings, label, args.action, rest)
    except Refusal as refusal:
        if refusal.message == "not_admin":
            assert actor is not None  # only a named actor is refused as not an admin
            with transaction(engine) as session:
                audit.record(session, actor.label, "refused", f"batch {args.action}", role="admin")
        elif args.action != "export":  # the refused call's transaction is rolled back: a new one
            with transaction(engine) as session:
                commands.audit_refusal(session, label, args.action, join_tokens(rest), refusal)
        err(refusal.text())
        return 1
    for line in lines:
        print(line)
    return 0


def _act(session: Session, settings: Settings, actor: str, action: str, tokens: list[str]) -> list[str]:
    done = commands.run(session, settings, actor, action, join_tokens(tokens), now())
    return done.lines + ([done.batch_id] if action == "new" else [])  # the new id alone on the last line


def _export(engine: Engine, tokens: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="shuangsui batch export")
    parser.add_argument("batch")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--internal", action="store_true")
    options = parser.parse_args(tokens)
    with transaction(engine) as session:
        written = export(session, options.batch, options.out, internal=options.internal)
    for path in written:
        print(path)
    return 0


def join_tokens(tokens: list[str]) -> str:
    """Shell words back into one argument string; a value the shell kept whole stays whole."""
    words = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep and any(ch.isspace() for ch in value) and value[:1] not in ('"', "“", "「"):
            token = f"{key}=「{value}」"
        words.append(token)
    return " ".join(words)


def _take_actor(tokens: list[str]) -> tuple[list[str], Actor | None]:
    actor = None
    rest = []
    iterator = iter(tokens)
    for token in iterator:
        if token == "--as":
            actor = Actor.parse(next(iterator, ""))
        elif token.startswith("--as="):
            actor = Actor.parse(token.removeprefix("--as="))
        else:
            rest.append(token)
    return rest, actor
