"""The selection scored on two cores (a forked child takes half the pool) is the
one-process selection, bit for bit: same ids, same scores, same order — over pools
that span many of ``_under``'s chunks, with heavy members, ties broken by id, the
plain-loop fallback, and a child that fails."""

import os

import pytest

from bot.batches import selection
from bot.batches.selection import select_lines
from bot.rules import ssr1

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")


def _pool(n: int) -> bytes:
    members = sorted((f"9115{i:08d}" if i % 3 else f"L-产品-{i:05d}", 1 if i % 97 else 2 + i % 9) for i in range(n))
    return "".join(ssr1.pool_line(m, w) for m, w in members).encode()


@pytest.mark.parametrize(("n", "k"), [(30_011, 1_500), (30_011, 1), (9_000, 9_000), (12_345, 20_000)])
def test_forked_scoring_is_the_one_process_selection(monkeypatch, n, k):
    data, seed = _pool(n), ssr1.H(f"forked {n} {k}")
    monkeypatch.setattr(selection, "FORK_MIN_LINES", 10**12)
    serial = select_lines(seed, data, k)
    forks = []
    real = selection._under_forked
    monkeypatch.setattr(selection, "FORK_MIN_LINES", 1)
    monkeypatch.setattr(selection, "_spare_core", lambda: True)
    monkeypatch.setattr(selection, "_under_forked", lambda *a: forks.append(1) or real(*a))
    assert select_lines(seed, data, k) == serial
    assert forks == [1]
    assert len(serial) == min(k, n)


def test_the_fallback_loop_after_forked_scoring(monkeypatch):
    """A threshold so tight that too few are kept: the plain loop selects, same result."""
    data, seed = _pool(20_000), ssr1.H("tight")
    monkeypatch.setattr(selection, "FORK_MIN_LINES", 10**12)
    serial = select_lines(seed, data, 500, spare=-400)
    monkeypatch.setattr(selection, "FORK_MIN_LINES", 1)
    monkeypatch.setattr(selection, "_spare_core", lambda: True)
    assert select_lines(seed, data, 500, spare=-400) == serial


def test_a_child_that_fails_is_scored_here(monkeypatch):
    data, seed = _pool(20_000), ssr1.H("child fails")
    serial = select_lines(seed, data, 700)
    monkeypatch.setattr(selection, "FORK_MIN_LINES", 1)
    monkeypatch.setattr(selection, "_spare_core", lambda: True)
    real = selection._under

    def under(base, lines, threshold):
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        return real(base, lines, threshold)

    parent = os.getpid()
    monkeypatch.setattr(selection, "_under", under)
    assert select_lines(seed, data, 700) == serial


def test_small_pools_are_not_forked(monkeypatch):
    monkeypatch.setattr(selection, "_under_forked", lambda *a: pytest.fail("forked a small pool"))
    assert len(select_lines(ssr1.H("small"), _pool(5_000), 10)) == 10
