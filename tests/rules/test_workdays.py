"""The working-day calendar (art. 11, 20, 25) on known 2025–2026 dates and on provisional years.

Expected dates were checked by hand against the State Council's notices for 2025
(国办发明电〔2024〕12号) and 2026 (国办发明电〔2025〕7号).
"""

import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules.workdays import Arrangement, Calendar, DueDate
from bot.texts import say
from storage.calendar import calendar_from_rows, load_calendar, statutory_holidays

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class Row:
    day: date
    kind: str
    year: int


def knows(year: int) -> bool:
    """Whether the installed chinese_calendar has official data for ``year``."""
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


def today_in_shanghai() -> date:
    # As the scheduler asks it: the bureau's date, whatever the host's zone.
    return datetime.now(SHANGHAI).date()


@pytest.fixture(scope="module")
def calendar() -> Calendar:
    return calendar_from_rows([])


# --- official days, 2025–2026 -------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 2, 14), True),  # Saturday, make-up workday for Spring Festival 2026
        (date(2026, 2, 15), False),  # Spring Festival 2026: 15–23 February
        (date(2026, 2, 16), False),
        (date(2026, 2, 23), False),  # Monday, still the holiday
        (date(2026, 2, 24), True),
        (date(2026, 2, 28), True),  # Saturday, the second make-up workday
        (date(2026, 1, 4), True),  # Sunday, make-up for New Year 1–3 January
        (date(2025, 9, 28), True),  # Sunday, make-up for National Day 2025
        (date(2025, 10, 11), True),  # Saturday, make-up for National Day 2025
        (date(2025, 10, 12), False),  # an ordinary Sunday
        (date(2025, 10, 9), True),
        (date(2025, 11, 15), False),  # an ordinary Saturday
        (date(2025, 11, 17), True),  # an ordinary Monday
        (date(2026, 9, 20), True),  # Sunday, make-up for National Day 2026
        (date(2026, 9, 25), False),  # Friday, Mid-Autumn 2026
        (date(2026, 10, 8), True),
        (date(2026, 10, 10), True),  # Saturday, make-up for National Day 2026
    ],
)
def test_known_days(calendar, day, working):
    assert calendar.is_working_day(day) is working
    assert not calendar.is_provisional(day)


@pytest.mark.parametrize(
    "holiday",
    days(date(2025, 10, 1), date(2025, 10, 8)) + days(date(2026, 10, 1), date(2026, 10, 7)),
)
def test_national_day_is_off(calendar, holiday):
    assert not calendar.is_working_day(holiday)


def test_bundled_years_agree_with_chinese_calendar(calendar):
    year = min(chinese_calendar.constants.holidays).year
    last = max(chinese_calendar.constants.holidays).year
    for day in days(date(year, 1, 1), date(last, 12, 31)):
        assert calendar.is_working_day(day) is chinese_calendar.is_workday(day), day


# --- deadlines (art. 20: 20 working days from the day the inspection is completed) ---


def test_deadline_across_national_day_2025(calendar):
    # Done Friday 26 Sep. Counting: Sun 28 Sep (make-up) 1, 29–30 Sep 2–3,
    # 1–8 Oct off, 9–10 Oct 4–5, Sat 11 Oct (make-up) 6, 13–17 Oct 7–11,
    # 20–24 Oct 12–16, 27–30 Oct 17–20.
    assert calendar.working_days_after(date(2025, 9, 26), 20) == DueDate(date(2025, 10, 30), False)
    assert calendar.working_days_between(date(2025, 9, 26), date(2025, 10, 30)) == 20


def test_deadline_across_national_day_2026(calendar):
    # Done Friday 18 Sep. Sun 20 Sep (make-up) 1, 21–24 Sep 2–5, 25–27 Sep off
    # (Mid-Autumn), 28–30 Sep 6–8, 1–7 Oct off, 8–9 Oct 9–10, Sat 10 Oct (make-up) 11,
    # 12–16 Oct 12–16, 19–22 Oct 17–20.
    assert calendar.working_days_after(date(2026, 9, 18), 20) == DueDate(date(2026, 10, 22), False)


def test_deadline_across_spring_festival_2026(calendar):
    # Done Thursday 12 Feb. Fri 13 Feb 1, Sat 14 Feb (make-up) 2, 15–23 Feb off,
    # 24–27 Feb 3–6, Sat 28 Feb (make-up) 7, 2–4 Mar 8–10.
    assert calendar.working_days_after(date(2026, 2, 12), 10) == DueDate(date(2026, 3, 4), False)


def test_start_day_is_not_counted(calendar):
    assert calendar.working_days_after(date(2025, 11, 17), 1).day == date(2025, 11, 18)
    assert calendar.working_days_after(date(2025, 11, 15), 1).day == date(2025, 11, 17)


def test_count_must_be_positive(calendar):
    with pytest.raises(ValueError):
        calendar.working_days_after(date(2025, 11, 17), 0)


def test_working_days_between(calendar):
    assert calendar.working_days_between(date(2025, 9, 30), date(2025, 10, 9)) == 1
    assert calendar.working_days_between(date(2025, 10, 30), date(2025, 9, 26)) == -20
    assert calendar.working_days_between(date(2025, 10, 1), date(2025, 10, 1)) == 0


def test_next_working_day(calendar):
    assert calendar.next_working_day(date(2025, 10, 1)) == DueDate(date(2025, 10, 9), False)
    assert calendar.next_working_day(date(2025, 10, 9)) == DueDate(date(2025, 10, 9), False)
    assert calendar.next_working_day(date(2025, 9, 27)) == DueDate(date(2025, 9, 28), False)


# --- provisional years --------------------------------------------------------------


def test_far_year_is_provisional(calendar):
    assert not calendar.is_official_year(2031)
    assert calendar.is_provisional(date(2031, 6, 2))
    # Statutory: Spring Festival eve and days 1–3 are 22–25 January 2031.
    assert not calendar.is_working_day(date(2031, 1, 22))
    assert not calendar.is_working_day(date(2031, 1, 24))
    # No make-up workdays are invented: every weekend day is off.
    weekends = [d for d in days(date(2031, 1, 1), date(2031, 12, 31)) if d.weekday() >= 5]
    assert not any(calendar.is_working_day(d) for d in weekends)
    # Mon 20 Jan: Tue 21 is 1, 22–26 off, 27–30 Jan 2–5.
    assert calendar.working_days_after(date(2031, 1, 20), 5) == DueDate(date(2031, 1, 30), True)
    assert calendar.next_working_day(date(2031, 1, 22)) == DueDate(date(2031, 1, 27), True)


def test_provisional_takes_statutory_days_only():
    # The holidays package would add in-lieu guesses ("observed": Mon 27 Jan 2031,
    # Mon 7 Apr 2031); only the 13 statutory days of the 2024 revision are taken,
    # less those that fall together (Mid-Autumn is 1 October in 2031).
    assert statutory_holidays(2031) == {
        date(2031, 1, 1),
        *days(date(2031, 1, 22), date(2031, 1, 25)),
        date(2031, 4, 5),
        date(2031, 5, 1),
        date(2031, 5, 2),
        date(2031, 6, 24),
        *days(date(2031, 10, 1), date(2031, 10, 3)),
    }
    assert len(statutory_holidays(2027)) == 13


def test_2027_is_provisional_until_given(calendar):
    if knows(2027):
        assert calendar.is_official_year(2027)
        assert not calendar.is_provisional(date(2027, 6, 1))
        return
    assert calendar.years_needing_arrangement(date(2027, 3, 1)) == [2027]
    assert calendar.is_provisional(date(2027, 6, 1))
    assert not calendar.is_working_day(date(2027, 2, 8))  # Spring Festival, day 3
    assert calendar.is_working_day(date(2027, 2, 9))  # the package's "observed" guess
    # Late December waits for 2027's notice too: it may arrange the New Year holiday.
    assert calendar.is_provisional(date(2026, 12, 28))
    assert calendar.working_days_after(date(2026, 12, 10), 20).provisional


def test_deadline_crossing_into_a_provisional_year_is_provisional():
    rows = [Row(d, "holiday", 2030) for d in days(date(2030, 10, 1), date(2030, 10, 7))]
    calendar = calendar_from_rows(rows)
    assert calendar.working_days_after(date(2030, 11, 1), 5) == DueDate(date(2030, 11, 8), False)
    # 16–20 Dec, 23 Dec: settled before the last week of December.
    assert calendar.working_days_after(date(2030, 12, 13), 6) == DueDate(date(2030, 12, 23), False)
    # Into the last week of December, which 2031's notice may still arrange.
    assert calendar.working_days_after(date(2030, 12, 20), 3) == DueDate(date(2030, 12, 25), True)
    due = calendar.working_days_after(date(2030, 12, 10), 20)
    assert due.day.year == 2031 and due.provisional


def test_no_data_at_all_means_weekends_and_provisional():
    calendar = Calendar({})
    assert calendar.is_working_day(date(2026, 10, 1))  # nobody said it is a holiday
    assert calendar.working_days_after(date(2026, 2, 13), 1) == DueDate(date(2026, 2, 16), True)


def test_an_arrangement_cannot_both_give_and_take_a_day():
    with pytest.raises(ValueError):
        Arrangement(2031, frozenset({date(2031, 2, 1)}), frozenset({date(2031, 2, 1)}))


# --- imported arrangements ----------------------------------------------------------


def test_imported_year_is_official_and_replaces_bundled(calendar):
    imported = calendar_from_rows([Row(date(2026, 2, 16), "holiday", 2026)])
    assert imported.is_official_year(2026)
    assert not imported.is_working_day(date(2026, 2, 16))
    assert not imported.is_working_day(date(2026, 2, 14))  # bundled make-up day gone
    assert imported.is_working_day(date(2026, 10, 1))  # bundled holiday gone
    assert imported.is_working_day(date(2025, 9, 28))  # other years untouched
    assert calendar.is_working_day(date(2026, 2, 14))


def test_imported_far_year_is_official():
    rows = [
        Row(date(2030, 12, 29), "workday", 2031),  # a notice may arrange late December
        *(Row(d, "holiday", 2031) for d in days(date(2031, 1, 23), date(2031, 1, 29))),
        Row(date(2031, 2, 8), "workday", 2031),
    ]
    calendar = calendar_from_rows(rows)
    assert calendar.is_official_year(2031)
    assert calendar.is_working_day(date(2031, 1, 22))  # statutory guess replaced
    assert calendar.is_working_day(date(2031, 2, 8))
    assert calendar.is_working_day(date(2030, 12, 29))
    assert not calendar.is_provisional(date(2030, 12, 29))
    # Tue 21 Jan: Wed 22 is 1 (no longer a holiday), 23–29 off, 30–31 Jan 2–3.
    due = calendar.working_days_after(date(2031, 1, 21), 3)
    assert due == DueDate(date(2031, 1, 31), False)
    assert say("calendar", "due", day=due.day, provisional=due.provisional) == "2031年1月31日"


def test_a_notice_owns_its_late_december_days(calendar):
    # The 2019 notice made Saturday 29 December 2018 a workday; importing 2019 again
    # replaces it with the rest of that notice.
    assert calendar.is_working_day(date(2018, 12, 29))
    assert not calendar.is_working_day(date(2018, 12, 31))
    imported = calendar_from_rows([Row(date(2019, 2, 5), "holiday", 2019)])
    assert not imported.is_working_day(date(2018, 12, 29))
    assert imported.is_working_day(date(2018, 12, 31))


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        calendar_from_rows([Row(date(2031, 1, 1), "休", 2031)])


def test_load_calendar_reads_imported_rows(session):
    from storage.models import Holiday

    session.add(Holiday(day=date(2031, 1, 23), kind="holiday", year=2031))
    session.add(Holiday(day=date(2031, 2, 8), kind="workday", year=2031))
    session.commit()
    calendar = load_calendar(session)
    assert calendar.is_official_year(2031)
    assert calendar.is_working_day(date(2031, 2, 8))
    assert calendar.is_working_day(date(2026, 2, 14))


# --- reminding the admins, on a frozen clock ----------------------------------------


def test_reminder_years_follow_the_clock(calendar):
    # 1 October 2026, 01:00 in Shanghai, is still 30 September in UTC.
    with time_machine.travel(datetime(2026, 9, 30, 17, tzinfo=ZoneInfo("UTC")), tick=False):
        assert today_in_shanghai() == date(2026, 10, 1)
        expected = [] if knows(2027) else [2027]
        assert calendar.years_needing_arrangement(today_in_shanghai()) == expected
    with time_machine.travel(datetime(2026, 6, 1, 9, tzinfo=SHANGHAI), tick=False):
        assert calendar.years_needing_arrangement(today_in_shanghai()) == []


def test_reminder_for_far_years():
    calendar = calendar_from_rows([Row(date(2030, 10, 1), "holiday", 2030)])
    with time_machine.travel(datetime(2030, 9, 30, 9, tzinfo=SHANGHAI), tick=False):
        assert calendar.years_needing_arrangement(today_in_shanghai()) == []
    with time_machine.travel(datetime(2030, 10, 1, 9, tzinfo=SHANGHAI), tick=False):
        years = calendar.years_needing_arrangement(today_in_shanghai())
    assert years == [2031]
    text = say("calendar", "arrangement_missing", years=years)
    assert "国务院办公厅关于2031年部分节假日安排的通知" in text
    assert "暂定" in text and "shuangsui import holidays" in text


def test_provisional_deadline_is_marked():
    assert say("calendar", "due", day=date(2031, 1, 30), provisional=True) == "2031年1月30日（暂定）"
    assert say("calendar", "due", day=date(2026, 10, 9), provisional=False) == "2026年10月9日"


# --- properties ---------------------------------------------------------------------

CALENDAR = calendar_from_rows([])


@settings(max_examples=300, deadline=None)
@given(st.dates(date(2004, 1, 1), date(2034, 12, 31)), st.integers(1, 60))
def test_counting_properties(start, n):
    due = CALENDAR.working_days_after(start, n)
    assert CALENDAR.is_working_day(due.day)
    assert CALENDAR.working_days_between(start, due.day) == n
    assert CALENDAR.working_days_between(start, due.day - timedelta(1)) == n - 1
    assert due.provisional == CALENDAR.spans_provisional(start, due.day)


def test_the_rules_module_is_pure():
    heavy = "{'aiohttp', 'sqlalchemy', 'sqlmodel', 'chinese_calendar', 'holidays'}"
    code = f"import sys, bot.rules.workdays; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]"
