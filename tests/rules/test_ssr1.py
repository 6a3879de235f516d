"""SSR-1 commitment, pools, seeds, selection and task list (DRAW.md §1–4).

The worked example's values are copied from the text of DRAW.md's appendix, not from
this code's output: a citizen holds the text, so the text is the reference.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules import ssr1
from bot.rules.matching import walk, walk_key
from bot.rules.ssr1 import Scored, Task

# -- DRAW.md appendix, verbatim -----------------------------------------------------------
SECRET = "0000000000000000000000000000000000000000000000000000000000000001"
COMMITMENT = "c386d8e8d07342f2e39e189c8e6c57bb205bb373fe4e3a6f69404a8bb767b417"
BATCH = "2026-DS-001"
POOL_TEXT = (
    "91150602MA0N000001|1\n91150602MA0N000002|2\n91150602MA0N000003|1\n"
    "91150602MA0N000004|1\nL-产品-0007|3\n"
)
POOL_DIGEST = "02189fcb3ad32bb485cc48992093091a6cb2699b80d40258739575a7b4b5dce9"
SEED = "1a2c682ff2d9e9b2c9d47bee545db3ea2b3d5356ff788cc970bd2c4c46b8f118"
STRATUM_SEED = "ce22250dfd97df4630ae5cc1bad8ba896c5b28c6faf03476873313a76dd8ad05"
SCORES = [  # ascending
    ("L-产品-0007", "195b4ab27468d04d0377678c10a1b92c4467c9af2fb0fb3d411bdff737421682"),
    ("91150602MA0N000002", "3359e091d7a508fc395fbfe9607ded1211b5446fda571ed6530817fa98c70cd6"),
    ("91150602MA0N000004", "6ce970772be7ca3dafe42c102bfe221ad99b0ddb82589ac1f28dce9233efb994"),
    ("91150602MA0N000003", "7e3083d2cc0a8a98078f47014d1e4c0e6486fbbb739916d047d5353463a3186f"),
    ("91150602MA0N000001", "8c53272c5b0d77f9460b656cb91a64e2a31074daea311a63c600d8c955c4078d"),
]
INSPECTORS = ["I01", "I02", "I03", "I04"]
WALKS = {  # object: [(p, r, inspector visited)]
    "L-产品-0007": [(0, 1, "I02"), (1, 3, "I04"), (2, 2, "I03"), (3, 3, "I01")],
    "91150602MA0N000002": [(0, 3, "I04"), (1, 2, "I03"), (2, 3, "I01"), (3, 3, "I02")],
}
# ------------------------------------------------------------------------------------------

MEMBERS = [
    ("L-产品-0007", 3),
    ("91150602MA0N000003", 1),
    ("91150602MA0N000001", 1),
    ("91150602MA0N000004", 1),
    ("91150602MA0N000002", 2),
]


class TestWorkedExample:
    def test_commitment(self):
        assert ssr1.commitment(SECRET) == COMMITMENT

    def test_pool_lines_and_digest(self):
        assert "".join(ssr1.pool_lines(MEMBERS)) == POOL_TEXT
        assert ssr1.pool_digest(MEMBERS) == POOL_DIGEST
        assert ssr1.H(POOL_TEXT) == POOL_DIGEST

    def test_streaming_digest_of_sorted_members(self):
        assert ssr1.digest_sorted(sorted(MEMBERS)) == (POOL_DIGEST, 5)

    def test_seeds(self):
        assert ssr1.seed(BATCH, SECRET, "") == SEED
        assert ssr1.stratum_seed(SEED, "main", POOL_DIGEST) == STRATUM_SEED

    def test_every_score(self):
        weights = dict(MEMBERS)
        for member_id, expected in SCORES:
            assert ssr1.score(STRATUM_SEED, member_id, weights[member_id]) == expected

    def test_selection_order_and_k2(self):
        everything = ssr1.select(STRATUM_SEED, MEMBERS, 10)
        assert [(s.id, s.score) for s in everything] == SCORES
        assert ssr1.select(STRATUM_SEED, MEMBERS, 2) == [
            Scored(SCORES[0][1], "L-产品-0007"),
            Scored(SCORES[1][1], "91150602MA0N000002"),
        ]

    @pytest.mark.parametrize("object_id", sorted(WALKS))
    def test_inspector_walks_and_their_r(self, object_id):
        key = SEED + "|inspector|" + object_id
        assert walk_key(SEED, object_id) == key
        m = len(INSPECTORS)
        # r as DRAW.md §5 defines it, computed here with hashlib alone.
        rs = [p + int(hashlib.sha256(f"{key}|{p}".encode()).hexdigest(), 16) % (m - p) for p in range(m)]
        assert rs == [r for _, r, _ in WALKS[object_id]]
        assert [INSPECTORS[x] for x in walk(key, m)] == [c for _, _, c in WALKS[object_id]]


class TestSmallCases:
    def test_empty_pool(self):
        assert ssr1.pool_digest([]) == ssr1.H("") == hashlib.sha256(b"").hexdigest()
        assert ssr1.digest_sorted([]) == (ssr1.H(""), 0)
        assert ssr1.select(STRATUM_SEED, [], 5) == []

    def test_k_at_least_pool_size_selects_all(self):
        for k in (5, 6, 1000):
            assert [s.id for s in ssr1.select(STRATUM_SEED, MEMBERS, k)] == [i for i, _ in SCORES]
        assert ssr1.select(STRATUM_SEED, MEMBERS, 0) == []

    @pytest.mark.parametrize(
        "size, percent, k",
        [(21, "5", 2), (8, "12.5", 1), (1, "0.1", 1), (20, "5", 1), (0, "5", 0),
         (100, "100", 100), (3, "33.3333333333333333333333333333334", 2), (1000, "0.1", 1)],
    )
    def test_ratio_is_an_exact_ceiling(self, size, percent, k):
        assert ssr1.k_for_ratio(size, percent) == k

    def test_ratio_exact_beyond_decimal_context_precision(self):
        # (10**28 + 1) / 100 has 29 significant digits: a default Decimal context
        # (28 digits) or a float would round the 0.01 away and give 10**26.
        assert ssr1.k_for_ratio(10**28 + 1, "1") == 10**26 + 1

    @pytest.mark.parametrize("bad", ["0", "-5", "100.1", "abc", "NaN", "Infinity", ""])
    def test_bad_ratio(self, bad):
        with pytest.raises(ValueError):
            ssr1.k_for_ratio(10, bad)

    def test_ratio_text(self):
        assert [ssr1.ratio_text(p) for p in ("5", "5.0", "12.50", "100", "1e1")] == [
            "5", "5", "12.5", "100", "10"]

    def test_secret(self):
        assert len(s := ssr1.new_secret()) == 64 and ssr1.commitment(s) == ssr1.H(s)
        for bad in ["", "1", SECRET.upper().replace("0", "A"), SECRET + "0"]:
            with pytest.raises(ValueError):
                ssr1.commitment(bad)

    def test_beacon_is_verbatim(self):
        assert ssr1.seed(BATCH, SECRET, " 03 15|x ") == ssr1.H(f"SSR-1|{BATCH}|{SECRET}| 03 15|x ")

    @pytest.mark.parametrize("bad", ["", "a|b", "a\nb", "a\rb", " a", "a ", "a\u3000", 7])
    def test_bad_identifiers(self, bad):
        with pytest.raises(ValueError):
            ssr1.check_identifier(bad)
        with pytest.raises(ValueError):
            ssr1.pool_lines([(bad, 1)])

    @pytest.mark.parametrize("w", [0, 11, -1, 1.0, "1", True])
    def test_bad_weights(self, w):
        with pytest.raises(ValueError):
            ssr1.pool_lines([("A", w)])

    def test_duplicate_and_unsorted_pool_members(self):
        with pytest.raises(ValueError, match="twice"):
            ssr1.pool_lines([("A", 1), ("A", 2)])
        with pytest.raises(ValueError, match="order"):
            ssr1.digest_sorted([("B", 1), ("A", 1)])

    def test_code_point_order(self):
        # "Z" < "a" < "é" < "产" by code point, whatever a locale would say.
        lines = ssr1.pool_lines([("产", 1), ("é", 1), ("a", 1), ("Z", 1)])
        assert lines == ["Z|1\n", "a|1\n", "é|1\n", "产|1\n"]

    def test_parse_pool_line(self):
        assert ssr1.parse_pool_line("L-产品-0007|3\n") == ("L-产品-0007", 3)
        for bad in ["A|0", "A|01", "A|11", "A", "|1", "A|1|2", " A|1", "A|+1"]:
            with pytest.raises(ValueError):
                ssr1.parse_pool_line(bad)

    @pytest.mark.parametrize("name", ["main", "食品-2026", "A_b", "x" * 32, "٣"])
    def test_good_stratum_names(self, name):
        assert ssr1.check_stratum_name(name) == name

    @pytest.mark.parametrize("name", ["", "x" * 33, "a b", "a/b", "a.b", "../x", "a|b"])
    def test_bad_stratum_names(self, name):
        with pytest.raises(ValueError):
            ssr1.check_stratum_name(name)

    def test_stratum_names_unique_ignoring_case(self):
        with pytest.raises(ValueError, match="clash"):
            ssr1.check_stratum_names(["Main", "food", "MAIN"])


class TestTaskList:
    def test_merging_across_strata(self):
        tasks = ssr1.task_list([
            ("main", ["A01", "A02"], ["X", "Y"]),
            ("food", ["A03", "A01"], ["Y", "Z"]),
            ("risk", ["A04", "A02", "A03"], ["Z", "X", "W"]),
        ])
        assert tasks == [
            Task("X", ("main", "risk"), ("A01", "A02", "A04", "A03")),
            Task("Y", ("main", "food"), ("A01", "A02", "A03")),
            Task("Z", ("food", "risk"), ("A03", "A01", "A04", "A02")),
            Task("W", ("risk",), ("A04", "A02", "A03")),
        ]

    def test_refusals(self):
        with pytest.raises(ValueError, match="clash"):
            ssr1.task_list([("main", ["A"], ["X"]), ("Main", ["A"], ["Y"])])
        with pytest.raises(ValueError, match="item twice"):
            ssr1.task_list([("main", ["A", "A"], ["X"])])
        with pytest.raises(ValueError, match="twice"):
            ssr1.task_list([("main", ["A"], ["X", "X"])])

    @given(st.lists(st.tuples(st.lists(st.sampled_from("ABCDE"), unique=True),
                              st.lists(st.sampled_from("pqrstuvw"), unique=True)),
                    min_size=1, max_size=4))
    def test_merging_properties(self, strata):
        named = [(f"s{n}", items, selected) for n, (items, selected) in enumerate(strata)]
        tasks = ssr1.task_list(named)
        ids = [t.object_id for t in tasks]
        assert len(ids) == len(set(ids)) == len({o for _, _, sel in named for o in sel})
        # Task order: by first stratum to list the object, then its position there.
        first = {}
        for n, (_, _, selected) in enumerate(named):
            for pos, o in enumerate(selected):
                first.setdefault(o, (n, pos))
        assert ids == sorted(ids, key=first.get)
        for t in tasks:
            strata_of = [name for name, _, sel in named if t.object_id in sel]
            assert list(t.strata) == strata_of
            items = [i for name, its, _ in named if name in strata_of for i in its]
            assert list(t.items) == list(dict.fromkeys(items))


ids = st.text(st.characters(blacklist_characters="|\r\n", blacklist_categories=("Cs",)),
              min_size=1, max_size=8).filter(lambda s: s == s.strip())
pools = st.dictionaries(ids, st.integers(1, 10), max_size=30).map(lambda d: sorted(d.items()))


class TestSelectionProperties:
    @given(pools, st.integers(0, 35), st.randoms(use_true_random=False))
    def test_order_independent(self, pool, k, rnd):
        shuffled = pool[:]
        rnd.shuffle(shuffled)
        assert ssr1.select(STRATUM_SEED, shuffled, k) == ssr1.select(STRATUM_SEED, pool, k)
        assert ssr1.pool_digest(shuffled) == ssr1.pool_digest(pool)

    @given(pools, st.integers(0, 35))
    def test_selection_is_sorted_scores_truncated(self, pool, k):
        everyone = sorted(Scored(ssr1.score(STRATUM_SEED, i, w), i) for i, w in pool)
        assert ssr1.select(STRATUM_SEED, pool, k) == everyone[:k]

    @given(pools, st.integers(0, 35), st.integers(1, 5))
    def test_chunks_merge_to_the_whole(self, pool, k, parts):
        chunks = [pool[n::parts] for n in range(parts)]
        partial = [ssr1.select(STRATUM_SEED, c, k) for c in reversed(chunks)]
        assert ssr1.merge_selections(partial, k) == ssr1.select(STRATUM_SEED, pool, k)

    @given(ids, st.integers(1, 10))
    def test_weight_is_tickets(self, member_id, w):
        tickets = [ssr1.H(f"{STRATUM_SEED}|{member_id}|{j}") for j in range(w)]
        assert ssr1.score(STRATUM_SEED, member_id, w) == min(tickets)

    def test_chunks_on_several_processes(self):
        pool = [(f"O{n:05d}", 1 + n % 3) for n in range(3000)]
        chunks = [pool[n::3] for n in range(3)]
        with ProcessPoolExecutor(2) as executor:
            parts = list(executor.map(ssr1.select, [STRATUM_SEED] * 3, chunks, [25] * 3))
        assert ssr1.merge_selections(parts, 25) == ssr1.select(STRATUM_SEED, pool, 25)

    def test_weight_three_is_picked_about_three_times_as_often(self):
        # 2,000 fixed seeds, one draw of k=1 from {heavy: w=3} + 9 of w=1 each:
        # P(heavy) = 3/12 = 0.25, P(a given light one) = 1/12. Deterministic.
        pool = [("heavy", 3)] + [(f"light{n}", 1) for n in range(9)]
        wins = Counter(ssr1.select(ssr1.H(f"trial {t}"), pool, 1)[0].id for t in range(2000))
        heavy = wins["heavy"] / 2000
        light = (2000 - wins["heavy"]) / 9 / 2000
        assert 0.21 < heavy < 0.29
        assert 2.4 < heavy / light < 3.7

    def test_negative_k(self):
        with pytest.raises(ValueError):
            ssr1.select(STRATUM_SEED, MEMBERS, -1)

    def test_bad_weight_in_select(self):
        with pytest.raises(ValueError):
            ssr1.select(STRATUM_SEED, [("A", 0)], 1)

    @settings(max_examples=20)
    @given(st.integers(0, 1000), st.integers(0, 1000))
    def test_large_k_buffer(self, n, k):
        pool = [(f"O{i}", 1) for i in range(n)]
        random.Random(n).shuffle(pool)
        got = ssr1.select(STRATUM_SEED, pool, k)
        assert len(got) == min(n, k) and got == sorted(got)


class TestRoster:
    """DRAW.md §8: the roster's lines and digest, written from the text of the section."""

    def test_line_formats(self):
        assert ssr1.inspector_line("I01", "S-DC", True, date(2030, 12, 31), ["食品", "特种设备", "价格"]) == \
            "I|I01|S-DC|1|2030-12-31|价格;特种设备;食品"  # sorted by code point: 价 < 特 < 食
        assert ssr1.inspector_line("I02", "S-XC", False, None, []) == "I|I02|S-XC|0||"
        assert ssr1.team_line("T1", ["I02", "I01", "I10"]) == "T|T1|I01;I02;I10"
        assert ssr1.conflict_line("I01", "L-产品-0007") == "C|I01|L-产品-0007"

    def test_digest_is_the_sorted_lines_each_with_its_newline(self):
        lines = ["T|T1|I01;I02", "I|I02|S-XC|0||", "C|I01|L-产品-0007", "I|I01|S-DC|1|2030-12-31|食品"]
        text = "C|I01|L-产品-0007\nI|I01|S-DC|1|2030-12-31|食品\nI|I02|S-XC|0||\nT|T1|I01;I02\n"
        assert ssr1.roster_text(lines) == text
        assert ssr1.roster_digest(lines) == hashlib.sha256(text.encode()).hexdigest()
        assert ssr1.roster_digest(reversed(lines)) == ssr1.roster_digest(lines)
        assert ssr1.roster_digest([]) == hashlib.sha256(b"").hexdigest()

    def test_lines_sort_as_lines_not_by_id(self):
        # "I|A-B|…" before "I|A|…": '-' (U+002D) sorts before '|' (U+007C).
        lines = [ssr1.inspector_line("A", "U", True, None, []), ssr1.inspector_line("A-B", "U", True, None, [])]
        assert ssr1.roster_text(lines) == "I|A-B|U|1||\nI|A|U|1||\n"
        assert [i.id for i in ssr1.parse_roster(ssr1.roster_text(lines)).inspectors] == ["A-B", "A"]

    def test_a_conflict_recorded_twice_is_one_line(self):
        assert ssr1.roster_text(["C|I01|O1", "C|I01|O1"]) == "C|I01|O1\n"

    def test_read_back(self):
        text = ssr1.roster_text(["C|I01|O1", "I|I01|S-DC|1|2030-12-31|价格;食品", "I|I02|S-XC|0||", "T|T1|I01;I02"])
        roster = ssr1.parse_roster(text)
        assert roster.inspectors == (ssr1.RosterInspector("I01", "S-DC", True, date(2030, 12, 31), ("价格", "食品")),
                                     ssr1.RosterInspector("I02", "S-XC", False, None, ()))
        assert roster.teams == (("T1", ("I01", "I02")),) and roster.conflicts == (("I01", "O1"),)
        # Valid through its expiry day (SPEC §3); no certificate, never qualified.
        assert roster.inspectors[0].qualified_on(date(2030, 12, 31))
        assert not roster.inspectors[0].qualified_on(date(2031, 1, 1))
        assert not roster.inspectors[1].qualified_on(date(2000, 1, 1))

    @pytest.mark.parametrize("bad", ["I|I01|U|1|2030-12-31", "I|I01|U|yes||", "I|I01|U|1|2030-1-1|",
                                     "I|I01|U|1|2030-02-30|", "I|I01|U|1||b;a", "I|I01|U|1||a;;b", "I| I01|U|1||",
                                     "T|T1|I02;I01", "C|I01", "X|I01|O1", "C|I01|O1|x", ""])
    def test_read_back_refuses_what_is_not_written_so(self, bad):
        with pytest.raises(ValueError, match="roster line 1"):
            ssr1.parse_roster(bad + "\n")

    def test_read_back_refuses_order_repeats_and_a_missing_newline(self):
        with pytest.raises(ValueError, match="line 2 .* out of order or repeated"):
            ssr1.parse_roster("T|T1|I01;I02\nC|I01|O1\n")
        with pytest.raises(ValueError, match="out of order or repeated"):
            ssr1.parse_roster("C|I01|O1\nC|I01|O1\n")
        with pytest.raises(ValueError, match="no newline"):
            ssr1.parse_roster("C|I01|O1")

    @pytest.mark.parametrize("specialties", [["a|b"], ["a;b"], ["a\nb"], [""]])
    def test_specialities_that_cannot_be_written(self, specialties):
        with pytest.raises(ValueError, match="speciality"):
            ssr1.inspector_line("I01", "U", True, None, specialties)

    def test_ids_that_cannot_be_written(self):
        with pytest.raises(ValueError):
            ssr1.inspector_line("I|01", "U", True, None, [])
        with pytest.raises(ValueError):
            ssr1.team_line("T1", ["I01", "I;02"])
        with pytest.raises(ValueError):
            ssr1.conflict_line("I01", "O\n1")
