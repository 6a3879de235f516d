"""When to remind whom about a deadline (art. 20, 25): pure rules, no I/O.

A deadline falls due on a working day of the official calendar. Reminders go out a
set number of working days before it, on the day, and every working day while it is
overdue; after ``lead_after`` working days overdue the batch's lead office hears of it,
after ``accountability_after`` the accountability contacts of the unit that owes it
(SPEC §1). Reminders are sent only in working hours on working days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from bot.rules.workdays import Calendar

OWNER, LEAD, ACCOUNTABILITY = "owner", "lead", "accountability"
RESULT_DAYS = 20  # art. 20: results entered, approved and published within 20 working days of the inspection


@dataclass(frozen=True)
class Policy:
    """The reminder ladder (``[reminders]`` in the configuration)."""

    before: tuple[int, ...] = (3, 1)  # working days before the due date
    lead_after: int = 1  # working days overdue before the lead office is told
    accountability_after: int = 3  # … before the accountability contacts are
    start: time = time(9, 0)
    end: time = time(18, 0)


@dataclass(frozen=True)
class Step:
    """Who is reminded today: ``step`` names the rung, unique per deadline and person."""

    step: str  # before-3 | due | overdue-2 …
    levels: tuple[str, ...]  # OWNER, LEAD, ACCOUNTABILITY
    days_left: int  # negative: working days overdue


def in_working_hours(moment: datetime, calendar: Calendar, policy: Policy) -> bool:
    """Whether ``moment`` (in the bureau's time zone) is when reminders may go out."""
    return calendar.is_working_day(moment.date()) and policy.start <= moment.time() < policy.end


def step_for(today: date, due: date, calendar: Calendar, policy: Policy,
             left_cache: dict | None = None) -> Step | None:
    """Today's reminder about a deadline due on ``due``, if any.

    ``today`` must be a working day (the sweep checks ``in_working_hours``).
    """
    key = (today, due)
    if left_cache is not None and key in left_cache:
        left = left_cache[key]
    else:
        left = calendar.working_days_between(today, due)
        if left_cache is not None:
            left_cache[key] = left
    if left > 0:
        return Step(f"before-{left}", (OWNER,), left) if left in policy.before else None
    if left == 0:
        return Step("due", (OWNER,), 0)
    overdue = -left
    levels = [OWNER]
    if overdue >= policy.lead_after:
        levels.append(LEAD)
    if overdue >= policy.accountability_after:
        levels.append(ACCOUNTABILITY)
    return Step(f"overdue-{overdue}", tuple(levels), left)
