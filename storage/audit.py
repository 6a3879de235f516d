"""The append-only, hash-chained audit log.

Each entry holds the hash of the previous entry and the hash of its own content, so
changing, inserting or removing any entry breaks the chain at that point. Appends are
serialised by the database (an advisory transaction lock on PostgreSQL, the write lock
that every SQLite transaction takes up front), so several instances extend one chain.
An entry is written in the same transaction as the change it records.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlmodel import Session, col, select

from storage.models import AuditAnchor, AuditEntry, utcnow

GENESIS = "0" * 64
_PG_LOCK_KEY = 0x5353_4155  # "SSAU": one advisory lock id for the chain


def content_hash(prev_hash: str, seq: int, at: datetime, actor: str, action: str, subject: str, detail: dict) -> str:
    """SHA-256 over the previous hash and a canonical JSON of the entry's content."""
    body = json.dumps(
        {
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject": subject,
            "detail": detail,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def record(session: Session, actor: str, action: str, subject: str = "", **detail: object) -> AuditEntry:
    """Append one entry in the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_PG_LOCK_KEY))
    last = session.exec(select(AuditEntry.seq, AuditEntry.hash).order_by(col(AuditEntry.seq).desc()).limit(1)).first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
    detail = json.loads(json.dumps(detail, ensure_ascii=False, default=str))  # as it will read back
    at = utcnow()
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        detail=detail,
        prev_hash=prev_hash,
        hash=content_hash(prev_hash, seq, at, actor, action, subject, detail),
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainReport:
    """What ``verify`` found: the number of entries, or the first broken one and why."""

    entries: int
    broken_seq: int | None = None
    problem: str | None = None  # seq_gap | prev_hash | content

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def verify_entries(entries: Iterable[AuditEntry]) -> ChainReport:
    """Check a chain given in ``seq`` order; pure, so it also checks an exported log."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for entry in entries:
        if entry.seq != expected_seq:
            return ChainReport(count, entry.seq, "seq_gap")
        if entry.prev_hash != prev_hash:
            return ChainReport(count, entry.seq, "prev_hash")
        own = content_hash(entry.prev_hash, entry.seq, entry.at, entry.actor, entry.action, entry.subject, entry.detail)
        if own != entry.hash:
            return ChainReport(count, entry.seq, "content")
        prev_hash, expected_seq, count = entry.hash, expected_seq + 1, count + 1
    return ChainReport(count)


def verify(session: Session) -> ChainReport:
    """Check the whole stored chain from the first entry to the last."""
    entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.seq)).execution_options(yield_per=2000))
    return verify_entries(entries)


# ----- anchors: the head made public (README, "Anchors") -------------------------------------------------------------

def head(session: Session) -> tuple[int, str, datetime | None]:
    """The chain's last entry: (seq, hash, time); (0, GENESIS, None) while it is empty."""
    last = session.exec(select(AuditEntry.seq, AuditEntry.hash, AuditEntry.at)
                        .order_by(col(AuditEntry.seq).desc()).limit(1)).first()
    return (last[0], last[1], last[2]) if last else (0, GENESIS, None)


def anchor(session: Session, reason: str) -> AuditAnchor:
    """Record the head as it is now (daily, and in a draw's transaction after its entry)."""
    seq, hash_, entry_at = head(session)
    row = AuditAnchor(seq=seq, hash=hash_, entry_at=entry_at, reason=reason)
    session.add(row)
    session.flush()
    return row


def latest_anchor(session: Session) -> AuditAnchor | None:
    return session.exec(select(AuditAnchor).order_by(col(AuditAnchor.id).desc()).limit(1)).first()


def check_anchor(session: Session, seq: int, hash_: str) -> bool:
    """Whether the stored chain still has ``hash_`` at ``seq``: an anchor kept by an outsider
    against today's chain (with ``verify``, a rewrite of any entry up to ``seq`` shows)."""
    if seq == 0:
        return hash_ == GENESIS
    stored = session.exec(select(AuditEntry.hash).where(AuditEntry.seq == seq)).first()
    return stored is not None and hmac.compare_digest(stored, hash_)
