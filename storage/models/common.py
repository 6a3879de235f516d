"""Column helpers shared by the models."""

from datetime import UTC, datetime

from sqlmodel import Field


def utcnow() -> datetime:
    """Now, timezone-aware in UTC (every stored instant is UTC)."""
    return datetime.now(UTC)


def created_field():
    return Field(default_factory=utcnow)
