"""The bureau's clock: all dates a person sees are in the bureau's time zone (SPEC §3)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def now() -> datetime:
    """The current instant, in UTC (tests freeze it with time-machine)."""
    return datetime.now(UTC)


def bureau_today(timezone: str = "Asia/Shanghai") -> date:
    """Today's date at the bureau, whatever the host's zone."""
    return now().astimezone(ZoneInfo(timezone)).date()
