"""Matching's short path (``matching._first_open``: U empty, the walk's first open
candidates) staffs every task exactly as the three passes of DRAW.md §5 do."""

from __future__ import annotations

import random

import pytest

from bot.rules import matching


def _case(rng: random.Random):
    units = [f"U{n}" for n in range(rng.randint(1, 4))]
    specialties = ["食品", "特种设备", "药品"]
    inspectors = [matching.Inspector(f"I{n:03d}", rng.choice(units),
                                     frozenset(rng.sample(specialties, rng.randint(0, 2))),
                                     active=rng.random() > 0.1, qualified=rng.random() > 0.1)
                  for n in range(rng.randint(4, 30))]
    objects = [matching.TaskObject(f"O{n:04d}", rng.choice(units),
                                   frozenset(rng.sample(specialties, 1)) if rng.random() < 0.2 else frozenset())
               for n in range(rng.randint(1, 80))]
    conflicts = {(rng.choice(inspectors).id, rng.choice(objects).id) for _ in range(rng.randint(0, 40))}
    return inspectors, objects, conflicts


def _staff(monkeypatch, seed, inspectors, objects, conflicts, mode, slack, team_size, short: bool):
    with monkeypatch.context() as patch:
        if not short:
            patch.setattr(matching, "_first_open", lambda *args: None)
        try:
            return matching.match(seed, objects, inspectors, mode=mode, conflicts=conflicts, slack=slack,
                                  team_size=team_size)
        except matching.DrawFailure as exc:
            return (exc.reason, exc.object_id)


@pytest.mark.parametrize("mode", ["all", "unit", "cross"])
def test_the_short_path_staffs_as_the_passes_do(monkeypatch, mode):
    rng = random.Random(f"fast-{mode}")
    for case in range(150):
        inspectors, objects, conflicts = _case(rng)
        seed = f"{case:064x}"
        slack, team_size = rng.choice([0, 0, 1, 3]), rng.choice([2, 2, 3])
        short = _staff(monkeypatch, seed, inspectors, objects, conflicts, mode, slack, team_size, True)
        passes = _staff(monkeypatch, seed, inspectors, objects, conflicts, mode, slack, team_size, False)
        assert short == passes, (mode, case)


def test_the_short_path_hashes_no_more_than_the_passes(monkeypatch):
    rng = random.Random("fast-hashes")
    inspectors, objects, conflicts = _case(rng)
    counts = []
    for short in (True, False):
        calls = 0
        real = matching.H

        def counting(s: str) -> str:
            nonlocal calls
            calls += 1
            return real(s)

        monkeypatch.setattr(matching, "H", counting)
        _staff(monkeypatch, "ab" * 32, inspectors, objects, conflicts, "all", 1, 2, short)
        monkeypatch.setattr(matching, "H", real)
        counts.append(calls)
    assert counts[0] <= counts[1]


@pytest.mark.parametrize("object_id", ["O0001", "L-产品-0007", "91150602MA0N000002"])
def test_the_inlined_walk_is_the_walk(object_id):
    """``_first_open``'s walk (a hash state fed with ``p``, its digest read as an integer)
    visits L(o) in exactly ``walk``'s order (DRAW.md §5), key by key and size by size."""
    import hashlib

    seed = "ce22250dfd97df4630ae5cc1bad8ba896c5b28c6faf03476873313a76dd8ad05"
    for m in (1, 2, 3, 7, 40, 333):
        ids = [f"I{n:04d}" for n in range(m)]
        bureau = matching._Bureau([matching.Inspector(i, "U", qualified=True) for i in ids], None)
        state = hashlib.sha256(f"{matching.walk_key(seed, object_id)}|".encode())
        tally = matching._Loads(m + 1, {}, bureau)
        walked = matching._first_open(state, ids, m, frozenset(), tally)
        assert walked == [ids[x] for x in matching.walk(matching.walk_key(seed, object_id), m)]
