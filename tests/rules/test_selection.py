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
