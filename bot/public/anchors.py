"""Anchors of the audit log (README, "Anchors"): the chain's head, recorded at every draw
(bot.batches.draw) and at least daily (here, from the scheduler), shown on the public
index and written by ``public export`` as ``anchor.json`` and ``anchor.txt``.

The page shows the latest anchor rather than the live head: a head read at a stated
time, the same on the server and in an export of that day, and the public pages stay
cached between anchors and publications instead of changing with every chat command."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from bot.clock import bureau_date
from storage import audit
from storage.db import transaction
from storage.models import AuditAnchor


def anchor_if_due(engine: Engine, timezone: str, now: datetime) -> AuditAnchor | None:
    """A daily anchor unless one was recorded on the bureau's day already (the scheduler
    asks every hour, so a day the server was down at a fixed time is not skipped)."""
    with transaction(engine) as session:
        latest = audit.latest_anchor(session)
        if latest is not None and bureau_date(latest.at, timezone) >= bureau_date(now, timezone):
            return None
        return audit.anchor(session, "daily")


def as_json(anchor: AuditAnchor) -> bytes:
    """``anchor.json``: what an outsider keeps (seq and hash are what gets checked)."""
    body = {"seq": anchor.seq, "hash": anchor.hash,
            "entry_at": anchor.entry_at.isoformat() if anchor.entry_at else None,
            "anchored_at": anchor.at.isoformat(), "reason": anchor.reason}
    return (json.dumps(body, ensure_ascii=False, indent=1) + "\n").encode()


def as_text(anchor: AuditAnchor) -> bytes:
    """``anchor.txt``: one line, ``<seq> <hash> <anchored_at>``, to append to a kept file."""
    return f"{anchor.seq} {anchor.hash} {anchor.at.isoformat()}\n".encode()


def latest(session: Session) -> AuditAnchor | None:
    return audit.latest_anchor(session)
