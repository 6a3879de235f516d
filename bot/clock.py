"""The bureau's clock: all dates a person sees are in the bureau's time zone (SPEC §3)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def now() -> datetime:
    """The current instant, in UTC (tests freeze it with time-machine)."""
    return datetime.now(UTC)


def bureau_time(instant: datetime, timezone: str) -> datetime:
    """The bureau's local time at ``instant``; a naive instant is UTC (every stored
    instant is, and SQLite hands them back without their zone)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(ZoneInfo(timezone))  # ZoneInfo caches its zones


def bureau_date(instant: datetime, timezone: str) -> date:
    """The bureau's calendar date at ``instant``, whatever the host's zone."""
    return bureau_time(instant, timezone).date()


def bureau_today(timezone: str = "Asia/Shanghai") -> date:
    """Today's date at the bureau, whatever the host's zone."""
    return bureau_date(now(), timezone)



def typed_instant(moment: datetime, timezone: str) -> datetime:
    """An instant a person typed (``--now``): without an offset it is bureau time."""
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))
