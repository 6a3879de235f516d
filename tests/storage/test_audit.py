"""The hash-chained audit log: appends from several instances, tampering named."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import time_machine
from sqlalchemy import text
from sqlmodel import select

from bot.cli import main
from bot.public import anchors
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


def rewrite_from(engine, seq: int, actor: str) -> None:
    """The insider's attack: change entry ``seq`` and recompute every later hash, so the chain
    verifies again on its own."""
    with transaction(engine) as session:
        entries = session.exec(select(audit.AuditEntry).order_by(audit.AuditEntry.seq)).all()
        prev = audit.GENESIS
        for entry in entries:
            if entry.seq == seq:
                entry.actor = actor
            if entry.seq >= seq:
                entry.prev_hash = prev
                entry.hash = audit.content_hash(prev, entry.seq, entry.at, entry.actor, entry.action, entry.subject,
                                                entry.detail)
                session.add(entry)
            prev = entry.hash


def test_a_kept_anchor_detects_a_rewritten_history(engine, db_url, monkeypatch, capsys, tmp_path):
    """README "Anchors": an outsider keeps the published head; later entries leave it valid,
    a history rewritten with recomputed hashes passes ``verify`` alone but not the anchor."""
    append(engine, 3, "alice")
    with transaction(engine) as session:
        kept = audit.anchor(session, "daily")
    assert kept.seq == 3
    (tmp_path / "anchor.txt").write_text(anchors.as_text(kept).decode(), encoding="utf-8")
    (tmp_path / "anchor.json").write_bytes(anchors.as_json(kept))
    append(engine, 4, "bob")  # the chain grows: the old anchor still holds
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", db_url)
    with transaction(engine) as session:
        assert audit.head(session)[0] == 7 and audit.check_anchor(session, kept.seq, kept.hash)
    assert main(["audit", "verify", "--anchor", str(tmp_path / "anchor.txt"),
                 "--anchor", str(tmp_path / "anchor.json")]) == 0
    assert "2 个保存的锚点与审计日志一致" in capsys.readouterr().out
    rewrite_from(engine, 2, "mallory")
    with transaction(engine) as session:
        assert audit.verify(session).ok  # the rewrite is consistent in itself …
        assert not audit.check_anchor(session, kept.seq, kept.hash)  # … but not with what was published
    assert main(["audit", "verify"]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--anchor", str(tmp_path / "anchor.txt")]) == 1
    assert f"第 3 条记录的哈希值应为 {kept.hash}" in capsys.readouterr().out
    (tmp_path / "bad.txt").write_text("not an anchor\n", encoding="utf-8")
    assert main(["audit", "verify", "--anchor", str(tmp_path / "bad.txt")]) == 1
    assert "无法读取锚点文件" in capsys.readouterr().err


def test_the_daily_anchor_is_written_once_a_day(engine):
    from datetime import UTC, datetime, timedelta

    append(engine, 2, "alice")
    day = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    with time_machine.travel(day, tick=False):
        first = anchors.anchor_if_due(engine, "Asia/Shanghai", day)
        assert first is not None and first.seq == 2 and first.reason == "daily"
        assert anchors.anchor_if_due(engine, "Asia/Shanghai", day + timedelta(hours=5)) is None  # same day
    append(engine, 1, "bob")
    later = day + timedelta(days=1)
    with time_machine.travel(later, tick=False):
        second = anchors.anchor_if_due(engine, "Asia/Shanghai", later)
    assert second is not None and second.seq == 3
