"""Time helpers shared by the models."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, timezone-aware in UTC (every stored instant is UTC)."""
    return datetime.now(UTC)
