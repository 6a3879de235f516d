"""``storage.bulk``: rows stored at the driver's speed read back exactly as the same rows
stored through SQLAlchemy's insert — JSON, sealed text, instants, booleans, NULLs — on
SQLite (executemany) and PostgreSQL (COPY)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select, text

from storage.bulk import insert_rows, insert_tuples
from storage.db import transaction
from storage.models import Assignment, Conflict, OutboxMessage, Task, table_of
from tests.support.batch_district import seed_district

AT = datetime(2026, 12, 5, 8, 30, 15, 123456, tzinfo=UTC)


def _outbox_row(n: int) -> dict:
    return {"platform": "wecom", "recipient": f"u{n}", "kind": "text",
            "payload": {"message": {"text": f"第{n}条 \"引号\" \\ 反斜杠\t制表"}, "list": [1, None, True]},
            "idempotency_key": f"bulk:{n}", "subject": None, "rate_key": f"wecom:user:u{n}", "status": "pending",
            "attempts": 0, "in_doubt": n % 2 == 0, "next_attempt_at": AT, "created_at": AT}


def test_bulk_rows_read_back_as_sqlalchemys_own(engine):
    table = table_of(OutboxMessage)
    with transaction(engine) as session:
        session.execute(table.insert(), [_outbox_row(n) for n in range(3)])
        assert insert_rows(session.connection(), table, [_outbox_row(n) for n in range(3, 6)]) == 3
    with transaction(engine) as session:
        stored = session.execute(select(table).order_by(table.c.id)).all()
    columns = [c for c in table.c.keys() if c not in ("id",)]
    by_orm = [{c: getattr(row, c) for c in columns if c not in ("recipient", "idempotency_key", "rate_key",
                                                                   "in_doubt", "payload")} for row in stored[:3]]
    by_bulk = [{c: getattr(row, c) for c in columns if c not in ("recipient", "idempotency_key", "rate_key",
                                                                    "in_doubt", "payload")} for row in stored[3:]]
    assert by_bulk == by_orm
    assert [row.payload for row in stored[3:]] == [_outbox_row(n)["payload"] for n in range(3, 6)]
    assert [(row.in_doubt, row.next_attempt_at) for row in stored[3:]] == [(False, AT), (True, AT), (False, AT)]


def test_bulk_rows_are_sealed_like_any_other(engine, tmp_path):
    seed_district(engine, tmp_path)
    with transaction(engine) as session:
        inspector = session.execute(text("SELECT id FROM inspectors ORDER BY id LIMIT 1")).scalar_one()
        obj = session.execute(text("SELECT id FROM objects ORDER BY id LIMIT 1")).scalar_one()
        insert_rows(session.connection(), table_of(Conflict), [
            {"inspector_id": inspector, "object_id": obj, "reason": "配偶在该企业任职", "origin": "recusal",
             "declared_at": AT}])
    with transaction(engine) as session:
        raw = session.execute(text("SELECT reason FROM conflicts WHERE origin = 'recusal'")).scalar_one()
        (conflict,) = session.execute(select(Conflict).where(Conflict.origin == "recusal")).scalars()
    assert "配偶" not in raw and raw.startswith("sealed:")
    assert conflict.reason == "配偶在该企业任职" and conflict.declared_at == AT


# --- insert_tuples: rows as tuples, each distinct value converted once ----------------------------------------------

_TUPLE_NAMES = ("platform", "recipient", "kind", "payload", "idempotency_key", "subject", "rate_key", "status",
                "attempts", "in_doubt", "next_attempt_at", "created_at")


def test_tuples_read_back_as_rows_given_as_dicts(engine):
    table = table_of(OutboxMessage)
    with transaction(engine) as session:
        insert_rows(session.connection(), table, [_outbox_row(n) for n in range(4)])
        assert insert_tuples(session.connection(), table, _TUPLE_NAMES,
                             [tuple(_outbox_row(n)[k] for k in _TUPLE_NAMES) for n in range(4, 8)]) == 4
    with transaction(engine) as session:
        stored = session.execute(select(table).order_by(table.c.id)).all()
    varying = ("id", "recipient", "idempotency_key", "rate_key", "in_doubt", "payload")
    columns = [c for c in table.c.keys() if c not in varying]
    assert [{c: getattr(row, c) for c in columns} for row in stored[4:]] == \
        [{c: getattr(row, c) for c in columns} for row in stored[:4]]
    assert [(row.payload, row.in_doubt, row.recipient) for row in stored[4:]] == \
        [(_outbox_row(n)["payload"], n % 2 == 0, f"u{n}") for n in range(4, 8)]


def test_equal_values_of_other_types_are_converted_each_as_itself(engine):
    """``1`` and ``True`` (``0`` and ``False``) are one dict key; their JSON is not the same."""
    table = table_of(OutboxMessage)
    payloads = [True, 1, ("a", "b"), ["a", "b"], False, 0, ("a", "b"), True]
    with transaction(engine) as session:
        insert_tuples(session.connection(), table, ("platform", "recipient", "kind", "payload", "idempotency_key"),
                      [("wecom", "u", "text", p, f"memo:{n}") for n, p in enumerate(payloads)])
    with transaction(engine) as session:
        stored = session.execute(select(table.c.payload).order_by(table.c.id)).scalars().all()
    assert [(type(p), p) for p in stored] == [(bool, True), (int, 1), (list, ["a", "b"]),
                                              (list, ["a", "b"]), (bool, False), (int, 0), (list, ["a", "b"]),
                                              (bool, True)]


def test_a_draws_bulk_stored_tasks_and_assignments_read_back_as_the_orms(engine, tmp_path):
    """The draw's rows, stored by ``insert_tuples``, against the same rows added through the ORM."""
    from bot.batches import create, draw, publish
    from bot.rules.arguments import parse_arguments
    from tests.support.batch_district import batch_settings

    seed_district(engine, tmp_path)
    settings = batch_settings()
    now = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    with transaction(engine) as session:
        batch_id = create.new_batch(session, settings, "admin", parse_arguments(
            "名称=食品抽查 事项=A01,A02 比例=20% 方式=交叉随机 截止=2026-12-31", create.NEW_KEYS),
            now.date()).batch.id
    with transaction(engine) as session:
        create.add_stratum(session, "admin", parse_arguments(
            f"批次={batch_id} 名称=异常 风险=经营异常 事项=A03 数量=3", create.STRATUM_KEYS))
    with transaction(engine) as session:
        publish.publish(session, settings, "admin", parse_arguments(f"批次={batch_id}", publish.PUBLISH_KEYS), now)
    with transaction(engine) as session:
        draw.draw(session, settings, "admin", parse_arguments(f"批次={batch_id}", draw.DRAW_KEYS), now)

    def read(session) -> tuple[list, list]:
        tasks = session.execute(select(Task).where(Task.batch_id == batch_id).order_by(Task.position)).scalars().all()
        number = {t.id: t.position for t in tasks}
        assignments = session.execute(select(Assignment).where(Assignment.task_id.in_(number))
                                      .order_by(Assignment.task_id, Assignment.position)).scalars().all()
        return ([{k: v for k, v in t.model_dump().items() if k != "id"} for t in tasks],
                [{**{k: v for k, v in a.model_dump().items() if k not in ("id", "task_id")}, "task": number[a.task_id]}
                 for a in assignments])

    with transaction(engine) as session:
        bulk_tasks, bulk_assignments = read(session)
        session.execute(delete(table_of(Assignment)))
        session.execute(delete(table_of(Task)))
        session.flush()
        added = [Task(**row) for row in bulk_tasks]
        session.add_all(added)
        session.flush()
        by_position = {t.position: t.id for t in added}
        session.add_all([Assignment(**{k: v for k, v in row.items() if k != "task"}, task_id=by_position[row["task"]])
                         for row in bulk_assignments])
    with transaction(engine) as session:
        orm_tasks, orm_assignments = read(session)
    assert len(bulk_tasks) >= 9 and len(bulk_assignments) == 2 * len(bulk_tasks)
    assert bulk_tasks == orm_tasks and bulk_assignments == orm_assignments
    assert {tuple(t["strata"]) for t in bulk_tasks} >= {("main",), ("异常",)}
    assert all(type(t["strata"]) is list and type(t["items"]) is list for t in bulk_tasks)
    assert {a["assigned_at"] for a in bulk_assignments} == {now}


def test_units_of_reads_what_the_orm_reads(engine, tmp_path, monkeypatch):
    """The draw's units read through the driver (one array on PostgreSQL, IN chunks on
    SQLite) equal the ORM's query, across chunk edges, for a missing id too."""
    from bot.batches import draw
    from storage.models import InspectionObject

    seed_district(engine, tmp_path)
    with transaction(engine) as session:
        orm = dict(session.execute(select(InspectionObject.id, InspectionObject.unit_id)).all())
        ids = sorted(orm)[::-1] + ["没有这个对象"]
        for chunk in (1, 2, 3, 10_000):
            monkeypatch.setattr(draw, "IN_CHUNK", chunk)
            assert draw.units_of(session.connection(), ids) == orm
        assert draw.units_of(session.connection(), []) == {}
    assert len(orm) >= 5
