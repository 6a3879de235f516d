"""Helpers shared by the models."""

from datetime import UTC, datetime

from sqlalchemy import Table
from sqlmodel import SQLModel


def utcnow() -> datetime:
    """Now, timezone-aware in UTC (every stored instant is UTC)."""
    return datetime.now(UTC)


def table_of(model: type[SQLModel]) -> Table:
    """A table model's ``Table``, for Core statements (inserts of many rows, ``.c`` columns)."""
    # SQLModel sets __table__ on every table=True class but does not declare it.
    return model.__table__  # type: ignore[attr-defined]
