"""``storage.bulk``: rows stored at the driver's speed read back exactly as the same rows
stored through SQLAlchemy's insert — JSON, sealed text, instants, booleans, NULLs — on
SQLite (executemany) and PostgreSQL (COPY)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text

from storage.bulk import insert_rows
from storage.db import transaction
from storage.models import Conflict, OutboxMessage, table_of
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
