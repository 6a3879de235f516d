"""Re-staffing a short team (补员, issue 18 §2; art. 12, 14): DRAW.md §6's replacement
pass, run once per missing member on the directory as it stands, each pick counted in
the next one's members and loads; and, when nobody qualifies, why (which qualification or
which unit is missing), so that the lead office knows what to fix. Pure: no database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from bot.rules import matching


@dataclass(frozen=True)
class Shortfall:
    """Why nobody (more) qualifies for a task, counted over the inspectors its mode may
    draw from (DRAW.md §5's ``L(o)``, before eligibility).

    Attributes:
        scope: ``all`` (the bureau), ``unit`` (the object's unit) or ``cross`` (outside it).
        unit: The object's jurisdiction unit.
        listed: Inspectors in that scope.
        inactive: Of them, not in post (不在岗).
        expired: Of them, in post but without a certificate valid on the day (执法证过期或未登记).
        members: Of the eligible, already on the team.
        excluded: Of the eligible, recused from the object or with a conflict of interest.
    """

    scope: str
    unit: str
    listed: int
    inactive: int
    expired: int
    members: int
    excluded: int


@dataclass(frozen=True)
class Restaffed:
    """The outcome of a re-staffing pass."""

    chosen: tuple[str, ...]  # in the order picked
    missing: int  # members still missing after the pass
    shortfall: Shortfall | None  # why, when some are still missing
    wanted: frozenset[str]  # required specialities no member holds: the task needs an expert (art. 12)


def restaff(
    seed: str,
    obj: matching.TaskObject,
    inspectors: Iterable[matching.Inspector],
    *,
    mode: str,
    members: Collection[str],
    missing: int,
    loads: Mapping[str, int],
    tasks: int,
    conflicts: Collection[tuple[str, str]] = frozenset(),
    recused: Collection[str] = frozenset(),
    on: date | None = None,
    team_size: int = matching.MIN_TEAM_SIZE,
    slack: int = 1,
) -> Restaffed:
    """Runs ``matching.replacement`` (DRAW.md §6) once per missing member.

    Each pick joins the members (skipped by the next walk, its specialities taken out of
    ``U``) and adds one to its load, exactly as if the missing members had been replaced
    one after the other. Deterministic: the same directory gives the same picks.

    Args:
        seed: The batch seed.
        obj: The task's object with its required specialities.
        inspectors: Every inspector of the directory as it stands; eligibility is judged ``on``.
        mode: The batch's mode (team mode walks the ``all`` inspector walk, DRAW.md §6).
        members: The task's standing members.
        missing: How many members the team lacks.
        loads: Loads of the batch as they stand.
        tasks: The length of the batch's task list.
        conflicts: Conflicts in force.
        recused: Inspectors recused from this object.
        on: The day of the re-staffing.
        team_size: The batch's team size.
        slack: The batch's slack.
    """
    people = list(inspectors)
    standing, tally, chosen = list(members), Counter(loads), []
    for _ in range(max(missing, 0)):
        pick = matching.replacement(seed, obj, people, mode=mode, members=standing, loads=tally, tasks=tasks,
                                    conflicts=conflicts, recused=recused, on=on, team_size=team_size, slack=slack)
        if pick is None:
            break
        chosen.append(pick)
        standing.append(pick)
        tally[pick] += 1
    left = max(missing, 0) - len(chosen)
    shortfall = (why_nobody(obj, people, mode=mode, members=standing, conflicts=conflicts, recused=recused, on=on)
                 if left else None)
    return Restaffed(tuple(chosen), left, shortfall, missing_specialties(obj, people, standing))


def why_nobody(obj: matching.TaskObject, inspectors: Iterable[matching.Inspector], *, mode: str,
               members: Collection[str], conflicts: Collection[tuple[str, str]] = frozenset(),
               recused: Collection[str] = frozenset(), on: date | None = None) -> Shortfall:
    """Counts who the mode could draw from and why each one cannot be picked."""
    scope = "all" if mode == "team" else mode
    barred = set(recused) | {i for i, o in conflicts if o == obj.id}
    mine = set(members)
    listed = inactive = expired = on_team = excluded = 0
    for person in inspectors:
        if scope != "all" and (person.unit == obj.unit) != (scope == "unit"):
            continue
        listed += 1
        if not person.active:
            inactive += 1
        elif not person.eligible_on(on):
            expired += 1
        elif person.id in mine:
            on_team += 1
        elif person.id in barred:
            excluded += 1
    return Shortfall(scope, obj.unit, listed, inactive, expired, on_team, excluded)


def missing_specialties(obj: matching.TaskObject, inspectors: Iterable[matching.Inspector],
                        members: Collection[str]) -> frozenset[str]:
    """The object's required specialities that no standing member holds: not empty means
    the task needs a specialist to assist (``needs_expert``, art. 12)."""
    held: set[str] = set()
    mine = set(members)
    for person in inspectors:
        if person.id in mine:
            held |= person.specialties
    return frozenset(obj.required_specialties - held)
