"""The hash-chained audit log: appends from several instances, tampering named."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from bot.cli import main
from storage import audit
from storage.db import make_engine, transaction


def append(engine, count: int, actor: str) -> None:
    for i in range(count):
        with transaction(engine) as session:
            audit.record(session, actor, "test.append", f"{actor}-{i}", n=i, note="中文")


def test_chain_verifies_and_detail_round_trips(engine):
    append(engine, 3, "alice")
    with transaction(engine) as session:
        report = audit.verify(session)
        first = session.get(audit.AuditEntry, 1)
    assert report.ok and report.entries == 3
    assert first.prev_hash == audit.GENESIS and first.detail == {"n": 0, "note": "中文"}


def test_entry_rolls_back_with_the_change_it_records(engine):
    with pytest.raises(RuntimeError):
        with transaction(engine) as session:
            audit.record(session, "alice", "test.append")
            raise RuntimeError("the change failed")
    with transaction(engine) as session:
        assert audit.verify(session).entries == 0


def test_concurrent_threads_extend_one_chain(engine):
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda actor: append(engine, 10, actor), ["a", "b", "c", "d"]))
    with transaction(engine) as session:
        report = audit.verify(session)
    assert report.ok and report.entries == 40


def test_concurrent_processes_extend_one_chain(db_url):
    code = ("import sys; from storage.db import make_engine; from tests.storage.test_audit import append; "
            "append(make_engine(sys.argv[1]), 15, sys.argv[2])")
    processes = [subprocess.Popen([sys.executable, "-c", code, db_url, name]) for name in ("p1", "p2", "p3")]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0]
    with transaction(make_engine(db_url)) as session:
        report = audit.verify(session)
    assert report.ok and report.entries == 45


TAMPERS = {
    "actor": ("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3", 3, "content"),
    "detail": ("UPDATE audit_log SET detail = '{\"n\": 9, \"note\": \"中文\"}' WHERE seq = 4", 4, "content"),
    "action": ("UPDATE audit_log SET action = 'test.other' WHERE seq = 2", 2, "content"),
    "time": ("UPDATE audit_log SET at = at + INTERVAL '1 second' WHERE seq = 5", 5, "content"),
    "own hash": ("UPDATE audit_log SET hash = repeat('0', 63) || '1' WHERE seq = 3", 3, "content"),
    "deleted": ("DELETE FROM audit_log WHERE seq = 2", 3, "seq_gap"),
    "renumbered": ("UPDATE audit_log SET seq = 10 WHERE seq = 5", 6, "seq_gap"),
}


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_tampering_with_any_row_is_named(engine, db_url, monkeypatch, capsys, case):
    statement, broken, problem = TAMPERS[case]
    if engine.dialect.name == "sqlite":
        statement = statement.replace("at + INTERVAL '1 second'", "'2020-01-01 00:00:00.000000'")
        statement = statement.replace("repeat('0', 63) || '1'", "'" + "0" * 63 + "1'")
    append(engine, 6, "alice")
    with engine.begin() as connection:
        connection.execute(text(statement))
    with transaction(engine) as session:
        report = audit.verify(session)
    assert (report.broken_seq, report.problem) == (broken, problem)
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", db_url)
    assert main(["audit", "verify"]) == 1
    assert f"第 {broken} 条" in capsys.readouterr().out
