"""Publication's fast path (``storage.pools.frozen_pool`` / ``freeze_sorted``) freezes exactly
what the reference ``freeze(pool_members(…))`` freezes — lines, size, digest, runs — on
SQLite and PostgreSQL, and refuses what the reference refuses (issue 20 item 4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from bot.rules import ssr1
from bot.rules.risk import RiskWeights
from bot.rules.scope import Scope
from storage.db import transaction
from storage.models import InspectionObject, table_of
from storage.pools import RUN_LINES, FrequencyCap, freeze, freeze_sorted, frozen_pool, pool_members
from tests.support.batch_district import seed_district

# DRAW.md, appendix
MEMBERS = [("91150602MA0N000001", 1), ("91150602MA0N000002", 2), ("91150602MA0N000003", 1),
           ("91150602MA0N000004", 1), ("L-产品-0007", 3)]
POOL_DIGEST = "02189fcb3ad32bb485cc48992093091a6cb2699b80d40258739575a7b4b5dce9"


def _fast(members: list[tuple[str, int]]):
    return freeze_sorted([m for m, _ in members], {m: w for m, w in members if w != 1})


def test_the_appendix_pool_hashes_to_its_published_digest():
    frozen = _fast(MEMBERS)
    assert frozen.digest == POOL_DIGEST and frozen.size == 5
    assert frozen == freeze(MEMBERS)
    assert frozen.lines.decode() == "".join(ssr1.pool_lines(MEMBERS))


def test_an_empty_pool_is_the_empty_strings_digest():
    assert _fast([]) == freeze([]) and _fast([]).digest == ssr1.H("")


def test_runs_match_the_reference_across_run_boundaries():
    members = sorted((f"OBJ-{n:07d}", 1 + n % 10 if n % 3 == 0 else 1) for n in range(2 * RUN_LINES + 17))
    assert _fast(members) == freeze(members)
    assert len(_fast(members).runs) == 3


def test_the_pool_compressed_on_the_side_is_the_pool_compressed_as_stored():
    """``freeze_sorted`` compresses in a thread while it hashes (and its caller goes on): the same bytes as
    ``compressed()`` of the reference (zlib level 6), which the draw thaws."""
    import zlib

    from storage.pools import thaw

    for members in (MEMBERS, [], sorted((f"OBJ-{n:07d}", 1 + n % 4) for n in range(RUN_LINES + 5))):
        fast, reference = _fast(members), freeze(members)
        assert fast.packing is not None and reference.packing is None and reference.packed is None
        assert fast.compressed() == reference.compressed() == zlib.compress(reference.lines, 6)
        assert thaw(fast.compressed(), fast.digest, fast.runs) == reference.lines


@pytest.mark.parametrize("bad", [
    [("A", 1), (" B", 1)], [("A", 1), ("B ", 1)], [("A", 1), ("B\u3000", 1)], [("A|B", 1)], [("A\rB", 1)],
    [("A\nB", 1)], [("", 1)], [("A", 11)], [("A", 0)],
])
def test_what_the_reference_refuses_is_refused(bad):
    with pytest.raises(ValueError) as reference:
        freeze(bad)
    with pytest.raises(ValueError) as fast:
        _fast(bad)
    assert str(fast.value) == str(reference.value)


@pytest.mark.parametrize("members", [[("B", 1), ("A", 1)], [("A", 1), ("A", 1)]])
def test_ids_out_of_order_or_twice_are_frozen_as_the_reference_freezes_them(members):
    assert _fast(members) == freeze(members)


def test_white_space_inside_an_id_is_allowed_as_the_reference_allows_it():
    members = [("A B", 1), ("A\u3000C", 2)]
    assert _fast(members) == freeze(members)


@pytest.mark.parametrize("scope", [Scope(), Scope(industries=("餐饮服务",)), Scope(risks=("abnormal",)),
                                   Scope(units=("S-XC",))])
def test_frozen_pool_is_the_reference_pool(engine, tmp_path, scope):
    seed_district(engine, tmp_path)
    with transaction(engine) as session:  # a few more marks, so that weights differ
        objects = table_of(InspectionObject)
        session.execute(update(objects).where(objects.c.id.like("%3")).values(key_sector=True))
        session.execute(update(objects).where(objects.c.id.like("%9")).values(serious_violation=True))
        session.execute(update(objects).where(objects.c.id.like("%8")).values(status="closed"))
    weights = RiskWeights(per_complaint=1, complaints_max=3, abnormal=2, serious_violation=3, key_sector=1)
    with transaction(engine) as session:
        connection = session.connection()
        for rules in (RiskWeights(), weights):
            reference = freeze(pool_members(connection, scope, rules))
            assert frozen_pool(connection, scope, rules) == reference
            assert reference.size > 0
        assert {w for _, w in pool_members(connection, scope, weights)} != {1}


def test_frozen_pool_follows_the_frequency_cap(engine, tmp_path):
    seed_district(engine, tmp_path)
    with transaction(engine) as session:
        connection = session.connection()
        cap = FrequencyCap(cap=1, since=datetime(2020, 1, 1, tzinfo=UTC), exempt=("abnormal",))
        assert frozen_pool(connection, Scope(), RiskWeights(), cap) == freeze(
            pool_members(connection, Scope(), RiskWeights(), cap))


def test_the_pool_read_as_joined_texts_is_the_reference_pool(engine, tmp_path, monkeypatch):
    """The pool read as two texts joined by the database (the unmarked ids; the marked
    ones with their marks): with ids in several scripts and lengths of UTF-8, marked and
    unmarked, NULL-free and weighed two ways, it is the reference pool; an id the text
    cannot carry (a newline) falls back to the rows and is refused as the reference
    refuses it."""
    from storage import pools

    seed_district(engine, tmp_path)
    objects = table_of(InspectionObject)
    renamed = ["é-1", "Ω-2", "𝔘-3", "ａ-4", "Z-5", "a-6", "中-7", "~-8", "x\u00a0-9", "ÿ-10"]
    with transaction(engine) as session:
        ids = [i for (i,) in session.execute(select(objects.c.id).order_by(objects.c.id))]
        for n, new in enumerate(renamed):
            session.execute(update(objects).where(objects.c.id == ids[3 * n]).values(
                id=new, abnormal=n % 2 == 0, complaints=n % 3))
    scanned = []
    real = pools._scanned
    monkeypatch.setattr(pools, "_scanned", lambda *a: scanned.append(r := real(*a)) or r)
    weights = RiskWeights(per_complaint=1, complaints_max=3, abnormal=2)
    with transaction(engine) as session:
        connection = session.connection()
        for rules in (RiskWeights(), weights):
            reference = freeze(pool_members(connection, Scope(), rules))
            assert frozen_pool(connection, Scope(), rules) == reference
    assert len(scanned) == 2 and all(r is not None and len(r[0]) == reference.size for r in scanned)
    assert scanned[0][1] == {} and set(scanned[1][1]) & set(renamed)  # weights from the marked text
    with transaction(engine) as session:
        session.execute(update(objects).where(objects.c.id == "Z-5").values(id="Z\n5", abnormal=False,
                                                                            complaints=0))
    with transaction(engine) as session:
        connection = session.connection()
        with pytest.raises(ValueError) as reference:
            freeze(pool_members(connection, Scope(), RiskWeights()))
        with pytest.raises(ValueError) as fast:
            frozen_pool(connection, Scope(), RiskWeights())
        assert str(fast.value) == str(reference.value)
    assert scanned[-1] is None
