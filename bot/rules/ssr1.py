"""SSR-1, the published draw: commitment, pools, seeds, object selection (DRAW.md §1–4)
and the frozen roster (§8).

Every function here is pure and follows DRAW.md to the letter, because citizens
recompute the draw from its text: any deviation is a bug. Inspector matching
(§5–6) is in ``bot.rules.matching``; the citizen's own checker is ``bot.verifier``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import chain
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from _hashlib import HASH  # what hashlib's constructors return

ALGORITHM = "SSR-1"
MIN_WEIGHT, MAX_WEIGHT = 1, 10
_SECRET = re.compile(r"[0-9a-f]{64}")
_SCORE_LENGTH = 64  # hex characters of a SHA-256
_NAME_MAX = 32
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Scored(NamedTuple):
    """A pool member with its score; tuples order by ``(score, id)`` as §4 selects."""

    score: str
    id: str


@dataclass(frozen=True)
class Task:
    """One task of the batch's task list (DRAW.md §4, art. 13: one visit per object).

    Attributes:
        object_id: The object inspected.
        strata: The strata that selected it, in declared order.
        items: The items to check, merged in the order §4 gives.
    """

    object_id: str
    strata: tuple[str, ...]
    items: tuple[str, ...]


def H(s: str) -> str:
    """Lowercase hex SHA-256 of the UTF-8 bytes of ``s`` (DRAW.md, Notation)."""
    return hashlib.sha256(s.encode()).hexdigest()


def check_identifier(value: str, what: str = "identifier") -> str:
    """Returns ``value`` if it is a valid SSR-1 identifier (DRAW.md, Notation).

    Raises:
        ValueError: If it is empty, holds ``|``, CR or LF, or has white space at an end.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    if "|" in value or "\r" in value or "\n" in value:
        raise ValueError(f"{what} {value!r} must not contain '|', CR or LF")
    if value != value.strip():
        raise ValueError(f"{what} {value!r} must not start or end with white space")
    return value


def check_stratum_name(name: str) -> str:
    """Returns ``name`` if it is 1–32 letters or digits (any script), ``-`` or ``_``.

    "Letters or digits" is ``str.isalnum``; the verifier applies the same test.

    Raises:
        ValueError: Otherwise; the name becomes a file name (``pool-<name>.txt``).
    """
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= _NAME_MAX
        or not all(c.isalnum() or c in "-_" for c in name)
    ):
        raise ValueError(
            f"stratum name {name!r} must be 1–{_NAME_MAX} letters or digits, '-' or '_'"
        )
    return name


def check_stratum_names(names: Iterable[str]) -> list[str]:
    """Checks each name and that no two are equal when letter case is ignored.

    Raises:
        ValueError: On a bad name or a case-insensitive duplicate.
    """
    seen: dict[str, str] = {}
    checked = []
    for name in names:
        key = check_stratum_name(name).casefold()
        if key in seen:
            raise ValueError(f"stratum names {seen[key]!r} and {name!r} clash (case ignored)")
        seen[key] = name
        checked.append(name)
    return checked


def check_weight(w: int, where: str = "") -> int:
    """Returns ``w`` if it is an integer from 1 to 10 (DRAW.md §2), else ValueError."""
    if type(w) is not int or not MIN_WEIGHT <= w <= MAX_WEIGHT:
        raise ValueError(f"weight {w!r}{where} must be an integer from 1 to 10")
    return w


def new_secret() -> str:
    """32 bytes from the OS CSPRNG as 64 lowercase hex characters (DRAW.md §1.1)."""
    return secrets.token_hex(32)


def commitment(secret: str) -> str:
    """``H(secret)``, published with the plan before the draw (DRAW.md §1.3).

    Raises:
        ValueError: If ``secret`` is not 64 lowercase hex characters.
    """
    return H(_check_secret(secret))


# -- §2 Pools -------------------------------------------------------------------------


def pool_line(member_id: str, w: int) -> str:
    """One pool line, ``id|w`` and a newline, after checking both parts."""
    check_identifier(member_id, "object id")
    return f"{member_id}|{check_weight(w, f' of {member_id!r}')}\n"


def parse_pool_line(line: str) -> tuple[str, int]:
    """Reads one ``id|w`` line (with or without its newline) back into ``(id, w)``.

    Raises:
        ValueError: If the line is not exactly what ``pool_line`` writes.
    """
    member_id, sep, w = line.removesuffix("\n").partition("|")
    if not sep or w not in {str(n) for n in range(MIN_WEIGHT, MAX_WEIGHT + 1)}:
        raise ValueError(f"pool line {line!r} is not 'id|w' with w from 1 to 10")
    check_identifier(member_id, "object id")
    return member_id, int(w)


def pool_lines(members: Iterable[tuple[str, int]]) -> list[str]:
    """The pool file's lines, members sorted by id in code-point order (DRAW.md §2).

    Raises:
        ValueError: On a bad id or weight, or an id listed twice.
    """
    return list(_sorted_lines(sorted(members, key=lambda m: m[0])))


def pool_digest(members: Iterable[tuple[str, int]]) -> str:
    """``pool_digest`` of DRAW.md §2 for members in any order."""
    return digest_sorted(sorted(members, key=lambda m: m[0]))[0]


def digest_sorted(members: Iterable[tuple[str, int]]) -> tuple[str, int]:
    """Streams ``(id, w)`` already sorted by id into ``(pool_digest, pool_size)``.

    For pools too large to sort in memory (a database cursor ordered ``COLLATE "C"``).

    Raises:
        ValueError: On a bad member, or ids not strictly ascending.
    """
    digest = hashlib.sha256()
    size = 0
    for line in _sorted_lines(members):
        digest.update(line.encode())
        size += 1
    return digest.hexdigest(), size


def k_for_ratio(pool_size: int, percent: str) -> int:
    """``k = ceil(pool_size * p / 100)`` in exact arithmetic (DRAW.md §2).

    Args:
        pool_size: The number of members in the pool.
        percent: ``p`` as a decimal string, e.g. ``"5"``, ``"12.5"`` or ``"5%"``.

    Raises:
        ValueError: If ``percent`` is not a decimal greater than 0 and at most 100.
    """
    num, den = _percent(percent).as_integer_ratio()
    return -(-pool_size * num // (100 * den))


def ratio_text(percent: str) -> str:
    """``percent`` as SPEC §6 writes ``ratio_percent``: no exponent, no trailing zeros."""
    return f"{_percent(percent).normalize():f}"


# -- §3 Seeds ---------------------------------------------------------------------------


def seed(batch_id: str, secret: str, beacon: str = "") -> str:
    """``H("SSR-1|" + batch_id + "|" + secret + "|" + beacon)`` (DRAW.md §3).

    The beacon is used verbatim; it is ``""`` when the plan names none.
    """
    check_identifier(batch_id, "batch id")
    return H(f"{ALGORITHM}|{batch_id}|{_check_secret(secret)}|{beacon}")


def stratum_seed(seed: str, name: str, pool_digest: str) -> str:
    """``H(seed + "|stratum|" + name + "|" + pool_digest)`` (DRAW.md §3)."""
    return H(f"{seed}|stratum|{check_stratum_name(name)}|{pool_digest}")


# -- §4 Selection -----------------------------------------------------------------------


def score(stratum_seed: str, member_id: str, w: int) -> str:
    """``min over j < w of H(stratum_seed + "|" + id + "|" + str(j))`` (DRAW.md §4).

    A weight-w object holds w tickets and keeps its best one (Efraimidis–Spirakis).
    """
    check_weight(w, f" of {member_id!r}")
    return min(H(f"{stratum_seed}|{member_id}|{j}") for j in range(w))


def select(stratum_seed: str, members: Iterable[tuple[str, int]], k: int) -> list[Scored]:
    """The ``min(k, n)`` members with the smallest ``(score, id)``, ascending (§4).

    Streams the members once and keeps at most 2k candidates, so memory does not grow
    with the pool. The result depends only on the set of members, so this is also the
    per-shard step of a parallel draw: run it on each chunk (in any process, in any
    order) with the same ``k``, then ``merge_selections`` the parts.

    Raises:
        ValueError: On a weight outside 1–10 or a negative ``k``.
    """
    if k < 0:
        raise ValueError(f"k must not be negative, not {k}")
    if k == 0:
        return []
    # The seed and "|" fill more than one SHA-256 block; hashing that prefix once and
    # copying the state per member is faster (measured). Candidates are kept as
    # score + id in one string: the score has a fixed length, so these strings order
    # exactly as (score, id) tuples do, and sort several times faster.
    copy = hashlib.sha256(f"{stratum_seed}|".encode()).copy
    best: list[str] = []
    worst = "g"  # sorts after every hex score: nothing is excluded until k are held
    for member_id, w in members:
        if w == 1:
            h = copy()
            h.update(f"{member_id}|0".encode())
            s = h.hexdigest()
        else:
            check_weight(w, f" of {member_id!r}")
            s = min(_ticket(copy, member_id, j) for j in range(w))
        if s <= worst:
            best.append(s + member_id)
            if len(best) >= 2 * k:
                best.sort()
                del best[k:]
                worst = best[-1][:_SCORE_LENGTH]
    best.sort()
    return [Scored(x[:_SCORE_LENGTH], x[_SCORE_LENGTH:]) for x in best[:k]]


def merge_selections(parts: Iterable[Sequence[Scored]], k: int) -> list[Scored]:
    """Merges per-chunk ``select`` results into the stratum's selection (any order)."""
    return sorted(Scored(*p) for p in chain.from_iterable(parts))[:k]


def task_list(strata: Iterable[tuple[str, Sequence[str], Iterable[str]]]) -> list[Task]:
    """The batch's task list from each stratum's selection (DRAW.md §4, art. 13).

    Args:
        strata: ``(name, items, selected ids in ascending score)`` per stratum, in
            declared order.

    Returns:
        Strata in declared order, each one's selections in order; an object already
        listed is not listed again but gains the stratum's name and its items not yet
        present.

    Raises:
        ValueError: On a bad or clashing stratum name, an item listed twice in one
            stratum, or an object selected twice by one stratum.
    """
    tasks: dict[str, tuple[list[str], list[str]]] = {}
    names: list[str] = []
    for name, items, selected in strata:
        names.append(name)
        check_stratum_names(names)
        if len(set(items)) != len(items):
            raise ValueError(f"stratum {name!r} lists an item twice: {list(items)}")
        seen: set[str] = set()
        for object_id in selected:
            if object_id in seen:
                raise ValueError(f"stratum {name!r} selects {object_id!r} twice")
            seen.add(object_id)
            if object_id not in tasks:
                tasks[object_id] = ([name], list(items))
                continue
            task_strata, task_items = tasks[object_id]
            task_strata.append(name)
            task_items.extend(item for item in items if item not in task_items)
    return [Task(o, tuple(s), tuple(i)) for o, (s, i) in tasks.items()]


# -- §8 The roster, frozen with the pools -------------------------------------------------


@dataclass(frozen=True)
class RosterInspector:
    """One ``I|`` line: an inspector as listed at publication."""

    id: str
    unit: str
    active: bool
    expiry: date | None  # the certificate's last valid day; None when there is none
    specialties: tuple[str, ...]  # sorted

    def qualified_on(self, day: date) -> bool:
        """The frozen expiry is on or after ``day`` (DRAW.md §8; valid through its expiry)."""
        return self.expiry is not None and day <= self.expiry


@dataclass(frozen=True)
class Roster:
    """A frozen roster read back from its lines, each part in the order of its lines (which
    is not always id order: ``"I|A-B|…"`` sorts before ``"I|A|…"``)."""

    inspectors: tuple[RosterInspector, ...]
    teams: tuple[tuple[str, tuple[str, ...]], ...]  # (team id, members sorted)
    conflicts: tuple[tuple[str, str], ...]  # (inspector id, object id)


def inspector_line(inspector_id: str, unit_id: str, active: bool, expiry: date | None,
                   specialties: Iterable[str]) -> str:
    """``"I|" + id + "|" + unit + "|" + "1"/"0" + "|" + expiry + "|" + specialties`` (§8).

    Raises:
        ValueError: On a bad id or unit, or a speciality holding ``|``, ``;``, CR or LF.
    """
    check_identifier(inspector_id, "inspector id")
    check_identifier(unit_id, f"unit of inspector {inspector_id!r}")
    day = "" if expiry is None else expiry.isoformat()
    return f"I|{inspector_id}|{unit_id}|{'1' if active else '0'}|{day}|{_joined(specialties, 'speciality')}"


def team_line(team_id: str, members: Iterable[str]) -> str:
    """``"T|" + team_id + "|" + member ids, sorted, joined by ";"`` (§8)."""
    check_identifier(team_id, "team id")
    return f"T|{team_id}|{_joined(members, 'team member')}"


def conflict_line(inspector_id: str, object_id: str) -> str:
    """``"C|" + inspector_id + "|" + object_id`` (§8)."""
    return f"C|{check_identifier(inspector_id, 'inspector id')}|{check_identifier(object_id, 'object id')}"


def roster_text(lines: Iterable[str]) -> str:
    """The roster as hashed: the lines sorted, each with its newline (§8).

    A line given twice (one conflict recorded both by an import and by a recusal) is one
    line: the roster lists each conflict once.
    """
    return "".join(f"{line}\n" for line in sorted(set(lines)))


def roster_digest(lines: Iterable[str]) -> str:
    """``roster_digest = H(concatenation, over the lines sorted, of line + "\\n")`` (§8)."""
    return H(roster_text(lines))


def parse_roster(text: str) -> Roster:
    """Reads a roster written by ``roster_text`` back, checking every line.

    Raises:
        ValueError: On a line that is not exactly what the writers above produce, or
            lines not sorted or repeated.
    """
    if text and not text.endswith("\n"):
        raise ValueError("the roster's last line has no newline")
    lines = text.split("\n")[:-1]
    inspectors, teams, conflicts = [], [], []
    for number, line in enumerate(lines, start=1):
        if number > 1 and line <= lines[number - 2]:
            raise ValueError(f"roster line {number} {line!r} is out of order or repeated")
        kind, *fields = line.split("|")
        try:
            if kind == "I" and len(fields) == 5 and fields[2] in ("0", "1"):
                ident, unit, active, day, specialties = fields
                if day and not _DAY.fullmatch(day):
                    raise ValueError(f"expiry {day!r} is not YYYY-MM-DD")
                person = RosterInspector(ident, unit, active == "1", date.fromisoformat(day) if day else None,
                                         _split(specialties, "speciality"))
                inspectors.append(person)
                written = inspector_line(ident, unit, person.active, person.expiry, person.specialties)
            elif kind == "T" and len(fields) == 2:
                teams.append((fields[0], _split(fields[1], "team member")))
                written = team_line(*teams[-1])
            elif kind == "C" and len(fields) == 2:
                conflicts.append((fields[0], fields[1]))
                written = conflict_line(fields[0], fields[1])
            else:
                raise ValueError("not an I|, T| or C| line with its fields")
            if written != line:
                raise ValueError(f"written back it reads {written!r}")
        except ValueError as exc:
            raise ValueError(f"roster line {number} {line!r}: {exc}") from None
    return Roster(tuple(inspectors), tuple(teams), tuple(conflicts))


def _joined(parts: Iterable[str], what: str) -> str:
    listed = sorted(parts)
    for part in listed:
        if not part or set(part) & set("|;\r\n"):
            raise ValueError(f"{what} {part!r} must be non-empty without '|', ';', CR or LF")
    return ";".join(listed)


def _split(joined: str, what: str) -> tuple[str, ...]:
    parts = tuple(joined.split(";")) if joined else ()
    if list(parts) != sorted(parts):
        raise ValueError(f"the {what}s {joined!r} are not sorted")
    return parts


def _ticket(copy: Callable[[], HASH], member_id: str, j: int) -> str:
    h = copy()
    h.update(f"{member_id}|{j}".encode())
    return h.hexdigest()


def _sorted_lines(members: Iterable[tuple[str, int]]) -> Iterable[str]:
    previous = None
    for member_id, w in members:
        line = pool_line(member_id, w)
        if previous is not None and member_id <= previous:
            problem = "is listed twice" if member_id == previous else "is out of order"
            raise ValueError(f"pool member {member_id!r} {problem}")
        previous = member_id
        yield line


def _check_secret(secret: str) -> str:
    if not isinstance(secret, str) or not _SECRET.fullmatch(secret):
        raise ValueError("the secret must be 64 lowercase hex characters")
    return secret


def _percent(percent: str) -> Decimal:
    try:
        p = Decimal(percent.strip().removesuffix("%"))
    except (AttributeError, InvalidOperation):
        raise ValueError(f"ratio {percent!r} is not a decimal number of percent") from None
    if not p.is_finite() or not 0 < p <= 100:
        raise ValueError(f"ratio {percent!r} must be more than 0% and at most 100%")
    return p
