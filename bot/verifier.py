#!/usr/bin/env python3
"""Re-checks a published SSR-1 draw with nothing but Python and SHA-256.

Anyone can run it on an exported draw record: ``python verifier.py DIR``. It reads
``DIR/record.json`` and the pool files beside it, and ``DIR/assignment.json`` and the
frozen roster ``DIR/roster.txt`` when present, and recomputes everything from the text
of DRAW.md (SSR-1). It stands alone
on purpose: it uses only Python's standard library and shares no code with the
program that made the draw, so the two can be compared.

Prints ``SSR-1 OK …`` and exits 0, or prints the first mismatch and exits 1.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import sys
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

WEIGHTS = {str(w): w for w in range(1, 11)}
MODES = ("all", "unit", "cross", "team")


class Mismatch(Exception):
    """The first difference found; its text says what, where, expected and found."""


def H(s: str) -> str:
    """Lowercase hex SHA-256 of the UTF-8 bytes of s (DRAW.md, Notation)."""
    return hashlib.sha256(s.encode()).hexdigest()


def same(what: str, expected: object, found: object) -> None:
    if expected != found:
        raise Mismatch(f"{what}: expected {expected!r}, found {found!r}")


def require(ok: bool, what: str) -> None:
    if not ok:
        raise Mismatch(what)


def good_id(s: object) -> bool:
    """Identifiers: non-empty, no '|', no CR/LF, no white space at either end."""
    return isinstance(s, str) and s != "" and not set(s) & set("|\r\n") and s == s.strip()


def good_name(s: object) -> bool:
    """Stratum names: 1-32 letters or digits (any script), '-' or '_'."""
    return isinstance(s, str) and 1 <= len(s) <= 32 and all(c.isalnum() or c in "-_" for c in s)


def read_pool(path: Path, where: str) -> tuple[str, list[tuple[str, int]]]:
    """Returns the file's SHA-256 and its (id, w) members, checking every line (§2)."""
    data = path.read_bytes()
    text = data.decode("utf-8")
    require(text == "" or text.endswith("\n"), f"{where}: the last line has no newline")
    members: list[tuple[str, int]] = []
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        ident, _, w = line.partition("|")
        require(good_id(ident) and w in WEIGHTS, f"{where} line {number}: {line!r} is not 'id|w' (w 1-10)")
        require(not members or members[-1][0] < ident, f"{where} line {number}: {ident!r} is out of order or repeated")
        members.append((ident, WEIGHTS[w]))
    return hashlib.sha256(data).hexdigest(), members


def good_list(s: str) -> bool:
    """Roster specialities or members: "" or non-empty parts joined by ';', sorted (§8)."""
    parts = s.split(";") if s else []
    return parts == sorted(parts) and all(p and not set(p) & set("\r\n") for p in parts)


def good_day(s: str) -> bool:
    """A certificate expiry: "" (none) or a valid YYYY-MM-DD."""
    try:
        return s == "" or (len(s) == 10 and date.fromisoformat(s).isoformat() == s)
    except ValueError:
        return False


def read_roster(path: Path) -> tuple[str, dict]:
    """Returns roster.txt's SHA-256 and what matching reads from it, checking every line (§8)."""
    data = path.read_bytes()
    text = data.decode("utf-8")
    require(text == "" or text.endswith("\n"), "roster.txt: the last line has no newline")
    lines, people, teams, conflicts = text.split("\n")[:-1], [], [], []
    for n, line in enumerate(lines):
        require(n == 0 or lines[n - 1] < line, f"roster.txt line {n + 1}: {line!r} is out of order or repeated")
        kind, *f = line.split("|")
        if kind == "I" and len(f) == 5 and good_id(f[0]) and good_id(f[1]) and f[2] in ("0", "1") \
                and good_day(f[3]) and good_list(f[4]):
            people.append((f[0], f[1], f[2] == "1", f[3], f[4].split(";") if f[4] else []))
        elif kind == "T" and len(f) == 2 and good_id(f[0]) and good_list(f[1]):
            teams.append({"id": f[0], "members": f[1].split(";") if f[1] else []})
        elif kind == "C" and len(f) == 2 and good_id(f[0]) and good_id(f[1]):
            conflicts.append(f)
        else:
            raise Mismatch(f"roster.txt line {n + 1}: {line!r} is not an I|, T| or C| line of DRAW.md §8")
    return hashlib.sha256(data).hexdigest(), {"people": sorted(people), "teams": sorted(teams, key=lambda t: t["id"]),
                                              "conflicts": sorted(conflicts)}


def check_roster(a: dict, roster: dict) -> None:
    """The matching inputs of assignment.json are those of the frozen roster (§8): qualified
    when the frozen expiry is on or after the draw date, active as frozen."""
    inspectors = [{"id": i, "unit": u, "active": on, "qualified": day != "" and a["draw_date"] <= day,
                   "specialties": spec} for i, u, on, day, spec in roster["people"]]
    for key, expected in (("inspectors", inspectors), ("teams", roster["teams"]), ("conflicts", roster["conflicts"])):
        for n, (e, f) in enumerate(zip(expected, a[key])):
            same(f"assignment.json: {key}[{n}] (as roster.txt gives it)", e, f)
        same(f"assignment.json: number of {key} (as roster.txt gives them)", len(expected), len(a[key]))


def select(stratum_seed: str, members: list[tuple[str, int]], k: int) -> list[tuple[str, str]]:
    """The min(k, n) smallest (score, id); score = min over j < w of H(seed|id|j) (§4)."""
    scored = ((min(H(f"{stratum_seed}|{i}|{j}") for j in range(w)), i) for i, w in members)
    return heapq.nsmallest(k, scored)


def check_stratum(directory: Path, seed: str, stratum: dict) -> list[tuple[str, str]]:
    """Checks one stratum's pool, k and selection; returns the selection (§2-4)."""
    name, where = stratum["name"], f"stratum {stratum['name']}"
    same(f"{where}: pool_file", f"pool-{name}.txt", stratum["pool_file"])
    digest, members = read_pool(directory / stratum["pool_file"], stratum["pool_file"])
    same(f"{where}: pool_digest (SHA-256 of {stratum['pool_file']})", digest, stratum["pool_digest"])
    same(f"{where}: pool_size (lines in {stratum['pool_file']})", len(members), stratum["pool_size"])
    k = stratum["k"]
    require(type(k) is int and k >= 0, f"{where}: k {k!r} is not a whole number")
    if stratum["ratio_percent"] is not None:
        num, den = Decimal(stratum["ratio_percent"]).as_integer_ratio()
        ceil = -(-len(members) * num // (100 * den))
        same(f"{where}: k = ceil(pool_size * {stratum['ratio_percent']} / 100)", ceil, k)
    stratum_seed = H(f"{seed}|stratum|{name}|{digest}")
    expected = select(stratum_seed, members, k)
    same(f"{where}: number selected", len(expected), len(stratum["selected"]))
    for n, ((score, ident), entry) in enumerate(zip(expected, stratum["selected"])):
        same(f"{where}: selected[{n}] id", ident, entry["id"])
        same(f"{where}: selected[{n}] score ({ident})", score, entry["score"])
    return expected


def task_list(strata: list[dict], selections: list[list[tuple[str, str]]]) -> list[dict]:
    """Strata in order, selections by ascending score, an object listed once (§4, art. 13)."""
    tasks: dict[str, dict] = {}
    for stratum, selected in zip(strata, selections):
        for _, ident in selected:
            if ident not in tasks:
                tasks[ident] = {"object_id": ident, "strata": [stratum["name"]], "items": list(stratum["items"])}
            else:
                task = tasks[ident]
                task["strata"].append(stratum["name"])
                task["items"] += [item for item in stratum["items"] if item not in task["items"]]
    return list(tasks.values())


def walk(key: str, items: list):
    """The keyed lazy Fisher-Yates walk of DRAW.md §5, one hash per step."""
    moved: dict[int, int] = {}
    m = len(items)
    for p in range(m):
        r = p + int(H(f"{key}|{p}"), 16) % (m - p)
        x = moved.get(r, r)
        moved[r] = moved.get(p, p)
        yield items[x]


def choose(steps, n: int, skip: set, needed: set, load: Counter, cap: int, spec: dict) -> tuple[list, set]:
    """Passes 1-3 of DRAW.md §5: speciality under the cap, any under the cap, anyone."""
    chosen, seen = list[str](), list[str]()

    def visits():
        for c in steps:  # pass 1 walks lazily; passes 2 and 3 re-walk from the start
            seen.append(c)
            yield 1, c
        for p in (2, 3):
            for c in seen:
                yield p, c

    for p, c in visits():
        if len(chosen) == n:
            break
        if c in chosen or c in skip or (p < 3 and load[c] >= cap):
            continue
        if p == 1 and needed and not spec[c] & needed:
            continue
        chosen.append(c)
        needed = needed - spec[c]
    return chosen, needed


def match(seed: str, a: dict) -> list[dict]:
    """Recomputes the inspector matching of DRAW.md §5 from assignment.json."""
    mode, n, slack = a["mode"], a["team_size"], a["slack"]
    require(mode in MODES, f"assignment.json: unknown mode {mode!r}")
    require(type(n) is int and n >= 2 and type(slack) is int and slack >= 0,
            "assignment.json: team_size must be at least 2 and slack at least 0")
    people = {p["id"]: p for p in a["inspectors"]}
    spec = {i: set(p["specialties"]) for i, p in people.items()}
    eligible = sorted(i for i, p in people.items() if p["active"] is True and p["qualified"] is True)
    barred: dict[str, set] = {}  # object id -> inspectors conflicted with it
    for inspector, obj in a["conflicts"]:
        barred.setdefault(obj, set()).add(inspector)
    if mode == "team":
        return match_teams(seed, a, eligible, spec, barred)
    objects, load, out, lists = a["objects"], Counter[str](), [], {}
    require(bool(eligible) or not objects, "nobody is eligible: the draw should have failed")
    cap = -(-n * len(objects) // max(len(eligible), 1)) + slack
    for o in objects:
        unit = None if mode == "all" else o["unit"]
        if unit not in lists:  # L(o): eligible inspectors by mode and o's unit, sorted by id
            lists[unit] = [c for c in eligible if mode == "all" or (people[c]["unit"] == unit) == (mode == "unit")]
        steps = walk(f"{seed}|inspector|{o['id']}", lists[unit])
        chosen, left = choose(steps, n, barred.get(o["id"], set()), set(o["required_specialties"]), load, cap, spec)
        require(len(chosen) == n, f"object {o['id']}: only {len(chosen)} candidates; the draw should have failed")
        load.update(chosen)
        out.append({"object_id": o["id"], "inspectors": chosen, "team_id": None, "needs_expert": bool(left)})
    return out


def match_teams(seed: str, a: dict, eligible: list, spec: dict, barred: dict) -> list[dict]:
    """Team mode: the first team on o's walk under the team cap, else the first free one."""
    objects, load, out = a["objects"], Counter[str](), []
    teams = sorted((t["id"], sorted(set(t["members"]))) for t in a["teams"])
    teams = [t for t in teams if len(t[1]) >= 2 and set(t[1]) <= set(eligible)]
    require(bool(teams) or not objects, "no team: the draw should have failed")
    cap = -(-len(objects) // max(len(teams), 1)) + a["slack"]
    for o in objects:
        free = [t for t in walk(f"{seed}|team|{o['id']}", teams) if not barred.get(o["id"], set()) & set(t[1])]
        require(bool(free), f"object {o['id']}: every team is conflicted; the draw should have failed")
        team_id, members = next((t for t in free if load[t[0]] < cap), free[0])
        load[team_id] += 1
        lacking = set(o["required_specialties"]) - set().union(*(spec[c] for c in members))
        out.append({"object_id": o["id"], "inspectors": members, "team_id": team_id, "needs_expert": bool(lacking)})
    return out


def check_assignment(a: dict, seed: str, tasks: list[dict]) -> None:
    """Checks assignment.json against the task list and recomputes every assignment."""
    same("assignment.json: objects in task order", [t["object_id"] for t in tasks], [o["id"] for o in a["objects"]])
    expected = match(seed, a)
    same("assignment.json: number of assignments", len(expected), len(a["assignments"]))
    for n, (e, f) in enumerate(zip(expected, a["assignments"])):
        for key in ("object_id", "inspectors", "team_id", "needs_expert"):
            same(f"assignment {n} (object {e['object_id']}): {key}", e[key], f[key])


def verify(directory: Path) -> str:
    """Runs every check; returns the OK line or raises Mismatch."""
    record = json.loads((directory / "record.json").read_text(encoding="utf-8"))
    same("algorithm", "SSR-1", record["algorithm"])
    batch, secret, beacon = record["batch_id"], record["secret"], record["beacon"]
    require(good_id(batch), f"batch id {batch!r} is not a valid identifier")
    same("commitment = H(secret)", H(secret), record["commitment"])
    seed = H(f"SSR-1|{batch}|{secret}|{beacon}")
    same("seed", seed, record["seed"])
    strata = record["strata"]
    require(len(strata) >= 1, "the record has no stratum")
    names = [s["name"] for s in strata]
    for name in names:
        require(good_name(name), f"stratum name {name!r} is not 1-32 letters, digits, '-' or '_'")
    require(len({x.casefold() for x in names}) == len(names), f"stratum names clash when case is ignored: {names}")
    selections = [check_stratum(directory, seed, s) for s in strata]
    tasks = task_list(strata, selections)
    same("number of tasks", len(tasks), len(record["tasks"]))
    for n, (e, f) in enumerate(zip(tasks, record["tasks"])):
        for key in ("object_id", "strata", "items"):
            same(f"task {n} (object {e['object_id']}): {key}", e[key], f[key])
    checked, roster, digest = "no assignment.json", None, record.get("roster_digest")  # null: no roster (§8)
    if (directory / "roster.txt").exists():
        require(digest is not None, "roster.txt is present but record.json has no roster_digest")
        found, roster = read_roster(directory / "roster.txt")
        same("roster_digest (SHA-256 of roster.txt)", digest, found)
    if (directory / "assignment.json").exists():
        a = json.loads((directory / "assignment.json").read_text(encoding="utf-8"))
        require(roster is not None or digest is None, "record.json has a roster_digest: roster.txt is missing")
        if roster is not None:
            check_roster(a, roster)
        check_assignment(a, seed, tasks)
        checked = "assignment checked" + (" against the roster" if roster is not None else "")
    return f"SSR-1 OK batch {batch}: {len(strata)} strata, {len(tasks)} tasks, {checked} / 核验一致"


def main(argv: list[str] | None = None) -> int:
    """``verifier.py DIR``: prints the verdict; 0 when the draw checks out, else 1."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python verifier.py DIR   (用法：python verifier.py 目录)", file=sys.stderr)
        return 2
    try:
        print(verify(Path(args[0])))
        return 0
    except Mismatch as mismatch:
        print(f"SSR-1 MISMATCH {mismatch} / 核验不一致")
    except (OSError, ValueError, ArithmeticError) as error:
        print(f"SSR-1 MISMATCH cannot read the record: {error} / 无法读取记录")
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        print(f"SSR-1 MISMATCH the record is malformed ({type(error).__name__}: {error}) / 记录格式错误")
    return 1


if __name__ == "__main__":
    sys.exit(main())
