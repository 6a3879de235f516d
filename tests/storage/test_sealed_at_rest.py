"""Conflict declarations are sealed at rest (issue 9): in the conflicts table, on the
recused assignment, in the import history and in the audit log; reading opens them;
``shuangsui keys rotate`` re-seals everything under a new first key. The engine carries
the keys (``storage.sealing``): here, the test database's ``sealing_key``."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session, select

from bot.batches.recusal import recuse
from bot.cli import main
from storage.db import make_engine, transaction
from storage.importing import import_file
from storage.models import Batch, Conflict
from storage.sealing import PREFIX, Sealer, UnreadableValue, new_key
from tests.support.batch_district import seed_district
from tests.support.results_district import NOW, TODAY, drawn_batch, tasks_of, team

REASON = "其配偶为该公司股东"


def raw(engine, sql: str) -> list:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(text(sql))]


def test_declarations_are_sealed_in_every_place_they_are_kept(engine, tmp_path):
    seed_district(engine, tmp_path)
    conflicts = tmp_path / "conflicts.csv"
    conflicts.write_text(f"inspector_id,object_id,reason\nI01,911506020000000001,{REASON}\n", encoding="utf-8")
    assert import_file(engine, "conflicts", conflicts, actor="test").ok
    again = import_file(engine, "conflicts", conflicts, actor="test")
    assert again.unchanged == 1 and not again.changes  # sealing makes no spurious changes
    conflicts.write_text(f"inspector_id,object_id,reason\nI01,911506020000000001,{REASON}（已离婚）\n",
                         encoding="utf-8")
    assert import_file(engine, "conflicts", conflicts, actor="test").ok
    batch = drawn_batch(engine)
    task = tasks_of(engine, batch)[0]
    inspector = team(engine, task.id)[0]
    with transaction(engine) as session:
        recuse(session, f"wecom:{inspector}", task.id, inspector, "与负责人系同学", TODAY, NOW)

    stored = raw(engine, "SELECT reason FROM conflicts") + raw(
        engine, "SELECT recusal_reason FROM assignments WHERE recusal_reason IS NOT NULL")
    assert len(stored) == 3 and all(value.startswith(PREFIX) for value in stored)
    history = raw(engine, "SELECT before FROM directory_changes WHERE kind = 'conflicts'")
    audit_log = raw(engine, "SELECT detail FROM audit_log")
    for content in stored + [str(h) for h in history] + [str(a) for a in audit_log]:
        assert REASON not in content and "与负责人系同学" not in content
    with Session(engine) as session:  # the program reads them as written
        reasons = sorted(c.reason for c in session.exec(select(Conflict)).all())
    assert reasons == sorted([f"{REASON}（已离婚）", "与负责人系同学"])


def test_keys_rotate_reseals_everything(engine, db_url, sealing_key, tmp_path, monkeypatch, capsys):
    seed_district(engine, tmp_path)
    batch = drawn_batch(engine)
    task = tasks_of(engine, batch)[0]
    inspector = team(engine, task.id)[0]
    with transaction(engine) as session:
        recuse(session, f"wecom:{inspector}", task.id, inspector, "与负责人系同学", TODAY, NOW)
    before = raw(engine, "SELECT reason FROM conflicts")
    old = sealing_key
    fresh = new_key()
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", db_url)
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", f'["{fresh}", "{old}"]')
    assert main(["keys", "rotate"]) == 0
    assert "利害关系声明" in capsys.readouterr().err
    after = raw(engine, "SELECT reason FROM conflicts")
    assert after != before and after[0].startswith(PREFIX)
    from cryptography.fernet import Fernet

    assert Fernet(fresh).decrypt(after[0][len(PREFIX):].encode()).decode() == "与负责人系同学"
    dropped = make_engine(db_url, sealer=Sealer([fresh]))  # the old key dropped: everything still opens
    try:
        with Session(dropped) as session:
            assert session.exec(select(Conflict)).first().reason == "与负责人系同学"
            batch = session.exec(select(Batch)).first()
            assert batch.secret  # revealed; sealed copy rotated too
            assert Sealer([fresh]).unseal(batch.secret_encrypted) == batch.secret
    finally:
        dropped.dispose()


def test_a_value_no_key_opens_is_an_error_not_garbage(engine, tmp_path):
    seed_district(engine, tmp_path)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO conflicts (inspector_id, object_id, reason, origin, declared_at, listed,"
                                " updated_at) VALUES ('I01', '911506020000000002', :r, 'import', :at, :listed, :at)"),
                           {"r": PREFIX + "gAAAAA-not-a-token", "at": NOW, "listed": True})
    with Session(engine) as session:
        try:
            session.exec(select(Conflict)).all()
        except UnreadableValue:
            pass
        else:
            raise AssertionError("an unreadable declaration was read")
    assert [a for a in raw(engine, "SELECT count(*) FROM audit_log")]
