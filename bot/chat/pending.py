"""What the bot asked a person to type next: a card cannot take free text, so the bot
asks in the private chat and takes the next message (SPEC §5)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col

from storage.models import PendingInput

TTL = {"evidence": timedelta(hours=4)}
DEFAULT_TTL = timedelta(minutes=30)


def ask(session: Session, platform: str, user: str, kind: str, task_id: int, now: datetime,
        data: dict | None = None) -> None:
    """Remember the question (one at a time per person: a new one replaces the old)."""
    clear(session, platform, user)
    session.add(PendingInput(platform=platform, user_id=user, kind=kind, task_id=task_id, data=data or {},
                             expires_at=now + TTL.get(kind, DEFAULT_TTL)))
    session.flush()


def current(session: Session, platform: str, user: str, now: datetime) -> PendingInput | None:
    found = session.get(PendingInput, (platform, user))
    return found if found and found.expires_at > now else None


def clear(session: Session, platform: str, user: str) -> None:
    session.execute(delete(PendingInput).where(col(PendingInput.platform) == platform,
                                               col(PendingInput.user_id) == user))
