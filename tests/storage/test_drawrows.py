"""``storage.drawrows``: a draw's tasks and assignments stored while matching goes on
(SQLite: chunks of ``INSERT … SELECT … FROM json_each`` on a second thread) are stored
exactly as ``insert_tuples`` stores them — every column, ids included, in the same
order — across several chunks; a draw refused after some chunks were stored leaves
nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlmodel import select

from bot.refusal import Refusal
from storage import drawrows
from storage.db import transaction
from tests.support.batch_district import seed_district

AT = datetime(2026, 12, 5, 8, 30, 15, 123456, tzinfo=UTC)
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def _new_batch(engine, settings, ratio: str = "50") -> str:
    from bot.batches import create, publish
    from bot.rules.arguments import parse_arguments

    with transaction(engine) as session:
        batch_id = create.new_batch(session, settings, "admin", parse_arguments(
            f"名称=食品抽查 事项=A01,A02 比例={ratio}% 方式=交叉随机 截止=2026-12-31", create.NEW_KEYS),
            NOW.date()).batch.id
    with transaction(engine) as session:
        create.add_stratum(session, "admin", parse_arguments(
            f"批次={batch_id} 名称=异常 风险=经营异常 事项=A03 数量=3", create.STRATUM_KEYS))
    with transaction(engine) as session:
        publish.publish(session, settings, "admin", parse_arguments(f"批次={batch_id}", publish.PUBLISH_KEYS), NOW)
    return batch_id


def _raw(session, batch_id: str) -> tuple[list, list]:
    """The stored rows as the database holds them (text, integers, NULLs), ids included."""
    connection = session.connection()
    tasks = connection.exec_driver_sql(
        "SELECT * FROM tasks WHERE batch_id = %s ORDER BY id" if connection.dialect.name == "postgresql"
        else "SELECT * FROM tasks WHERE batch_id = ? ORDER BY id", (batch_id,)).all()
    ids = tuple(t[0] for t in tasks) or (-1,)
    assignments = connection.exec_driver_sql(
        f"SELECT * FROM assignments WHERE task_id IN ({', '.join(map(str, ids))}) ORDER BY id").all()
    return [tuple(t) for t in tasks], [tuple(a) for a in assignments]


def _rows(session) -> list[drawrows.Row]:
    objects = [o for (o,) in session.execute(text("SELECT id FROM objects ORDER BY id"))]
    inspectors = [i for (i,) in session.execute(text("SELECT id FROM inspectors ORDER BY id"))]
    strata = [("main",), ("main", "异常"), ("异常",)]
    items = [("A01", "A02"), ("A01", "A02", "A03"), ("A03",)]
    return [(n, o, strata[n % 3], items[n % 3], None if n % 4 else "T1", n % 5 == 0,
             (inspectors[n % 8], inspectors[(n + 3) % 8]) if n % 6 else tuple(inspectors[:3]))
            for n, o in enumerate(objects[::-1][:23])]


@pytest.mark.parametrize("threaded", [True, False])
@pytest.mark.parametrize("chunk", [1, 4, 10_000])
def test_rows_stored_meanwhile_are_insert_tuples_rows_byte_for_byte(engine, tmp_path, chunk, threaded):
    from bot.batches import create
    from bot.rules.arguments import parse_arguments
    from tests.support.batch_district import batch_settings

    seed_district(engine, tmp_path)
    with transaction(engine) as session:
        batch_id = create.new_batch(session, batch_settings(), "admin", parse_arguments(
            "名称=食品抽查 事项=A01 比例=5% 方式=交叉随机 截止=2026-12-31", create.NEW_KEYS), NOW.date()).batch.id
    stored = []
    for serial in (True, False):
        with transaction(engine) as session:
            rows = _rows(session)
            store = drawrows.DrawRows(session.connection(), batch_id, AT, chunk=chunk, threaded=threaded)
            if serial:  # insert_tuples: executemany on SQLite, COPY on PostgreSQL
                store._store_all(rows)
            else:
                for start in range(0, len(rows), 3):  # handed over as matching makes them
                    store.add(rows[start:start + 3])
                store.finish()
            stored.append(_raw(session, batch_id))
            session.rollback()
    (serial_tasks, serial_assignments), (tasks, assignments) = stored
    assert len(tasks) == 23 and len(assignments) == sum(len(r[6]) for r in _rows_of(engine))
    if engine.dialect.name == "postgresql":  # sequences do not roll back: ids differ, the rest not
        def strip(rows, drop):
            return [tuple(v for n, v in enumerate(row) if n not in drop) for row in rows]
        assert strip(tasks, {0}) == strip(serial_tasks, {0})
        assert strip(assignments, {0, 1}) == strip(serial_assignments, {0, 1})
    else:
        assert tasks == serial_tasks and assignments == serial_assignments


def _rows_of(engine) -> list[drawrows.Row]:
    with transaction(engine) as session:
        return _rows(session)


def test_a_draw_stored_in_chunks_stores_what_the_serial_draw_stores(engine, tmp_path, monkeypatch):
    """The same draw of the same batch, once with every row handed over at the end and
    once in chunks of two tasks (each rolled back after): the same tasks, assignments
    and batch record, byte for byte (ids too, on SQLite)."""
    from bot.batches import draw
    from bot.rules.arguments import parse_arguments
    from storage.models import Batch, Stratum
    from tests.support.batch_district import batch_settings

    seed_district(engine, tmp_path)
    settings = batch_settings()
    batch_id = _new_batch(engine, settings)
    outcomes = []
    for chunk, threaded in ((10**9, False), (2, True), (2, False)):
        monkeypatch.setattr(draw, "STORE_CHUNK", chunk)
        monkeypatch.setattr(drawrows, "CHUNK", chunk)
        monkeypatch.setattr(draw, "spare_core", lambda threaded=threaded: threaded)
        with transaction(engine) as session:
            drawn = draw.draw(session, settings, "admin", parse_arguments(f"批次={batch_id}", draw.DRAW_KEYS), NOW)
            session.flush()
            batch = session.get_one(Batch, batch_id)
            record = (batch.status, batch.seed, batch.matching_inputs,
                      [s.selected for s in session.exec(select(Stratum).where(Stratum.batch_id == batch_id))])
            outcomes.append((drawn.tasks, _raw(session, batch_id), record))
            session.rollback()
    (n, (serial_tasks, serial_assignments), serial_record), *others = outcomes
    for m, (tasks, assignments), record in others:
        assert n == m >= 10 and len(tasks) == m and len(assignments) >= 2 * m
        assert record == serial_record
        if engine.dialect.name == "postgresql":  # sequences do not roll back: ids differ, the rest not
            first, serial_first = tasks[0][0], serial_tasks[0][0]
            assert [t[1:] for t in tasks] == [t[1:] for t in serial_tasks]
            assert [(a[1] - first, *a[2:]) for a in assignments] == \
                [(a[1] - serial_first, *a[2:]) for a in serial_assignments]
        else:
            assert tasks == serial_tasks and assignments == serial_assignments


def test_a_draw_refused_after_chunks_were_stored_stores_nothing(engine, tmp_path, monkeypatch):
    from bot.batches import draw
    from bot.rules import matching
    from bot.rules.arguments import parse_arguments
    from storage.models import Batch
    from tests.support.batch_district import batch_settings

    seed_district(engine, tmp_path)
    settings = batch_settings()
    batch_id = _new_batch(engine, settings)
    monkeypatch.setattr(draw, "STORE_CHUNK", 2)
    monkeypatch.setattr(drawrows, "CHUNK", 2)
    monkeypatch.setattr(draw, "spare_core", lambda: True)
    real = draw.staff_recorded

    def staff_then_fail(seed, inputs):
        for n, assignment in enumerate(real(seed, inputs)):
            if n == 7:
                raise matching.DrawFailure("too_few_candidates", assignment.object_id, "cross", "S-DC")
            yield assignment

    monkeypatch.setattr(draw, "staff_recorded", staff_then_fail)
    with pytest.raises(Refusal) as refused, transaction(engine) as session:
        draw.draw(session, settings, "admin", parse_arguments(f"批次={batch_id}", draw.DRAW_KEYS), NOW)
    assert refused.value.message == "cannot_staff"
    with transaction(engine) as session:
        assert _raw(session, batch_id) == ([], [])
        assert session.get_one(Batch, batch_id).status == "published"
    import threading
    assert not [t for t in threading.enumerate() if t.name == "draw-rows"]
