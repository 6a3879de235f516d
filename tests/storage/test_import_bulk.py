"""How an import stores many rows (issue 20): a column whose default is a function of the row
(``objects.page_key``) is filled before the bulk insert as SQLAlchemy's insert fills it, and
a first large import into an empty SQLite table builds the table's indexes after its rows —
the same indexes, inside the import's transaction, so a failed import leaves them as they
were; PostgreSQL and a table with rows keep their indexes throughout."""

from __future__ import annotations

import gc
import json

import pytest
from sqlalchemy import event, select, text

from storage import schema
from storage.db import transaction
from storage.importing import KINDS, Change, apply, import_file
from storage.models import ImportRun, InspectionObject, table_of
from storage.models.directory import page_key
from tests.support.directory_files import OBJECTS, UNITS, write

#: Ids whose page key is the id, and ids that are no safe file name (their key is a digest).
ODD_IDS = ("91150602MA0N000009", "L-产品-0008", "X/1", "A.B", "甲 乙")


def objects_file(tmp_path, name="objects.csv", extra=ODD_IDS):
    lines = OBJECTS + "".join(f"{object_id},对象{n},个体工商户,餐饮服务,林荫街道,S-DC,,,,,,\n"
                              for n, object_id in enumerate(extra))
    return write(tmp_path, name, lines)


def indexes(engine) -> list[tuple]:
    """The objects table's indexes as the database describes them."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'objects' ORDER BY name"
        else:
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'objects' ORDER BY indexname"
        return [tuple(row) for row in connection.execute(text(query))]


@pytest.fixture
def statements(engine):
    """Every SQL statement the engine sends, in order."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def units(engine, tmp_path):
    assert import_file(engine, "units", write(tmp_path, "units.csv", UNITS), actor="test").ok


def stored_objects(engine) -> dict[str, dict]:
    table = table_of(InspectionObject)
    with engine.connect() as connection:
        return {row.id: dict(row._mapping) for row in connection.execute(select(table))}


@pytest.mark.parametrize("deferred_from", [1, 10**9])
def test_a_first_import_stores_every_row_with_its_page_key_and_the_same_indexes(
        engine, tmp_path, units, statements, monkeypatch, deferred_from):
    monkeypatch.setattr(apply, "DEFER_INDEXES_FROM", deferred_from)
    before = indexes(engine)
    statements.clear()
    outcome = import_file(engine, "objects", objects_file(tmp_path), actor="test")
    assert outcome.ok and outcome.counts()["added"] == 3 + len(ODD_IDS)
    stored = stored_objects(engine)
    assert {object_id: row["page_key"] for object_id, row in stored.items()} == \
           {object_id: page_key(object_id) for object_id in stored}
    assert stored["X/1"]["page_key"].startswith("o-") and stored["甲 乙"]["page_key"].startswith("o-")
    assert stored["L-产品-0007"]["market"] is False and stored["91150602MA0N000001"]["complaints"] == 2
    dropped = [s for s in statements if s.startswith("DROP INDEX")]
    if engine.dialect.name == "sqlite" and deferred_from == 1:
        assert len(dropped) == len([name for name, sql in before if sql is not None and "UNIQUE" not in sql])
    else:
        assert dropped == []
    assert indexes(engine) == before
    schema.check(engine)  # models and migrations still agree (alembic check)
    with engine.connect() as connection:  # the rebuilt indexes answer
        found = connection.execute(text("SELECT id FROM objects WHERE page_key = :k"), {"k": page_key("X/1")})
        assert found.scalar_one() == "X/1"


def test_the_bulk_path_stores_what_the_row_by_row_insert_stores(engine, tmp_path, units, monkeypatch):
    """The first import (bulk, indexes built after) and the same rows added to a table that
    already has rows (indexes kept) store the same values."""
    monkeypatch.setattr(apply, "DEFER_INDEXES_FROM", 1)
    assert import_file(engine, "objects", objects_file(tmp_path, extra=()), actor="test").ok
    first = stored_objects(engine)
    assert import_file(engine, "objects", objects_file(tmp_path, "more.csv"), actor="test").ok
    later = stored_objects(engine)
    skip = {"first_import_id", "last_import_id", "updated_at"}
    shape = {k: v for k, v in first["91150602MA0N000002"].items() if k not in skip | {"id", "name", "page_key"}}
    added = later["91150602MA0N000009"]
    assert {k: v for k, v in added.items() if k not in skip | {"id", "name", "page_key"}} == \
           shape | {"region": "林荫街道", "industry": "餐饮服务", "abnormal": False}
    assert {k: v for k, v in later["91150602MA0N000001"].items() if k not in skip} == \
           {k: v for k, v in first["91150602MA0N000001"].items() if k not in skip}


def test_a_table_with_rows_keeps_its_indexes(engine, tmp_path, units, statements, monkeypatch):
    monkeypatch.setattr(apply, "DEFER_INDEXES_FROM", 1)
    assert import_file(engine, "objects", objects_file(tmp_path, extra=()), actor="test").ok
    statements.clear()
    assert import_file(engine, "objects", objects_file(tmp_path, "more.csv"), actor="test").ok
    assert not [s for s in statements if s.startswith("DROP INDEX")]


def test_a_failed_first_import_leaves_no_row_and_every_index(engine, tmp_path, units, monkeypatch):
    """The import is one transaction: an error after the rows are written (here in
    ``after_write``) takes back the rows and the dropped indexes with them."""
    monkeypatch.setattr(apply, "DEFER_INDEXES_FROM", 1)
    before = indexes(engine)

    def fail(_session, _outcome):
        raise RuntimeError("after the rows")

    with pytest.raises(RuntimeError):
        import_file(engine, "objects", objects_file(tmp_path), actor="test", after_write=fail)
    assert stored_objects(engine) == {}
    assert indexes(engine) == before
    assert import_file(engine, "objects", objects_file(tmp_path), actor="test").ok  # and a retry succeeds
    assert len(stored_objects(engine)) == 3 + len(ODD_IDS)


def test_rows_of_different_shapes_are_stored_each_with_its_own_fields(engine, tmp_path, units):
    """The writer's fallback for rows that do not all name the same fields (a parsed file's
    rows always do): each row stored as ``insert_rows`` stores it."""
    with transaction(engine) as session:
        run = ImportRun(kind="objects", file_name="x.csv", file_sha256="0" * 64, partial=False, actor="test")
        session.add(run)
        session.flush()
        rows = [{"id": "A1", "name": "甲", "kind": "个体工商户", "unit_id": "S-DC"},
                {"id": "A/2", "name": "乙", "kind": "产品", "unit_id": "S-DC", "market": False, "complaints": 3}]
        apply._Writer(session.connection(), KINDS["objects"], run.id, lambda rows, **_: rows).insert(
            [Change("added", (row["id"],), row=row) for row in rows])
    stored = stored_objects(engine)
    assert (stored["A1"]["market"], stored["A1"]["complaints"], stored["A1"]["page_key"]) == (True, 0, "A1")
    assert (stored["A/2"]["market"], stored["A/2"]["complaints"], stored["A/2"]["page_key"]) == \
           (False, 3, page_key("A/2"))
    assert stored["A1"]["first_import_id"] == stored["A/2"]["last_import_id"] == run.id


def test_an_import_collects_no_cycles_while_it_runs_and_leaves_the_collector_as_it_was(engine, tmp_path, units,
                                                                                      monkeypatch):
    seen = []
    monkeypatch.setattr(apply, "_write", lambda *a, _write=apply._write: seen.append(gc.isenabled()) or _write(*a))
    assert gc.isenabled()
    assert import_file(engine, "objects", objects_file(tmp_path), actor="test").ok
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        assert import_file(engine, "objects", objects_file(tmp_path), actor="test").ok
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError):  # an error leaves the collector on as well
        import_file(engine, "objects", objects_file(tmp_path, "other.csv", extra=("Z9",)), actor="test",
                    after_write=lambda *_: (_ for _ in ()).throw(RuntimeError("after")))
    assert gc.isenabled()


@pytest.mark.parametrize("at_once", [1, 500])
def test_the_history_keeps_each_changed_rows_whole_row_as_it_was(engine, tmp_path, units, monkeypatch, at_once):
    """The comparison reads only the file's fields; the history's ``before`` is still every
    column of the row before the write, read by key (a few keys per query, or many)."""
    monkeypatch.setattr(apply, "WHOLE_ROWS_AT_ONCE", at_once)
    assert import_file(engine, "objects", objects_file(tmp_path), actor="test").ok
    first = stored_objects(engine)
    lines = objects_file(tmp_path).read_text("utf-8").splitlines()
    changed = [lines[0], lines[1].replace("林荫路1号", "林荫路9号"), *lines[3:5]]  # one updated, others delisted
    outcome = import_file(engine, "objects", write(tmp_path, "o2.csv", "\n".join(changed) + "\n"), actor="test")
    assert outcome.counts()["updated"] == 1 and outcome.counts()["unchanged"] == 2
    assert outcome.counts()["delisted"] == len(first) - 3
    assert import_file(engine, "objects", objects_file(tmp_path, "o3.csv"), actor="test").counts()["relisted"] == \
           len(first) - 3
    with engine.connect() as connection:
        history = connection.execute(text("SELECT key, action, before FROM directory_changes ORDER BY id")).all()
    as_json = {key: {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
               for key, row in first.items()}
    befores = [(key, action, before if isinstance(before, dict) else json.loads(before))
               for key, action, before in history]
    assert befores[0] == ("91150602MA0N000001", "updated", as_json["91150602MA0N000001"])
    delisted = [b for b in befores if b[1] == "delisted"]
    assert {key: before for key, _, before in delisted} == \
           {key: row for key, row in as_json.items() if key not in ("91150602MA0N000001", "L-产品-0007", ODD_IDS[0])}
    relisted = [b for b in befores if b[1] == "relisted"]
    assert len(relisted) == len(delisted) and all(before["listed"] is False for _, _, before in relisted)


def test_conflicts_removed_from_the_file_are_delisted_with_their_whole_rows(engine, tmp_path, units, monkeypatch):
    """A kind keyed by two fields (inspector, object) reads its history rows by both."""
    monkeypatch.setattr(apply, "WHOLE_ROWS_AT_ONCE", 2)
    assert import_file(engine, "objects", objects_file(tmp_path), actor="test").ok
    inspectors = ("id,name,unit,certificate_no,certificate_expiry,specialties,active\n"
                  "I01,张伟,S-DC,1,2028-12-31,,是\nI02,王芳,S-DC,2,2028-12-31,,是\n")
    assert import_file(engine, "inspectors", write(tmp_path, "i.csv", inspectors), actor="test").ok
    pairs = [("I01", "X/1"), ("I02", "X/1"), ("I01", "A.B"), ("I02", "甲 乙"), ("I01", "甲 乙")]
    body = "".join(f"{i},{o},亲属\n" for i, o in pairs)
    assert import_file(engine, "conflicts", write(tmp_path, "c.csv", "inspector_id,object_id,reason\n" + body),
                       actor="test").ok
    kept = "inspector_id,object_id,reason\nI02,X/1,亲属\n"
    outcome = import_file(engine, "conflicts", write(tmp_path, "c2.csv", kept), actor="test")
    assert outcome.counts()["delisted"] == 4 and outcome.counts()["unchanged"] == 1
    with engine.connect() as connection:
        history = connection.execute(text(
            "SELECT key, before FROM directory_changes WHERE kind = 'conflicts' ORDER BY id")).all()
    befores = {key: before if isinstance(before, dict) else json.loads(before) for key, before in history}
    assert set(befores) == {f"{i}|{o}" for i, o in pairs if (i, o) != ("I02", "X/1")}
    assert all(before["listed"] is True and before["origin"] == "import" and before["id"]
               for before in befores.values())


def test_rows_of_one_shape_are_stored_as_insert_rows_stores_them(engine, tmp_path, units):
    """The writer's usual path (every row names the same fields: tuples handed to
    ``insert_tuples`` with the bookkeeping after) stores what ``insert_rows`` stores."""
    rows = [{"id": "A1", "name": "甲", "kind": "个体工商户", "unit_id": "S-DC", "market": True, "complaints": 0},
            {"id": "A/2", "name": "乙", "kind": "产品", "unit_id": "S-DC", "market": False, "complaints": 3}]
    stored = []
    for through_writer in (True, False):
        with transaction(engine) as session:
            run = ImportRun(kind="objects", file_name="x.csv", file_sha256="0" * 64, partial=False, actor="test")
            session.add(run)
            session.flush()
            writer = apply._Writer(session.connection(), KINDS["objects"], run.id, lambda rows, **_: rows)
            if through_writer:
                writer.insert([Change("added", (row["id"],), row=dict(row)) for row in rows])
            else:
                bookkeeping = apply._model_defaults(InspectionObject) | {"first_import_id": run.id,
                                                                          "last_import_id": run.id}
                apply.insert_rows(session.connection(), table_of(InspectionObject), [dict(r) for r in rows],
                                  bookkeeping)
        stored.append({key: {k: (v == run.id if k.endswith("import_id") else v) for k, v in row.items()
                             if k not in ("created_at", "updated_at")}
                       for key, row in stored_objects(engine).items()})
        with transaction(engine) as session:
            session.connection().execute(table_of(InspectionObject).delete())
    assert stored[0] == stored[1] and stored[0]["A/2"]["page_key"] == page_key("A/2")
    assert stored[0]["A1"]["first_import_id"] is stored[0]["A1"]["last_import_id"] is True  # this run's id
