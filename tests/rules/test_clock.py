"""The bureau's clock: an instant's date and time at the bureau, whatever the host's zone."""

from datetime import UTC, date, datetime

import time_machine

from bot.clock import bureau_date, bureau_time, bureau_today


def test_an_instant_late_in_the_utc_day_is_the_next_day_in_shanghai():
    instant = datetime(2026, 9, 30, 17, 30, tzinfo=UTC)
    assert bureau_date(instant, "Asia/Shanghai") == date(2026, 10, 1)
    assert bureau_date(instant, "UTC") == date(2026, 9, 30)
    local = bureau_time(instant, "Asia/Shanghai")
    assert (local.hour, local.minute, local.utcoffset().total_seconds()) == (1, 30, 8 * 3600)


def test_a_naive_instant_is_utc_as_stored():
    local = bureau_time(datetime(2026, 9, 30, 17, 30), "Asia/Shanghai")
    assert local == datetime(2026, 9, 30, 17, 30, tzinfo=UTC) and (local.day, local.hour) == (1, 1)
    assert bureau_date(datetime(2026, 9, 30, 15, 59), "Asia/Shanghai") == date(2026, 9, 30)


def test_today_is_the_bureau_date_of_now():
    with time_machine.travel(datetime(2026, 12, 31, 16, 0, tzinfo=UTC), tick=False):
        assert bureau_today("Asia/Shanghai") == date(2027, 1, 1)
        assert bureau_today("UTC") == date(2026, 12, 31)
