"""Inspector matching and recusal replacement (DRAW.md §5–6; art. 12, 14).

Expected teams are read off the walks printed in DRAW.md's appendix, or off the walk
order computed here, so each case can be checked by hand.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules import matching
from bot.rules.matching import (
    Assignment,
    DrawFailure,
    Inspector,
    TaskObject,
    Team,
    match,
    replacement,
    task_loads,
    walk,
    walk_key,
)

SEED = "1a2c682ff2d9e9b2c9d47bee545db3ea2b3d5356ff788cc970bd2c4c46b8f118"  # DRAW.md appendix
A, B = "L-产品-0007", "91150602MA0N000002"
# DRAW.md appendix walks over [I01..I04]: A visits I02 I04 I03 I01; B visits I04 I03 I01 I02.
DAY = date(2026, 3, 1)


def person(id, unit="U1", specs=(), **kw) -> Inspector:
    kw.setdefault("qualified", True)
    return Inspector(id, unit, frozenset(specs), **kw)


def four(**specs) -> list[Inspector]:
    return [person(f"I0{n}", specs=specs.get(f"I0{n}", ())) for n in range(1, 5)]


def order(object_id, ids, kind="inspector"):
    """The walk's visiting order over ``ids`` (sorted, as L(o) is)."""
    ids = sorted(ids)
    return [ids[x] for x in walk(walk_key(SEED, object_id, kind), len(ids))]


class TestAppendix:
    def test_worked_example(self):
        got = match(SEED, [TaskObject(A, "U1"), TaskObject(B, "U1")], four(), mode="all")
        assert got == [Assignment(A, ("I02", "I04")), Assignment(B, ("I04", "I03"))]

    def test_appendix_walk_orders(self):
        assert order(A, ["I01", "I02", "I03", "I04"]) == ["I02", "I04", "I03", "I01"]
        assert order(B, ["I01", "I02", "I03", "I04"]) == ["I04", "I03", "I01", "I02"]

    def test_walk_is_lazy(self, monkeypatch):
        calls = []
        real = matching.H
        monkeypatch.setattr(matching, "H", lambda s: calls.append(s) or real(s))
        steps = walk(walk_key(SEED, A), 10**12)
        first = [next(steps) for _ in range(3)]
        assert len(set(first)) == 3 and all(0 <= x < 10**12 for x in first)
        assert calls == [f"{SEED}|inspector|{A}|{p}" for p in range(3)]

    @given(st.integers(0, 60), st.text(min_size=1, max_size=5))
    def test_walk_is_a_permutation(self, m, object_id):
        assert sorted(walk(walk_key(SEED, object_id), m)) == list(range(m))


class TestPasses:
    def test_cap_pass(self):
        # slack 0: cap = ceil(2*2/4) = 1. B's walk meets I04 (full) first → I03, I01.
        got = match(SEED, [TaskObject(A, "U1"), TaskObject(B, "U1")], four(), mode="all", slack=0)
        assert [a.inspectors for a in got] == [("I02", "I04"), ("I03", "I01")]

    def test_speciality_pass_then_restart(self):
        # Only the inspector A's walk visits last holds "food": pass 1 accepts them,
        # reaches the end, and pass 2 re-walks from the start.
        got = match(SEED, [TaskObject(A, "U1", {"food"})], four(I01={"food"}), mode="all")
        assert got == [Assignment(A, ("I01", "I02"), None, False)]

    def test_speciality_pass_continues_after_holder(self):
        # I03 holds food: pass 1 skips I02, I04, takes I03, then U is empty → I01.
        got = match(SEED, [TaskObject(A, "U1", {"food"})], four(I03={"food"}), mode="all")
        assert got[0].inspectors == ("I03", "I01")

    def test_each_acceptance_reduces_u(self):
        specs = {"I04": {"food"}, "I01": {"tax"}, "I03": {"food"}}
        got = match(SEED, [TaskObject(A, "U1", {"food", "tax"})], four(**specs), mode="all")
        # I02 lacks both; I04 brings food; I03 only food (now covered) is passed; I01 tax.
        assert got == [Assignment(A, ("I04", "I01"), None, False)]

    def test_needs_expert(self):
        # art. 12: nobody drawn can do "drug": the department sends a specialist.
        # Pass 1 takes I03 (food) but nobody else has "drug": pass 2 restarts with I02.
        got = match(SEED, [TaskObject(A, "U1", {"food", "drug"})], four(I03={"food"}), mode="all")
        assert got == [Assignment(A, ("I03", "I02"), None, True)]

    def test_speciality_at_cap_falls_to_cap_pass(self):
        # slack 0, cap 1: B wants food, its only holder I04 is full after A.
        got = match(SEED, [TaskObject(A, "U1"), TaskObject(B, "U1", {"food"})],
                    four(I04={"food"}), mode="all", slack=0)
        assert got[1] == Assignment(B, ("I03", "I01"), None, True)

    def test_cap_yields_to_two_person_rule(self):
        # art. 14 beats the load cap: U1 has two inspectors and three tasks.
        people = [person("I01"), person("I02")] + [person(f"J{n}", "U2") for n in range(4)]
        objs = [TaskObject(o, "U1") for o in (A, B, "C")]
        got = match(SEED, objs, people, mode="unit", slack=0)  # cap = ceil(6/6) = 1
        for a in got:
            assert sorted(a.inspectors) == ["I01", "I02"]
        assert got[1].inspectors == tuple(order(B, ["I01", "I02"]))
        assert task_loads(got) == {"I01": 3, "I02": 3}

    def test_conflicts_are_skipped(self):
        got = match(SEED, [TaskObject(A, "U1"), TaskObject(B, "U1")], four(), mode="all",
                    conflicts={("I02", A)})
        assert [a.inspectors for a in got] == [("I04", "I03"), ("I04", "I03")]

    def test_larger_team_size(self):
        got = match(SEED, [TaskObject(A, "U1")], four(), mode="all", team_size=3)
        assert got[0].inspectors == ("I02", "I04", "I03")


class TestModes:
    PEOPLE = [person(f"I{u}{n}", f"U{u}") for u in (1, 2, 3) for n in range(3)]

    def test_unit(self):
        got = match(SEED, [TaskObject(A, "U2")], self.PEOPLE, mode="unit")
        assert got[0].inspectors == tuple(order(A, ["I20", "I21", "I22"])[:2])

    def test_cross(self):
        got = match(SEED, [TaskObject(A, "U2")], self.PEOPLE, mode="cross")
        others = [p.id for p in self.PEOPLE if p.unit != "U2"]
        assert got[0].inspectors == tuple(order(A, others)[:2])

    def test_all_ignores_units(self):
        got = match(SEED, [TaskObject(A, "U2")], self.PEOPLE, mode="all")
        assert got[0].inspectors == tuple(order(A, [p.id for p in self.PEOPLE])[:2])

    def test_list_ignores_row_order(self):
        objs = [TaskObject(A, "U2"), TaskObject(B, "U1")]
        assert match(SEED, objs, self.PEOPLE[::-1], mode="cross") == match(
            SEED, objs, self.PEOPLE, mode="cross")

    def test_ineligible_are_not_listed(self):
        people = four() + [person("I00", active=False), person("I05", qualified=False)]
        assert match(SEED, [TaskObject(A, "U1")], people, mode="all") == match(
            SEED, [TaskObject(A, "U1")], four(), mode="all")


class TestTeams:
    TEAMS = [Team("T1", ("I02", "I01")), Team("T2", ("I03", "I04")), Team("T3", ("I05", "I06"))]
    PEOPLE = [person(f"I0{n}", specs={"food"} if n == 3 else ()) for n in range(1, 7)]

    def test_team_chosen_by_team_walk(self):
        got = match(SEED, [TaskObject(A, "U1")], self.PEOPLE, mode="team", teams=self.TEAMS)
        first = order(A, ["T1", "T2", "T3"], "team")[0]
        members = {"T1": ("I01", "I02"), "T2": ("I03", "I04"), "T3": ("I05", "I06")}[first]
        assert got == [Assignment(A, members, first, False)]

    def test_team_cap_spreads_tasks(self):
        objs = [TaskObject(f"O{n}", "U1") for n in range(6)]
        got = match(SEED, objs, self.PEOPLE, mode="team", teams=self.TEAMS, slack=0)
        assert sorted(a.team_id for a in got) == ["T1", "T1", "T2", "T2", "T3", "T3"]

    def test_team_cap_yields_to_first_non_conflicted(self):
        # Only T2 is free of conflicts: it takes all four tasks, past its cap of 2.
        objs = [TaskObject(f"O{n}", "U1") for n in range(4)]
        conflicts = {(c, f"O{n}") for n in range(4) for c in ("I01", "I05")}
        got = match(SEED, objs, self.PEOPLE, mode="team", teams=self.TEAMS, conflicts=conflicts,
                    slack=0)
        assert [a.team_id for a in got] == ["T2"] * 4

    def test_conflicted_teams_skipped(self):
        got = match(SEED, [TaskObject(A, "U1")], self.PEOPLE, mode="team", teams=self.TEAMS,
                    conflicts={("I01", A), ("I06", A)})
        assert got[0].team_id == "T2" and got[0].inspectors == ("I03", "I04")

    def test_needs_expert_from_team_specialities(self):
        conflicts = {("I01", A), ("I06", A)}
        objs = [TaskObject(A, "U1", {"food", "drug"})]
        got = match(SEED, objs, self.PEOPLE, mode="team", teams=self.TEAMS, conflicts=conflicts)
        assert got[0].needs_expert
        objs = [TaskObject(A, "U1", {"food"})]
        got = match(SEED, objs, self.PEOPLE, mode="team", teams=self.TEAMS, conflicts=conflicts)
        assert not got[0].needs_expert

    def test_unlisted_teams(self):
        teams = self.TEAMS + [Team("T0", ("I01", "I01")), Team("T4", ("I01", "I99"))]
        people = self.PEOPLE + [person("I99", active=False)]
        assert match(SEED, [TaskObject(A, "U1")], people, mode="team", teams=teams) == match(
            SEED, [TaskObject(A, "U1")], self.PEOPLE, mode="team", teams=self.TEAMS)


class TestFailures:
    def test_nobody_eligible(self):
        people = [person("I01", active=False), person("I02", qualified=False)]
        with pytest.raises(DrawFailure) as failure:
            match(SEED, [TaskObject(A, "U7")], people, mode="cross")
        assert (failure.value.reason, failure.value.object_id, failure.value.mode,
                failure.value.unit) == ("no_inspectors", A, "cross", "U7")

    def test_too_few_candidates(self):
        people = [person("I01"), person("I02"), person("I03", "U2")]
        objs = [TaskObject(A, "U1"), TaskObject(B, "U2")]
        with pytest.raises(DrawFailure) as failure:
            match(SEED, objs, people, mode="unit")
        assert failure.value.reason == "too_few_candidates"
        assert (failure.value.object_id, failure.value.mode, failure.value.unit) == (B, "unit", "U2")
        assert B in str(failure.value) and "U2" in str(failure.value)

    def test_conflicts_leave_too_few(self):
        with pytest.raises(DrawFailure, match="too_few_candidates"):
            match(SEED, [TaskObject(A, "U1")], four(), mode="all",
                  conflicts={("I01", A), ("I02", A), ("I03", A)})

    def test_no_teams(self):
        teams = [Team("T1", ("I01",)), Team("T2", ("I01", "I09"))]
        with pytest.raises(DrawFailure) as failure:
            match(SEED, [TaskObject(A, "U1")], four(), mode="team", teams=teams)
        assert (failure.value.reason, failure.value.object_id, failure.value.mode) == (
            "no_teams", A, "team")

    def test_every_team_conflicted(self):
        teams = [Team("T1", ("I01", "I02")), Team("T2", ("I03", "I04"))]
        with pytest.raises(DrawFailure, match="all_teams_conflicted"):
            match(SEED, [TaskObject(A, "U1")], four(), mode="team", teams=teams,
                  conflicts={("I02", A), ("I03", A)})

    @pytest.mark.parametrize("kw", [{"mode": "big"}, {"mode": "all", "team_size": 1},
                                    {"mode": "all", "slack": -1}])
    def test_bad_options(self, kw):
        with pytest.raises(ValueError):
            match(SEED, [TaskObject(A, "U1")], four(), **kw)

    def test_duplicates(self):
        with pytest.raises(ValueError):
            match(SEED, [TaskObject(A, "U1")], four() + four(), mode="all")
        with pytest.raises(ValueError):
            match(SEED, [TaskObject(A, "U1")] * 2, four(), mode="all")


class TestQualification:
    def test_valid_through_expiry_day(self):
        p = Inspector("I01", "U1", expiry=DAY)
        assert p.eligible_on(DAY) and not p.eligible_on(date(2026, 3, 2))
        assert not Inspector("I01", "U1").eligible_on(DAY)  # no certificate
        with pytest.raises(ValueError):
            p.eligible_on(None)

    def test_expiry_decides_the_list(self):
        people = [Inspector(f"I0{n}", "U1", expiry=date(2026, 3, n)) for n in range(1, 5)]
        # On 3 March only I03 and I04 are qualified: they must be the team.
        got = match(SEED, [TaskObject(A, "U1")], people, mode="all", on=date(2026, 3, 3))
        assert sorted(got[0].inspectors) == ["I03", "I04"]
        with pytest.raises(DrawFailure):
            match(SEED, [TaskObject(A, "U1")], people, mode="all", on=date(2026, 3, 4))


class TestReplacement:
    def test_appendix_recusal(self):
        # I02 recuses from A's task [I02, I04]; loads were I02 1, I04 2, I03 1 → I02 0.
        got = replacement(SEED, TaskObject(A, "U1"), four(), mode="all", members=["I04"],
                          loads={"I04": 2, "I03": 1}, tasks=2, conflicts={("I02", A)})
        assert got == "I03"

    def test_recused_without_recorded_conflict_still_skipped(self):
        got = replacement(SEED, TaskObject(A, "U1"), four(), mode="all", members=["I04"],
                          loads={}, tasks=2, recused={"I02"})
        assert got == "I03"

    def test_loads_as_they_stand(self):
        # I03 full (cap = ceil(2*2/4)+0 = 1): the cap pass passes to I01.
        got = replacement(SEED, TaskObject(A, "U1"), four(), mode="all", members=["I04"],
                          loads={"I04": 1, "I03": 1}, tasks=2, recused={"I02"}, slack=0)
        assert got == "I01"

    def test_speciality_the_remaining_members_lack(self):
        people = four(I01={"food"}, I04={"tax"})
        obj = TaskObject(A, "U1", {"food", "tax"})
        got = replacement(SEED, obj, people, mode="all", members=["I04"], loads={}, tasks=2,
                          recused={"I02"})
        assert got == "I01"  # I03 comes first on the walk but lacks food

    def test_none_left_means_unstaffed(self):
        got = replacement(SEED, TaskObject(A, "U1"), four(), mode="all", members=["I04"],
                          loads={}, tasks=2, recused={"I02"}, conflicts={("I01", A), ("I03", A)})
        assert got is None
        nobody = [person("I01", active=False)]
        assert replacement(SEED, TaskObject(A, "U1"), nobody, mode="all", members=[],
                           loads={}, tasks=1) is None

    def test_eligibility_on_the_recusal_day(self):
        people = [Inspector(f"I0{n}", "U1", expiry=date(2026, 3, 31)) for n in (1, 2, 4)]
        people.append(Inspector("I03", "U1", expiry=date(2026, 3, 9)))
        got = replacement(SEED, TaskObject(A, "U1"), people, mode="all", members=["I04"],
                          loads={}, tasks=2, recused={"I02"}, on=date(2026, 3, 10))
        assert got == "I01"

    def test_team_mode_uses_the_all_walk(self):
        people = [person(f"I0{n}", "U1" if n < 3 else "U2") for n in range(1, 5)]
        got = replacement(SEED, TaskObject(A, "U1"), people, mode="team", members=["I04"],
                          loads={}, tasks=2, recused={"I02"})
        assert got == "I03"  # the `all` walk over I01..I04, not a team walk

    def test_unit_mode_stays_in_the_unit(self):
        people = [person(f"I0{n}", "U1" if n < 4 else "U2") for n in range(1, 6)]
        got = replacement(SEED, TaskObject(A, "U1"), people, mode="unit", members=["I01"],
                          loads={}, tasks=1, recused={"I02"})
        assert got == "I03"


class TestCost:
    @pytest.mark.parametrize("mode", ["all", "unit", "cross"])
    @pytest.mark.parametrize("wanted", [set(), {"nobody-has-this"}])
    def test_a_task_costs_a_handful_of_hashes(self, monkeypatch, mode, wanted):
        people = [person(f"I{n:05d}", f"U{n % 5}", {"food"} if n % 3 else ()) for n in range(10_000)]
        calls = []
        real = matching.H

        def counting(s):
            calls.append(s)
            return real(s)

        monkeypatch.setattr(matching, "H", counting)
        objs = [TaskObject(f"O{n}", "U1", wanted) for n in range(3)]
        got = match(SEED, objs, people, mode=mode)
        assert len(got) == 3 and all(len(a.inspectors) == 2 for a in got)
        assert len(calls) <= 3 * 6

    def test_replacement_costs_a_handful_of_hashes(self, monkeypatch):
        people = [person(f"I{n:05d}") for n in range(10_000)]
        calls = []
        real = matching.H
        monkeypatch.setattr(matching, "H", lambda s: calls.append(s) or real(s))
        chosen = replacement(SEED, TaskObject(A, "U1", {"nobody-has-this"}), people, mode="all",
                             members=["I00001"], loads={}, tasks=100, recused={"I00002"})
        assert chosen and len(calls) <= 5


def plain_choose(steps, need, skip, U, load, cap, spec):
    """Passes 1–3 of DRAW.md §5 read plainly: the whole walk, no shortcuts."""
    chosen = []
    for p in (1, 2, 3):
        for c in steps:
            if len(chosen) == need or c in chosen or c in skip:
                continue
            if p < 3 and load.get(c, 0) >= cap or p == 1 and U and not spec[c] & U:
                continue
            chosen.append(c)
            U = U - spec[c]
    return chosen, U


def plain_list(seed, o, people, mode):
    eligible = sorted(p.id for p in people if p.qualified)
    units = {p.id: p.unit for p in people}
    lst = [c for c in eligible if mode == "all" or (units[c] == o.unit) == (mode == "unit")]
    return [lst[x] for x in walk(walk_key(seed, o.id), len(lst))], len(eligible)


def reference(seed, objects, people, mode, conflicts, n, slack):
    spec = {p.id: p.specialties for p in people}
    eligible = sum(bool(p.qualified) for p in people)
    if not eligible:
        raise DrawFailure("no_inspectors", objects[0].id, mode, objects[0].unit)
    cap = -(-n * len(objects) // eligible) + slack
    load, out = {}, []
    for o in objects:
        steps, _ = plain_list(seed, o, people, mode)
        skip = {c for c, obj in conflicts if obj == o.id}
        chosen, U = plain_choose(steps, n, skip, set(o.required_specialties), load, cap, spec)
        if len(chosen) < n:
            raise DrawFailure("too_few_candidates", o.id, mode, o.unit)
        for c in chosen:
            load[c] = load.get(c, 0) + 1
        out.append(Assignment(o.id, tuple(chosen), None, bool(U)))
    return out


bureaus = st.lists(st.tuples(st.sampled_from(["U1", "U2", "U3"]), st.sets(st.sampled_from("abcd")),
                             st.booleans()), min_size=0, max_size=14)
tasks = st.lists(st.tuples(st.sampled_from(["U1", "U2", "U3"]), st.sets(st.sampled_from("abcde"))),
                 min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(bureaus, tasks, st.sampled_from(["all", "unit", "cross"]), st.sets(st.tuples(
    st.integers(0, 13), st.integers(0, 9))), st.integers(2, 3), st.integers(0, 2))
def test_matches_a_plain_reading_of_draw_md(bureau, task_specs, mode, pairs, n, slack):
    people = [person(f"I{i:02d}", u, s, qualified=q) for i, (u, s, q) in enumerate(bureau)]
    objs = [TaskObject(f"O{i}", u, s) for i, (u, s) in enumerate(task_specs)]
    conflicts = {(f"I{i:02d}", f"O{o}") for i, o in pairs}
    try:
        expected = reference(SEED, objs, people, mode, conflicts, n, slack)
    except DrawFailure as failure:
        with pytest.raises(DrawFailure) as raised:
            match(SEED, objs, people, mode=mode, conflicts=conflicts, team_size=n, slack=slack)
        assert (raised.value.reason, raised.value.object_id) == (failure.reason, failure.object_id)
        return
    assert match(SEED, objs, people, mode=mode, conflicts=conflicts, team_size=n, slack=slack) == expected


@settings(max_examples=300, deadline=None)
@given(bureaus, st.sampled_from(["U1", "U2"]), st.sets(st.sampled_from("abcde")),
       st.sampled_from(["all", "unit", "cross", "team"]), st.data())
def test_replacement_matches_a_plain_reading(bureau, unit, wanted, mode, data):
    people = [person(f"I{i:02d}", u, s, qualified=q) for i, (u, s, q) in enumerate(bureau)]
    ids = [p.id for p in people]
    members = data.draw(st.lists(st.sampled_from(ids), unique=True, max_size=2)) if ids else []
    recused = data.draw(st.sets(st.sampled_from(ids))) if ids else set()
    load = {c: data.draw(st.integers(0, 4)) for c in ids}
    n, slack, tasks = 2, data.draw(st.integers(0, 1)), data.draw(st.integers(1, 12))
    o = TaskObject("O1", unit, wanted)
    got = replacement(SEED, o, people, mode=mode, members=members, loads=load, tasks=tasks,
                      recused=recused, team_size=n, slack=slack)
    steps, eligible = plain_list(SEED, o, people, "all" if mode == "team" else mode)
    if not eligible:
        assert got is None
        return
    spec = {p.id: p.specialties for p in people}
    U = set(wanted).difference(*(spec[c] for c in members))
    cap = -(-n * tasks // eligible) + slack
    chosen, _ = plain_choose(steps, 1, set(members) | recused, U, load, cap, spec)
    assert got == (chosen[0] if chosen else None)


def test_recusal_flow_with_task_loads():
    # The caller's side of DRAW.md §6: loads as they stand, the recused one's one less.
    objs = [TaskObject(A, "U1"), TaskObject(B, "U1")]
    drawn = match(SEED, objs, four(), mode="all")
    load = task_loads(drawn)
    load["I02"] -= 1
    got = replacement(SEED, objs[0], four(), mode="all", members=["I04"], loads=load, tasks=len(objs),
                      conflicts={("I02", A)})
    assert got == "I03"


def test_duplicate_team_ids():
    with pytest.raises(ValueError, match="team id"):
        match(SEED, [TaskObject(A, "U1")], four(), mode="team",
              teams=[Team("T1", ("I01", "I02")), Team("T1", ("I03", "I04"))])
