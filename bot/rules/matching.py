"""SSR-1 inspector matching and recusal replacement (DRAW.md §5–6).

Each object's inspectors come from a keyed, lazily evaluated Fisher–Yates walk, so a
task costs a few hashes however large the bureau is; lists are built once per unit
and mode, never per task. Follows DRAW.md to the letter: citizens and auditors
recompute it (``bot.verifier``).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Generic, TypeVar

from bot.rules.ssr1 import H

if TYPE_CHECKING:
    from _hashlib import HASH  # what hashlib's constructors return

MODES = ("all", "unit", "cross", "team")  # 大随机, 小随机, 交叉随机, 编组随机
MIN_TEAM_SIZE = 2  # art. 14: 执法检查人员不得少于两人

_T = TypeVar("_T")


@dataclass(frozen=True)
class Inspector:
    """An inspector as the draw sees them.

    Attributes:
        id: Inspector id.
        unit: The unit they belong to.
        specialties: Their specialities (业务专长).
        active: Whether they are in post (在岗).
        expiry: Last day their enforcement certificate is valid (valid through it).
        qualified: Set to say outright whether the qualification is valid on the day
            judged (as ``assignment.json`` does); it then overrides ``expiry``.
    """

    id: str
    unit: str
    specialties: frozenset[str] = frozenset()
    active: bool = True
    expiry: date | None = None
    qualified: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "specialties", frozenset(self.specialties))

    def eligible_on(self, day: date | None) -> bool:
        """Active and holding a qualification valid on ``day`` (DRAW.md §5)."""
        if not self.active:
            return False
        if self.qualified is not None:
            return self.qualified
        if self.expiry is None:
            return False
        if day is None:
            raise ValueError(f"inspector {self.id!r}: judging an expiry needs a date")
        return day <= self.expiry


@dataclass(frozen=True)
class Team:
    """A predefined team (编组) of inspectors."""

    id: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class TaskObject:
    """A task's object: its id, jurisdiction unit and the specialities its items need."""

    id: str
    unit: str
    required_specialties: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "required_specialties", frozenset(self.required_specialties))


@dataclass(frozen=True)
class Assignment:
    """A staffed task: inspectors in the order accepted (the first is the lead, 主办)."""

    object_id: str
    inspectors: tuple[str, ...]
    team_id: str | None = None
    needs_expert: bool = False


class DrawFailure(Exception):
    """The draw fails as a whole and stores nothing (DRAW.md §5).

    Attributes:
        reason: ``no_inspectors``, ``no_teams``, ``too_few_candidates`` or
            ``all_teams_conflicted``.
        object_id: The object that could not be staffed.
        mode: The matching mode.
        unit: The object's jurisdiction unit.
    """

    def __init__(self, reason: str, object_id: str, mode: str, unit: str) -> None:
        super().__init__(f"{reason}: object {object_id!r}, mode {mode}, unit {unit!r}")
        self.reason, self.object_id, self.mode, self.unit = reason, object_id, mode, unit


def walk_key(seed: str, object_id: str, kind: str = "inspector") -> str:
    """The walk's key, ``seed + "|inspector|" + o`` (``kind="team"`` for teams)."""
    return f"{seed}|{kind}|{object_id}"


def walk(key: str, m: int) -> Iterator[int]:
    """Yields the list indices of the keyed lazy Fisher–Yates walk (DRAW.md §5).

    One hash per step: ``r = p + int(H(key|p), 16) mod (m - p)``.
    """
    moved: dict[int, int] = {}
    for p in range(m):
        r = p + int(H(f"{key}|{p}"), 16) % (m - p)
        x = moved.get(r, r)
        moved[r] = moved.get(p, p)
        yield x


def load_cap(team_size: int, tasks: int, eligible: int, slack: int = 1) -> int:
    """``ceil(n * tasks / E) + slack`` (DRAW.md §5)."""
    return -(-team_size * tasks // eligible) + slack


def task_loads(assignments: Iterable[Assignment]) -> Counter[str]:
    """How many tasks each inspector is on (``load(c)`` of DRAW.md §5)."""
    return Counter(c for a in assignments for c in a.inspectors)


def match(
    seed: str,
    objects: Sequence[TaskObject],
    inspectors: Iterable[Inspector],
    *,
    mode: str,
    on: date | None = None,
    teams: Iterable[Team] = (),
    conflicts: Collection[tuple[str, str]] = frozenset(),
    team_size: int = MIN_TEAM_SIZE,
    slack: int = 1,
) -> list[Assignment]:
    """Staffs every task in task-list order (DRAW.md §5).

    Args:
        seed: The batch seed (DRAW.md §3).
        objects: The tasks' objects, in task-list order.
        inspectors: Every inspector of the bureau; eligibility is judged ``on``.
        mode: ``all``, ``unit``, ``cross`` or ``team``.
        on: The draw date.
        teams: Predefined teams (team mode).
        conflicts: ``(inspector_id, object_id)`` pairs in force at the draw.
        team_size: Inspectors per task, at least 2 (art. 14); team mode takes whole
            teams instead.
        slack: Added to the load cap.

    Raises:
        DrawFailure: If nobody is eligible (no team in team mode), or a task has fewer
            than ``team_size`` candidates without a conflict (no such team).
        ValueError: On a bad mode, size or slack, or an id given twice.
    """
    return list(staff(seed, objects, inspectors, mode=mode, on=on, teams=teams, conflicts=conflicts,
                      team_size=team_size, slack=slack))


def staff(
    seed: str,
    objects: Sequence[TaskObject],
    inspectors: Iterable[Inspector],
    *,
    mode: str,
    on: date | None = None,
    teams: Iterable[Team] = (),
    conflicts: Collection[tuple[str, str]] = frozenset(),
    team_size: int = MIN_TEAM_SIZE,
    slack: int = 1,
) -> Iterator[Assignment]:
    """``match`` one task at a time: yields each task's assignment as soon as it is made,
    in task-list order (a draw stores them meanwhile). The same assignments, the same
    failures, raised when the task that fails is reached (DRAW.md §5); arguments as
    ``match``.
    """
    _check_options(mode, team_size, slack)
    if len({o.id for o in objects}) != len(objects):
        raise ValueError("an object is listed twice in the task list")
    bureau = _Bureau(inspectors, on)
    conflicted = _by_object(conflicts)
    if mode == "team":
        yield from _match_teams(seed, objects, bureau, teams, conflicted, slack)
        return
    if objects and not bureau.units:
        first = objects[0]
        raise DrawFailure("no_inspectors", first.id, mode, first.unit)
    if not objects:
        return
    tally = _Loads(load_cap(team_size, len(objects), len(bureau.units), slack), {}, bureau)
    keyed = hashlib.sha256(walk_key(seed, "").encode())  # the walks' common start: seed|inspector|
    for o in objects:
        lst = bureau.list_for(mode, o.unit)
        skip: Set[str] = conflicted.get(o.id, frozenset())
        if (lst.size_without(skip) if skip else len(lst.ids)) < team_size:
            raise DrawFailure("too_few_candidates", o.id, mode, o.unit)
        left: Set[str] = frozenset()
        opened = None
        if not o.required_specialties:
            state = keyed.copy()
            state.update(f"{o.id}|".encode())
            opened = _first_open(state, lst.ids, team_size, skip, tally)
        if opened is not None:
            chosen = opened
        else:
            steps = _Steps(walk_key(seed, o.id), lst.ids)
            chosen, left = _choose(steps, lst, team_size, skip, o.required_specialties, tally, bureau)
        for c in chosen:
            tally.add(c)
        yield Assignment(o.id, tuple(chosen), None, bool(left))


def replacement(
    seed: str,
    obj: TaskObject,
    inspectors: Iterable[Inspector],
    *,
    mode: str,
    members: Collection[str],
    loads: Mapping[str, int],
    tasks: int,
    conflicts: Collection[tuple[str, str]] = frozenset(),
    recused: Collection[str] = frozenset(),
    on: date | None = None,
    team_size: int = MIN_TEAM_SIZE,
    slack: int = 1,
) -> str | None:
    """Picks one replacement for a recused inspector (DRAW.md §6, art. 12 回避).

    Args:
        seed: The batch seed.
        obj: The task's object.
        inspectors: Every inspector of the bureau; eligibility is judged ``on`` (the
            day of the recusal).
        mode: The batch's mode; team mode walks the inspector walk of mode ``all``.
        members: The task's remaining members (the recused one removed).
        loads: Loads as they stand, the recused inspector's already one less.
        tasks: The length of the batch's task list.
        conflicts: Conflicts in force, including the one just declared.
        recused: Inspectors who have recused themselves from this object.
        on: The day of the recusal.
        team_size: The batch's team size.
        slack: The batch's slack.

    Returns:
        The replacement's id, or None when no candidate is left (the caller marks the
        task ``unstaffed`` and tells the lead office).
    """
    _check_options(mode, team_size, slack)
    bureau = _Bureau(inspectors, on)
    if not bureau.units:
        return None
    list_mode = "all" if mode == "team" else mode
    lst = bureau.list_for(list_mode, obj.unit)
    skip = set(members) | set(recused) | _by_object(conflicts).get(obj.id, set())
    wanted = set(obj.required_specialties)
    for c in members:
        wanted -= bureau.specialties.get(c, frozenset())
    tally = _Loads(load_cap(team_size, tasks, len(bureau.units), slack), loads, bureau)
    steps = _Steps(walk_key(seed, obj.id), lst.ids)
    chosen, _ = _choose(steps, lst, 1, frozenset(skip), wanted, tally, bureau)
    return chosen[0] if chosen else None


def _choose(steps: _Steps[str], lst: _List, need: int, skip: Set[str], wanted: Iterable[str], tally: _Loads,
            bureau: _Bureau) -> tuple[list[str], set[str]]:
    """Passes 1–3 of DRAW.md §5 over o's walk; returns the accepted and U left.

    A pass stops early once no candidate it could accept is left anywhere on the list,
    so that an unmet speciality does not walk the whole bureau. That changes no result:
    it only skips steps that would accept nobody.
    """
    U = set(wanted)
    chosen: list[str] = []
    skipped = [c for c in skip if lst.contains(c)]
    open_left = len(lst.ids) - tally.full_in(lst) - sum(tally.under_cap(c) for c in skipped)
    any_left = len(lst.ids) - len(skipped)

    def more(step: int, behind: int) -> bool:
        if step == 3:
            return any_left - len(chosen) > 0
        if step == 1 and U:
            return lst.any_holder(U, lambda c: c not in skip and c not in chosen and tally.under_cap(c))
        return open_left - sum(tally.under_cap(c) for c in chosen) - behind > 0

    for step in (1, 2, 3):
        behind = 0  # open candidates this pass has passed over for want of a speciality
        going, i = more(step, behind), 0
        while going and len(chosen) < need and (c := steps.at(i)) is not None:
            i += 1
            if c in skip or c in chosen or (step < 3 and not tally.under_cap(c)):
                continue
            if step == 1 and U and not bureau.specialties[c] & U:
                behind += 1
                continue
            chosen.append(c)  # every acceptance, in any pass, reduces U
            U -= bureau.specialties[c]
            going = more(step, behind)
    return chosen, U


def _first_open(state: HASH, ids: Sequence[str], need: int, skip: Set[str], tally: _Loads) -> list[str] | None:
    """Passes 1–3 of ``_choose`` when U is empty, in the case that decides nearly every
    task: pass 1 then accepts the first ``need`` candidates of the walk under the cap and
    not skipped, so when the walk holds that many, they are the team. None otherwise
    (the caller runs the passes in full).

    ``state``: SHA-256 fed with the walk's key and ``|``. The walk is ``walk`` inlined,
    each step's ``H(key|p)`` a copy of that state fed with ``p``, read as an integer from
    its digest (``int(hex, 16)`` of the same bytes): no string of the key per step."""
    chosen: list[str] = []
    counts, cap = tally.counts, tally.cap
    seen = counts.get
    copy = state.copy
    m = len(ids)
    moved: dict[int, int] = {}
    for p in range(m):
        h = copy()
        h.update(b"%d" % p)
        r = p + int.from_bytes(h.digest(), "big") % (m - p)
        x = moved.get(r, r)
        moved[r] = moved.get(p, p)
        c = ids[x]
        if c in skip or c in chosen or seen(c, 0) >= cap:
            continue
        chosen.append(c)
        if len(chosen) == need:
            return chosen
    return None


def _match_teams(seed: str, objects: Sequence[TaskObject], bureau: _Bureau, teams: Iterable[Team],
                 conflicted: Mapping[str, set[str]], slack: int) -> Iterator[Assignment]:
    """Team mode (编组随机, DRAW.md §5): whole teams, specialities only flag experts."""
    valid = sorted((Team(t.id, tuple(sorted(set(t.members)))) for t in teams), key=lambda t: t.id)
    if len({t.id for t in valid}) != len(valid):
        raise ValueError("a team id is listed twice")
    # L(o) for teams: at least two distinct members, every one eligible, by team id.
    valid = [t for t in valid if len(t.members) >= 2 and all(c in bureau.units for c in t.members)]
    if objects and not valid:
        raise DrawFailure("no_teams", objects[0].id, "team", objects[0].unit)
    if not objects:
        return
    teams_of: dict[str, set[str]] = defaultdict(set)
    for t in valid:
        for c in t.members:
            teams_of[c].add(t.id)
    cap = -(-len(objects) // len(valid)) + slack
    load: Counter[str] = Counter()
    open_teams = len(valid)
    for o in objects:
        barred = set().union(*(teams_of[c] for c in conflicted.get(o.id, ())))
        if len(barred) == len(valid):
            raise DrawFailure("all_teams_conflicted", o.id, "team", o.unit)
        want_open = open_teams - sum(load[t] < cap for t in barred) > 0
        steps, i = _Steps(walk_key(seed, o.id, "team"), valid), 0
        while (team := steps.at(i)) is not None:
            i += 1
            if team.id not in barred and (not want_open or load[team.id] < cap):
                break
        # The walk visits every team, and one is unbarred (and open, when want_open).
        assert team is not None
        load[team.id] += 1
        if load[team.id] == cap:
            open_teams -= 1
        held = set().union(*(bureau.specialties[c] for c in team.members))
        yield Assignment(o.id, team.members, team.id, bool(o.required_specialties - held))


class _Steps(Generic[_T]):
    """o's walk, remembered so that every pass re-walks it from the start for free."""

    def __init__(self, key: str, items: Sequence[_T]) -> None:
        self._items, self._walk = items, walk(key, len(items))
        self._seen: list[_T] = []

    def at(self, i: int) -> _T | None:
        """The item visited at step ``i``, or None past the end of the walk."""
        while len(self._seen) <= i:
            x = next(self._walk, None)
            if x is None:
                return None
            self._seen.append(self._items[x])
        return self._seen[i]


@dataclass(eq=False)
class _List:
    """``L(o)`` for one mode and unit, sorted by id (DRAW.md §5)."""

    mode: str
    unit: str
    ids: list[str]
    bureau: _Bureau
    _holders: dict[str, list[str]] = field(default_factory=dict)

    def contains(self, c: str) -> bool:
        unit = self.bureau.units.get(c)
        if unit is None:
            return False
        return self.mode == "all" or (unit == self.unit) == (self.mode == "unit")

    def size_without(self, skip: Iterable[str]) -> int:
        return len(self.ids) - sum(self.contains(c) for c in skip)

    def any_holder(self, specialties: Iterable[str], accept: Callable[[str], bool]) -> bool:
        for s in specialties:
            if s not in self._holders:
                self._holders[s] = [c for c in self.ids if s in self.bureau.specialties[c]]
            if any(accept(c) for c in self._holders[s]):
                return True
        return False


class _Bureau:
    """The bureau's inspectors at the draw, with lists built once per mode and unit."""

    def __init__(self, inspectors: Iterable[Inspector], on: date | None) -> None:
        self.specialties: dict[str, frozenset[str]] = {}
        self.units: dict[str, str] = {}  # eligible inspectors only
        for i in inspectors:
            if i.id in self.specialties:
                raise ValueError(f"inspector {i.id!r} is listed twice")
            self.specialties[i.id] = i.specialties
            if i.eligible_on(on):
                self.units[i.id] = i.unit
        self._ids = sorted(self.units)
        self._lists: dict[tuple[str, str | None], _List] = {}

    def list_for(self, mode: str, unit: str) -> _List:
        key = (mode, None if mode == "all" else unit)
        if key not in self._lists:
            lst = _List(mode, unit, [], self)
            lst.ids = [c for c in self._ids if lst.contains(c)]
            self._lists[key] = lst
        return self._lists[key]


class _Loads:
    """Loads against the cap, with counts of full inspectors per unit kept current."""

    def __init__(self, cap: int, counts: Mapping[str, int], bureau: _Bureau) -> None:
        self.cap, self.counts, self._units = cap, Counter(counts), bureau.units
        self._full: Counter[str] = Counter()
        for c, n in self.counts.items():
            if n >= cap and c in self._units:
                self._full[self._units[c]] += 1

    def under_cap(self, c: str) -> bool:
        return self.counts[c] < self.cap

    def add(self, c: str) -> None:
        self.counts[c] += 1
        if self.counts[c] == self.cap:
            self._full[self._units[c]] += 1

    def full_in(self, lst: _List) -> int:
        total = self._full.total()
        if lst.mode == "all":
            return total
        return self._full[lst.unit] if lst.mode == "unit" else total - self._full[lst.unit]


def _by_object(conflicts: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for inspector_id, object_id in conflicts:
        found[object_id].add(inspector_id)
    return found


def _check_options(mode: str, team_size: int, slack: int) -> None:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if type(team_size) is not int or team_size < MIN_TEAM_SIZE:
        raise ValueError(f"team size must be at least {MIN_TEAM_SIZE} (art. 14), not {team_size!r}")
    if type(slack) is not int or slack < 0:
        raise ValueError(f"slack must be a whole number of at least 0, not {slack!r}")
