"""The working-day calendar the bot counts on: bundled, imported, provisional.

Three sources, most authoritative first:

1. Imported ``Holiday`` rows: the State Council's arrangement for a year as an admin
   imported it (``shuangsui import holidays FILE``). A year with any imported row is
   official, and its rows replace everything else known for that year.
2. ``chinese_calendar``'s bundled data (2004–2026 in 1.11), official for its years.
3. Any other year is provisional: weekends plus the statutory holidays from the
   ``holidays`` package, with no make-up workdays (see ``statutory_holidays``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from typing import Protocol

import holidays as holiday_tables
from chinese_calendar import constants as bundled
from sqlalchemy import select as select_rows
from sqlmodel import Session, col

from bot.rules.workdays import Arrangement, Calendar
from storage.models import Holiday

HOLIDAY = "holiday"
WORKDAY = "workday"

# The statutory holidays of 全国年节及纪念日放假办法 (2024 revision: 13 days) as the
# ``holidays`` package names them in en_US. It also gives "(observed)" in-lieu days,
# which are its own guesses, and "Day off (substituted from …)" copies of published
# arrangements without their make-up workdays; a provisional year takes neither, so
# that nothing official is ever invented or half-copied.
STATUTORY_NAMES = frozenset({
    "New Year's Day",
    "Chinese New Year's Eve",
    "Chinese New Year (Spring Festival)",
    "Tomb-Sweeping Day",
    "Labor Day",
    "Dragon Boat Festival",
    "Mid-Autumn Festival",
    "National Day",
})


class HolidayRow(Protocol):
    """What ``calendar_from_rows`` reads from a row: ``Holiday`` or anything alike."""

    @property
    def day(self) -> date: ...
    @property
    def kind(self) -> str: ...  # holiday | workday
    @property
    def year(self) -> int: ...  # the year of the notice, which may arrange late December of the one before


def load_calendar(session: Session) -> Calendar:
    """The calendar from the database's imported arrangements and the bundled data.

    Read on every 进度 and sweep: the imported rows are read each time (a plain read, so an
    import on another instance counts at once), the calendar built from them only when
    they differ from the last ones seen (a calendar never changes once built)."""
    rows = session.connection().execute(_IMPORTED).all()
    return _calendar_of(tuple(_Imported(day, kind, year) for day, kind, year in rows))


@dataclass(frozen=True)
class _Imported:
    day: date
    kind: str
    year: int


_IMPORTED = select_rows(col(Holiday.day), col(Holiday.kind), col(Holiday.year)).order_by(col(Holiday.day),
                                                                                         col(Holiday.kind))


@lru_cache(maxsize=4)
def _calendar_of(rows: tuple[_Imported, ...]) -> Calendar:
    return calendar_from_rows(rows)


def calendar_from_rows(rows: Iterable[HolidayRow]) -> Calendar:
    """The calendar from imported rows, which replace the bundled data year by year.

    Raises:
        ValueError: If a row's kind is neither ``holiday`` nor ``workday``.
    """
    imported: dict[tuple[int, str], set[date]] = defaultdict(set)
    for row in rows:
        if row.kind not in (HOLIDAY, WORKDAY):
            raise ValueError(f"{row.day}: kind must be {HOLIDAY} or {WORKDAY}, not {row.kind!r}")
        imported[row.year, row.kind].add(row.day)
    arrangements = dict(bundled_arrangements())
    for year in {year for year, _ in imported}:
        holidays, workdays = imported[year, HOLIDAY], imported[year, WORKDAY]
        arrangements[year] = Arrangement(year, frozenset(holidays), frozenset(workdays))
    return Calendar(arrangements, provisional_holidays=statutory_holidays)


@cache
def bundled_arrangements() -> dict[int, Arrangement]:
    """``chinese_calendar``'s data as one official arrangement per year it supports."""
    holidays: dict[int, set[date]] = defaultdict(set)
    workdays: dict[int, set[date]] = defaultdict(set)
    for day in bundled.holidays:
        holidays[_notice_year(day)].add(day)
    for day in bundled.workdays:
        workdays[_notice_year(day)].add(day)
    # The same year range chinese_calendar itself accepts before raising
    # NotImplementedError; a stray late-December day must not make next year official.
    years = range(min(bundled.holidays).year, max(bundled.holidays).year + 1)
    return {y: Arrangement(y, frozenset(holidays[y]), frozenset(workdays[y])) for y in years}


@cache
def statutory_holidays(year: int) -> frozenset[date]:
    """The statutory holidays of ``year``, for counting on it provisionally.

    Observed days are turned off and only the statutory names are kept, so in-lieu
    guesses and substituted days never count (see ``STATUTORY_NAMES``).
    """
    table = holiday_tables.China(years=year, observed=False, language="en_US")
    return frozenset(d for d in table if STATUTORY_NAMES.intersection(table.get_list(d)))


def _notice_year(day: date) -> int:
    # chinese_calendar keys days only. Its December days all belong to the next New
    # Year holiday (checked in 1.11), which the next year's notice arranges; an import
    # for that year must replace them too.
    return day.year + 1 if day.month == 12 else day.year
