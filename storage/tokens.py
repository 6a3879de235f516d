"""Platform access tokens shared by every instance through one row per app.

One instance at a time refreshes (a lease on the row); the others wait for its result
instead of calling the platform's rate-limited token API themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from storage.models import AccessToken


def current(session: Session, key: str, now: datetime, margin: timedelta) -> tuple[str, datetime] | None:
    """The shared token and its expiry, if it is still good for ``margin``."""
    row = session.get(AccessToken, key)
    if row and row.token and row.expires_at and row.expires_at - margin > now:
        return row.token, row.expires_at
    return None


def begin_refresh(session: Session, key: str, owner: str, now: datetime, lease: timedelta) -> bool:
    """Take the right to fetch a new token (nobody else is, or they gave up)."""
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert_(AccessToken).values(key=key).on_conflict_do_nothing(index_elements=["key"]))
    result = session.exec(
        update(AccessToken)
        .where(col(AccessToken.key) == key,
               or_(col(AccessToken.refresher).is_(None), col(AccessToken.refresh_started_at) < now - lease,
                   col(AccessToken.refresher) == owner))
        .values(refresher=owner, refresh_started_at=now)
    )
    return result.rowcount == 1


def store(session: Session, key: str, token: str, expires_at: datetime) -> None:
    session.execute(update(AccessToken).where(col(AccessToken.key) == key)
                    .values(token=token, expires_at=expires_at, refresher=None, refresh_started_at=None))


def abandon_refresh(session: Session, key: str, owner: str) -> None:
    session.execute(update(AccessToken).where(col(AccessToken.key) == key, col(AccessToken.refresher) == owner)
                    .values(refresher=None, refresh_started_at=None))


def invalidate(session: Session, key: str, token: str) -> None:
    """The platform refused ``token``: forget it, unless someone already replaced it."""
    session.execute(update(AccessToken).where(and_(col(AccessToken.key) == key, col(AccessToken.token) == token))
                    .values(token=None, expires_at=None))
