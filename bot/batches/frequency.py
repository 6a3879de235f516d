"""The frequency cap (细则第十一条: 防止执法扰民) that publication applies to a pool, and
that 新建抽查's answer counts: how often one object may be inspected within the window —
the bureau's calendar year, or ``[draw] frequency_window_days``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.clock import bureau_time
from bot.settings import Settings
from storage.pools import FrequencyCap


def frequency_cap(settings: Settings, now: datetime) -> FrequencyCap:
    """The configured cap; "this year" is the bureau's calendar year (art. 11: 防止执法扰民)."""
    draw = settings.draw
    if draw.frequency_window_days:
        since = now - timedelta(days=draw.frequency_window_days)
    else:
        local = bureau_time(now, settings.bureau.timezone)
        since = local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    return FrequencyCap(draw.frequency_cap, since, tuple(draw.frequency_exempt))
