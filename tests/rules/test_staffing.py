"""补员's pure pass (issue 18 §2, DRAW.md §6): one replacement pass per missing member on the
directory as it stands, deterministic, and when nobody qualifies, why."""

from __future__ import annotations

from collections import Counter
from datetime import date

from bot.rules import matching
from bot.rules.staffing import missing_specialties, restaff, why_nobody

ON = date(2026, 6, 1)
VALID, EXPIRED = date(2030, 12, 31), date(2026, 1, 1)
OBJ = matching.TaskObject("O1", "S-DC", frozenset({"食品"}))


def people(*rows) -> list[matching.Inspector]:
    return [matching.Inspector(i, unit, frozenset(spec), active, expiry) for i, unit, spec, active, expiry in rows]


BUREAU = people(("I01", "S-DC", {"食品"}, True, VALID), ("I02", "S-DC", set(), True, VALID),
                ("I03", "S-DC", set(), True, VALID), ("I04", "S-DC", set(), False, VALID),
                ("I05", "S-DC", set(), True, EXPIRED), ("I06", "S-XC", {"食品"}, True, VALID),
                ("I07", "S-XC", set(), True, VALID))


def test_each_missing_member_is_one_replacement_pass_counted_in_the_next():
    got = restaff("seed", OBJ, BUREAU, mode="all", members=[], missing=2, loads={}, tasks=3, on=ON)
    first = matching.replacement("seed", OBJ, BUREAU, mode="all", members=[], loads={}, tasks=3, on=ON)
    second = matching.replacement("seed", OBJ, BUREAU, mode="all", members=[first], loads=Counter({first: 1}),
                                  tasks=3, on=ON)
    assert got.chosen == (first, second) and got.missing == 0 and got.shortfall is None
    assert got == restaff("seed", OBJ, BUREAU, mode="all", members=[], missing=2, loads={}, tasks=3, on=ON)
    assert "I01" in got.chosen or "I06" in got.chosen  # pass 1 takes a holder of 食品 first
    assert got.wanted == frozenset()


def test_nothing_missing_picks_nobody():
    got = restaff("seed", OBJ, BUREAU, mode="unit", members=["I01", "I02"], missing=0, loads={}, tasks=1, on=ON)
    assert got.chosen == () and got.missing == 0 and got.shortfall is None


def test_when_nobody_qualifies_it_says_why_counted_over_the_modes_list():
    got = restaff("seed", OBJ, BUREAU, mode="unit", members=["I02"], missing=1, loads={}, tasks=1, on=ON,
                  conflicts={("I03", "O1")}, recused={"I01"})
    assert got.chosen == () and got.missing == 1
    assert got.shortfall == why_nobody(OBJ, BUREAU, mode="unit", members=["I02"], conflicts={("I03", "O1")},
                                       recused={"I01"}, on=ON)
    s = got.shortfall
    assert (s.scope, s.unit, s.listed, s.inactive, s.expired, s.members, s.excluded) == ("unit", "S-DC", 5, 1, 1, 1, 2)
    assert got.wanted == frozenset({"食品"})  # I02 holds no 食品: the task needs an expert


def test_cross_and_team_modes_count_their_own_lists():
    assert why_nobody(OBJ, BUREAU, mode="cross", members=[], on=ON).listed == 2
    assert why_nobody(OBJ, BUREAU, mode="team", members=[], on=ON).scope == "all"
    partial = restaff("seed", OBJ, BUREAU, mode="cross", members=["I06"], missing=2, loads={}, tasks=1, on=ON)
    assert partial.chosen == ("I07",) and partial.missing == 1 and partial.shortfall.members == 2


def test_missing_specialties_are_what_no_member_holds():
    assert missing_specialties(OBJ, BUREAU, ["I02", "I03"]) == {"食品"}
    assert missing_specialties(OBJ, BUREAU, ["I02", "I06"]) == frozenset()
