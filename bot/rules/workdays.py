"""Working days on the official Chinese calendar, with make-up workdays (调休).

Deadlines count working days (art. 11: plan adjustments re-filed "十个工作日内";
art. 20: results published "在抽查检查完成之日起20个工作日内"). A working day is a
weekday that the State Council's arrangement does not give off, or a weekend day it
makes a make-up workday.

The arrangement for a year is published each autumn (国务院办公厅关于N年部分节假日
安排的通知). For a year nobody has given yet, the bot keeps counting on a provisional
calendar (weekends plus the statutory holidays, no make-up days) and says so: every
answer that depends on such a day is provisional (暂定). Only an arrangement passed in
as such is official; this module never guesses one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

ONE_DAY = timedelta(days=1)

# The arrangement for year N also sets the New Year holiday, which has reached back
# into late December of N-1 (make-up workdays on 2006-12-30, 2007-12-29, 2011-12-31,
# 2018-12-29). Until N's arrangement is known, the last week of N-1 is not settled.
NEW_YEAR_REACH_DAY = 25

ProvisionalHolidays = Callable[[int], Iterable[date]]
"""Gives the statutory holidays of a year that has no official arrangement."""


def no_holidays(year: int) -> frozenset[date]:
    """The provisional holidays when nothing is known: none (weekends only)."""
    return frozenset()


@dataclass(frozen=True)
class Arrangement:
    """One year's official holiday arrangement.

    Attributes:
        year: The year the State Council's notice is for (its late-December days may
            lie in the year before).
        holidays: Days off (放假), whatever weekday they fall on.
        workdays: Make-up workdays (调休上班), usually weekend days.
    """

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]

    def __post_init__(self) -> None:
        if clash := self.holidays & self.workdays:
            raise ValueError(f"{self.year}: both holiday and workday: {sorted(clash)}")


@dataclass(frozen=True)
class DueDate:
    """A day found by counting working days.

    Attributes:
        day: The day.
        provisional: True when any day the answer depends on lies where no official
            arrangement is known yet; show it as 暂定 and recompute it on import.
    """

    day: date
    provisional: bool


@dataclass(frozen=True, eq=False)
class Calendar:
    """The working-day calendar: official arrangements plus provisional years.

    Attributes:
        arrangements: Official arrangements keyed by year. Only these are official.
        provisional_holidays: Statutory holidays for any other year, asked lazily
            because a deadline may run into any future year.
    """

    arrangements: Mapping[int, Arrangement]
    provisional_holidays: ProvisionalHolidays = no_holidays
    _official_days: dict[date, bool] = field(init=False, repr=False, compare=False)
    _provisional_cache: dict[int, frozenset[date]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        days: dict[date, bool] = {}
        # A later year's notice has the last word on a late-December day.
        for year in sorted(self.arrangements):
            arrangement = self.arrangements[year]
            days.update(dict.fromkeys(arrangement.holidays, False))
            days.update(dict.fromkeys(arrangement.workdays, True))
        object.__setattr__(self, "_official_days", days)

    def is_official_year(self, year: int) -> bool:
        """Whether the official arrangement for ``year`` is known."""
        return year in self.arrangements

    def is_provisional(self, day: date) -> bool:
        """Whether ``day``'s status may still change when an arrangement arrives."""
        if day in self._official_days:
            return False
        if not self.is_official_year(day.year):
            return True
        return (
            day.month == 12
            and day.day >= NEW_YEAR_REACH_DAY
            and not self.is_official_year(day.year + 1)
        )

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day (provisionally, if its year is not given)."""
        if day in self._official_days:
            return self._official_days[day]
        if not self.is_official_year(day.year) and day in self._statutory(day.year):
            return False
        return day.weekday() < 5

    def working_days_after(self, start: date, n: int) -> DueDate:
        """The ``n``-th working day after ``start``, not counting ``start`` itself.

        Art. 20 (regulation 第二十条): results are due "在抽查检查完成之日起20个工作日内",
        i.e. by ``working_days_after(inspection_done, 20)``.

        Raises:
            ValueError: If ``n`` is less than 1.
        """
        if n < 1:
            raise ValueError(f"count working days from 1, not {n}")
        day = start
        while n:
            day += ONE_DAY
            if self.is_working_day(day):
                n -= 1
        return DueDate(day, self.spans_provisional(start, day))

    def working_days_between(self, start: date, end: date) -> int:
        """How many working days lie in (``start``, ``end``]; negative if ``end`` is earlier.

        ``working_days_between(today, due)`` is the working days left; below zero, how
        many a deadline is overdue.
        """
        if end < start:
            return -self.working_days_between(end, start)
        return sum(self.is_working_day(day) for day in _days(start + ONE_DAY, end))

    def next_working_day(self, day: date) -> DueDate:
        """``day`` itself if it is a working day, else the first working day after it."""
        found = day
        while not self.is_working_day(found):
            found += ONE_DAY
        return DueDate(found, any(self.is_provisional(d) for d in _days(day, found)))

    def spans_provisional(self, start: date, end: date) -> bool:
        """Whether any day in (``start``, ``end``] is provisional."""
        return any(self.is_provisional(day) for day in _days(start + ONE_DAY, end))

    def years_needing_arrangement(self, today: date, horizon_days: int = 92) -> list[int]:
        """The years from ``today`` to ``today + horizon_days`` with no official arrangement.

        The default horizon brings next year in from 1 October, when the State Council
        usually publishes it, so the admins are reminded to import it.
        """
        last = (today + timedelta(days=horizon_days)).year
        return [y for y in range(today.year, last + 1) if not self.is_official_year(y)]

    def _statutory(self, year: int) -> frozenset[date]:
        if year not in self._provisional_cache:
            self._provisional_cache[year] = frozenset(self.provisional_holidays(year))
        return self._provisional_cache[year]


def _days(first: date, last: date) -> Iterator[date]:
    """Every day from ``first`` to ``last``, both included."""
    day = first
    while day <= last:
        yield day
        day += ONE_DAY
