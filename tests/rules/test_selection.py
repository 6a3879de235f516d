"""The draw's fast selection over frozen bytes equals SSR-1's reference selection."""

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.batches.selection import select_lines
from bot.rules import ssr1

ids = st.text(st.characters(blacklist_characters="|\r\n", blacklist_categories=("Cs",)), min_size=1, max_size=12)
ids = ids.filter(lambda s: s == s.strip())


@settings(max_examples=200)
@given(st.dictionaries(ids, st.integers(1, 10), max_size=60), st.integers(0, 70), st.text(max_size=8))
def test_select_lines_is_ssr1_select(pool, k, salt):
    members = sorted(pool.items())
    data = "".join(ssr1.pool_line(i, w) for i, w in members).encode()
    seed = ssr1.H(salt)
    assert select_lines(seed, data, k) == ssr1.select(seed, members, k)


def test_the_worked_example_of_draw_md():
    lines = ("91150602MA0N000001|1\n91150602MA0N000002|2\n91150602MA0N000003|1\n"
             "91150602MA0N000004|1\nL-产品-0007|3\n").encode()
    seed = "ce22250dfd97df4630ae5cc1bad8ba896c5b28c6faf03476873313a76dd8ad05"
    assert [s.id for s in select_lines(seed, lines, 2)] == ["L-产品-0007", "91150602MA0N000002"]
    assert select_lines(seed, lines, 2)[0].score == "195b4ab27468d04d0377678c10a1b92c4467c9af2fb0fb3d411bdff737421682"


@settings(max_examples=200)
@given(st.dictionaries(ids, st.integers(1, 10), max_size=80), st.integers(1, 70), st.text(max_size=8),
       st.integers(0, 12))
def test_a_tight_threshold_changes_nothing(pool, k, salt, spare):
    """With few members expected beyond k under the threshold, the filter keeps too few
    now and then: the plain loop then selects, with the same result."""
    members = sorted(pool.items())
    data = "".join(ssr1.pool_line(i, w) for i, w in members).encode()
    seed = ssr1.H(salt)
    assert select_lines(seed, data, k, spare=spare) == ssr1.select(seed, members, k)


def test_a_large_pool_through_the_threshold():
    """20,000 members, a few of weight 2–10: the threshold path (default margin) is the reference."""
    members = [(f"91150602MA{n:08d}", 1 if n % 97 else 2 + n % 9) for n in range(20_000)]
    data = "".join(ssr1.pool_line(i, w) for i, w in members).encode()
    seed = ssr1.H("large")
    for k in (1, 50, 1_000, 19_999, 20_000, 25_000):
        assert select_lines(seed, data, k) == ssr1.select(seed, members, k), k


def test_lines_without_a_final_newline_or_with_empty_ones():
    members = [("a", 1), ("b", 3), ("c", 1), ("d", 1)]
    seed = ssr1.H("edges")
    expected = ssr1.select(seed, members, 3)
    for data in (b"a|1\nb|3\nc|1\nd|1", b"\na|1\n\nb|3\nc|1\nd|1\n\n", b"a|1\nb|3\nc|1\nd|1\n"):
        assert select_lines(seed, data, 3) == expected
        assert select_lines(seed, data, 3, spare=0) == expected
    assert select_lines(seed, b"", 3) == [] == select_lines(seed, b"\n\n", 3)


def test_both_paths_are_taken_and_agree(monkeypatch):
    """Weight-1 members, k = 40 of 100 and no margin: about half the seeds keep fewer than
    k under the threshold and fall back to the loop; every seed gives the reference."""
    from bot.batches import selection

    loops = []
    loop = selection._select_loop
    monkeypatch.setattr(selection, "_select_loop", lambda *a: loops.append(1) or loop(*a))
    members = [(f"x{n:03d}", 1) for n in range(100)]
    data = "".join(ssr1.pool_line(i, w) for i, w in members).encode()
    for salt in range(50):
        seed = ssr1.H(str(salt))
        assert select_lines(seed, data, 40, spare=0) == ssr1.select(seed, members, 40)
    assert 0 < len(loops) < 50
