"""The database's upkeep: ``shuangsui db upgrade`` (the schema), ``keys rotate`` (every
sealed field re-sealed under the first key) and ``audit verify`` (the hash chain)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bot.cli.options import Commands, engine_of
from bot.key_rotation import rotate_keys
from bot.settings import Settings
from bot.terminal import bar_chart, err
from bot.texts import say
from storage import audit, schema
from storage.db import transaction
from storage.sealing import SealingError


def add_db(commands: Commands) -> None:
    db = commands.add_parser("db", help=say("cli", "help_db"))
    db.set_defaults(run=upgrade)
    db.add_subparsers(dest="db_command", required=True).add_parser("upgrade", help=say("cli", "help_db_upgrade"))


def add_keys(commands: Commands) -> None:
    keys = commands.add_parser("keys", help=say("cli", "help_keys"))
    keys.set_defaults(run=rotate)
    keys.add_subparsers(dest="keys_command", required=True).add_parser("rotate", help=say("cli", "help_keys_rotate"))


def add_audit(commands: Commands) -> None:
    audit_parser = commands.add_parser("audit", help=say("cli", "help_audit"))
    audit_parser.set_defaults(run=verify_audit)
    verify = audit_parser.add_subparsers(dest="audit_command", required=True).add_parser(
        "verify", help=say("cli", "help_audit_verify"))
    verify.add_argument("--anchor", action="append", type=Path, default=[], help=say("cli", "help_audit_anchor"))


def upgrade(settings: Settings, args: argparse.Namespace) -> int:
    engine = engine_of(settings)
    before = schema.current_revision(engine)
    schema.upgrade(engine)
    err(say("cli", "db_upgraded", before=before, after=schema.current_revision(engine)))
    return 0


def rotate(settings: Settings, args: argparse.Namespace) -> int:
    try:
        done = rotate_keys(engine_of(settings))
    except SealingError as exc:
        err(say("cli", "keys_failed", error=str(exc)))
        return 1
    err(bar_chart([(say("cli", "sealed_kind", kind=kind), n) for kind, n in done.items()]))
    err(say("cli", "keys_rotated", count=sum(done.values())))
    return 0


def verify_audit(settings: Settings, args: argparse.Namespace) -> int:
    kept: list[tuple[int, str]] = []
    for file in args.anchor:
        try:
            kept += read_anchors(file.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            err(say("cli", "anchor_unreadable", file=file))
            return 1
    with transaction(engine_of(settings)) as session:
        report = audit.verify(session)
        wrong = [(seq, hash_) for seq, hash_ in kept if not audit.check_anchor(session, seq, hash_)]
    if not report.ok:
        print(say("cli", "audit_broken", seq=report.broken_seq, problem=report.problem, entries=report.entries))
    for seq, hash_ in wrong:
        print(say("cli", "anchor_mismatch", seq=seq, hash=hash_))
    if not report.ok or wrong:
        return 1
    print(say("cli", "audit_ok", entries=report.entries))
    if kept:
        print(say("cli", "anchor_ok", count=len(kept)))
    return 0


def read_anchors(text: str) -> list[tuple[int, str]]:
    """Kept anchors: an ``anchor.json``, or ``anchor.txt`` lines (``<seq> <hash> …``) appended over time."""
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        return [(int(data["seq"]), str(data["hash"]))]
    found = [(int(line.split()[0]), line.split()[1]) for line in text.splitlines() if line.strip()]
    if not found:
        raise ValueError("no anchor")
    return found
