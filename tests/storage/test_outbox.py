"""The outbox and inbound queues: atomic claims, rate budgets, leases, shared tokens —
on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text
from sqlmodel import Session, select

from bot.outbound import GROUP, USER, Card, Destination, Text, from_payload
from storage import inbound, outbox, tokens
from storage.db import BUSY_TIMEOUT_MS, make_engine, reading, transaction, writer_lock
from storage.models import OutboxMessage, RateHold, SendSlot
from storage.outbox import RateLimit

T0 = datetime.now(UTC) + timedelta(days=1)  # rows queued during the run are due by then
MEMBER = (RateLimit(30, timedelta(seconds=75)), RateLimit(1000, timedelta(seconds=3615)))


def limits(rate_key: str):
    return MEMBER if ":user:" in rate_key else ()


def to(user: str) -> Destination:
    return Destination("wecom", USER, user)


def fill(engine, n: int, user="zhangsan", prefix="m") -> None:
    with transaction(engine) as session:
        for i in range(n):
            outbox.queue(session, to(user), Text(f"第{i}条"), f"{prefix}:{i}")


def claim(engine, owner="a", now=T0, batch=50):
    with transaction(engine) as session:
        return outbox.claim(session, owner, now, limits, batch=batch)


def test_queue_is_idempotent_on_its_key(engine):
    with transaction(engine) as session:
        assert outbox.queue(session, to("zhangsan"), Text("你好"), "k1")
        assert not outbox.queue(session, to("zhangsan"), Text("又一次"), "k1")
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage)).all()
    assert len(rows) == 1 and from_payload(rows[0].payload)[1] == Text("你好")
    assert rows[0].rate_key == "wecom:user:zhangsan"


def test_card_round_trips_through_the_payload(engine):
    from bot.outbound import Button, Choice

    card = Card("ss-1", "检查任务", "正文", [("对象", "某公司")], [Button("confirm", "无利害关系", "7")],
                Choice("category", "结果类别", [("1", "未发现问题")]), Button("result", "提交", "7"))
    with transaction(engine) as session:
        outbox.queue(session, to("lisi"), card, "card:1")
    with Session(engine) as session:
        row = session.exec(select(OutboxMessage)).one()
    assert from_payload(row.payload) == (to("lisi"), card)


def test_claim_respects_the_per_member_minute_budget(engine):
    fill(engine, 40)
    first = claim(engine)
    assert len(first) == 30  # the 31st would be silently dropped by WeCom
    assert claim(engine, now=T0 + timedelta(seconds=30)) == []
    with transaction(engine) as session:
        for row in first:
            outbox.mark_sent(session, row.id, "a", {}, T0)
    later = claim(engine, now=T0 + timedelta(seconds=76))
    assert len(later) == 10
    assert {r.id for r in first}.isdisjoint(r.id for r in later)


def test_a_saturated_member_does_not_starve_others(engine):
    fill(engine, 300, user="busy")
    fill(engine, 3, user="quiet", prefix="q")
    got = claim(engine, batch=50)
    assert sum(r.recipient == "busy" for r in got) == 30
    second = claim(engine, batch=50)
    assert [r.recipient for r in second] == ["quiet"] * 3


def test_a_spent_member_is_held_until_its_next_slot_without_rewriting_its_rows(engine):
    """A member's spent budget is one row (its next free slot), not a rewrite of every
    message waiting for it; until then a claim does not look at those messages."""
    fill(engine, 300, user="busy")

    def sent(now: datetime) -> int:
        rows = claim(engine, now=now)
        with transaction(engine) as session:
            for row in rows:
                outbox.mark_sent(session, row.id, "a", {}, now)
        return len(rows)

    def holds() -> dict[str, timedelta]:
        with Session(engine) as session:
            return {h.rate_key: h.free_at - T0 for h in session.exec(select(RateHold))}

    def due_times() -> set[datetime]:
        with Session(engine) as session:
            return set(session.exec(select(OutboxMessage.next_attempt_at).where(OutboxMessage.status == "pending")))

    queued = due_times()
    assert sent(T0) == 30
    assert holds() == {"wecom:user:busy": timedelta(seconds=75)}  # the first slot leaves the window then
    assert sent(T0 + timedelta(seconds=30)) == 0
    assert due_times() <= queued, "waiting messages were rewritten"
    assert sent(T0 + timedelta(seconds=74)) == 0
    assert sent(T0 + timedelta(seconds=76)) == 30
    assert sent(T0 + timedelta(seconds=100)) == 0
    assert holds() == {"wecom:user:busy": timedelta(seconds=151)}
    assert sent(T0 + timedelta(seconds=151)) == 30
    assert holds() == {"wecom:user:busy": timedelta(seconds=226)}
    with transaction(engine) as session:
        outbox.forget_old_slots(session, T0 + timedelta(seconds=227))
    assert holds() == {}  # a hold past its time is forgotten


def test_the_platform_apps_budget_counts_every_call(engine):
    """WeCom's per-corp limit (10,000 calls a minute per API, PROTOCOLS.md) counts every
    send to the platform, whoever it is for: beyond it the platform waits, others go."""
    app = (RateLimit(5, timedelta(seconds=60)),)

    def with_app(rate_key: str):
        return app if rate_key == outbox.app_key("wecom") else limits(rate_key)

    with transaction(engine) as session:
        for i in range(8):
            outbox.queue(session, to(f"u{i}"), Text("通知"), f"w{i}")
            outbox.queue(session, Destination("wecom", "reply", f"https://x/{i}"), Text("答"), f"r{i}")
        outbox.queue(session, Destination("dingtalk", USER, "d1"), Text("通知"), "d1")

    def take(now: datetime) -> list:
        with transaction(engine) as session:
            rows = outbox.claim(session, "a", now, with_app, batch=50)
            for row in rows:
                outbox.mark_sent(session, row.id, "a", {}, now)
            return rows

    first = take(T0)
    assert sum(r.platform == "wecom" for r in first) == 5 and [r.recipient for r in first if r.platform != "wecom"] \
        == ["d1"]
    assert take(T0 + timedelta(seconds=30)) == []
    with Session(engine) as session:
        assert session.get_one(RateHold, "wecom:app").free_at == T0 + timedelta(seconds=60)
    assert len(take(T0 + timedelta(seconds=61))) == 5
    assert len(take(T0 + timedelta(seconds=122))) == 5
    assert len(take(T0 + timedelta(seconds=183))) == 1  # 16 calls in all


def test_hour_budget(engine):
    fill(engine, 1010)
    total = 0
    for minute in range(40):
        rows = claim(engine, now=T0 + timedelta(seconds=76 * minute), batch=100)
        with transaction(engine) as session:
            for row in rows:
                outbox.mark_sent(session, row.id, "a", {}, T0)
        total += len(rows)
    assert total == 1000
    assert len(claim(engine, now=T0 + timedelta(seconds=3616), batch=100)) == 10


def test_group_robot_and_replies_have_no_member_budget(engine):
    with transaction(engine) as session:
        for i in range(40):
            outbox.queue(session, Destination("wecom", "reply", f"https://x/{i}"), Text("答"), f"r{i}")
    assert len(claim(engine, batch=100)) == 40
    with Session(engine) as session:
        assert session.exec(select(SendSlot)).all() == []


def test_recorded_outcomes_and_the_lease(engine):
    fill(engine, 2)
    a, b = claim(engine, owner="a")
    with transaction(engine) as session:
        assert outbox.mark_sent(session, a.id, "a", {"msgid": "1"}, T0)
        assert outbox.mark_retry(session, b.id, "a", "errcode -1", T0 + timedelta(seconds=5), in_doubt=False)
    assert claim(engine, owner="b", now=T0 + timedelta(seconds=1)) == []
    (again,) = claim(engine, owner="b", now=T0 + timedelta(seconds=5))
    assert again.id == b.id and again.attempts == 2 and not again.in_doubt
    # b dies while sending: after the lease another instance takes it over, in doubt
    (taken,) = claim(engine, owner="c", now=T0 + timedelta(seconds=36))
    assert taken.id == b.id and taken.in_doubt and taken.owner == "c"
    with transaction(engine) as session:
        assert not outbox.mark_sent(session, b.id, "b", {}, T0)  # b's late answer is not recorded
        assert outbox.mark_sent(session, b.id, "c", {}, T0)


def test_concurrent_claimers_never_share_a_row(engine):
    fill(engine, 200, user="u", prefix="x")
    for i in range(200):
        fill(engine, 1, user=f"user{i}", prefix=f"y{i}")
    seen: dict[str, list[int]] = {}

    def worker(name):
        mine = seen.setdefault(name, [])
        for _ in range(30):
            mine.extend(r.id for r in claim(engine, owner=name, batch=20))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for rows in seen.values() for i in rows]
    assert len(ids) == len(set(ids))
    with Session(engine) as session:
        user_slots = session.exec(select(SendSlot).where(SendSlot.rate_key == "wecom:user:u")).all()
    assert len(user_slots) == 30  # four claimers together kept u's minute budget


def test_inbound_take_is_a_dedupe(engine):
    event = {"text": "帮助"}
    with transaction(engine) as session:
        assert inbound.take(session, [("wecom", "k1", event), ("wecom", "k2", event)], T0) == {
            ("wecom", "k1"), ("wecom", "k2")}
    with transaction(engine) as session:
        assert inbound.take(session, [("wecom", "k1", event), ("wecom", "k3", event)], T0) == {("wecom", "k3")}


def test_a_taken_delivery_is_stored_as_the_orm_stores_it(engine):
    """``take`` writes its rows below the ORM (a prepared statement per row on SQLite, one
    array statement per round on PostgreSQL): what it stores reads back, and reads as
    text, exactly like a row the ORM wrote."""
    from storage.models import InboundDelivery

    event = {"text": "帮助 <&> \"引号\"", "nested": {"n": 1, "none": None}, "list": [1.5, True]}
    now = datetime(2026, 11, 26, 16, 0, 0, 123456, tzinfo=UTC)
    with transaction(engine) as session:
        assert inbound.take(session, [("wecom", "taken", event)], now) == {("wecom", "taken")}
        session.add(InboundDelivery(platform="wecom", delivery_key="orm", event=event, received_at=now,
                                    next_attempt_at=now))
    as_text = text("SELECT CAST(event AS TEXT), CAST(received_at AS TEXT), status, attempts, "
                   "CAST(next_attempt_at AS TEXT), owner, claimed_at, done_at, error "
                   "FROM inbound_deliveries WHERE delivery_key = :key")
    with reading(engine) as session:
        taken, orm = (session.execute(as_text, {"key": key}).one() for key in ("taken", "orm"))
        assert taken == orm
        row = session.get(InboundDelivery, ("wecom", "taken"))
        assert (row.event, row.received_at, row.next_attempt_at, row.status, row.attempts) == (
            event, now, now, "pending", 0)


def test_a_round_of_deliveries_says_which_were_new(engine):
    """A round larger than any driver's statement cache, with deliveries taken before mixed in."""
    with transaction(engine) as session:
        inbound.take(session, [("wecom", f"k{i}", {"i": i}) for i in range(0, 300, 7)], T0)
    round_ = [("wecom", f"k{i}", {"i": i}) for i in range(300)] + [("dingtalk", "k1", {})]
    with transaction(engine) as session:
        new = inbound.take(session, round_, T0)
    assert new == {("wecom", f"k{i}") for i in range(300) if i % 7} | {("dingtalk", "k1")}
    with reading(engine) as session:
        assert session.execute(text("SELECT COUNT(*) FROM inbound_deliveries")).scalar_one() == 301


def test_inbound_claims_and_leases(engine):
    with transaction(engine) as session:
        inbound.take(session, [("wecom", "k1", {}), ("wecom", "k2", {})], T0)
    with transaction(engine) as session:
        rows = inbound.claim(session, "a", T0, keys=[("wecom", "k1")])
    assert [r.delivery_key for r in rows] == ["k1"]
    with transaction(engine) as session:
        assert [r.delivery_key for r in inbound.claim(session, "b", T0 + timedelta(seconds=30))] == ["k2"]
        assert inbound.claim(session, "b", T0 + timedelta(seconds=40)) == []
    with transaction(engine) as session:  # a died: its lease runs out
        (row,) = inbound.claim(session, "b", T0 + timedelta(seconds=61))
    assert row.delivery_key == "k1" and row.attempts == 2
    with transaction(engine) as session:
        assert not inbound.finish(session, "wecom", "k1", "a", T0)
        assert inbound.finish(session, "wecom", "k1", "b", T0)


def test_inbound_claims_abandoned_first_then_oldest_due_past_a_backlog_of_done(engine):
    with transaction(engine) as session:
        inbound.take(session, [("wecom", f"done{i}", {}) for i in range(300)], T0)
        inbound.take(session, [("dingtalk", "late", {})], T0 + timedelta(seconds=5))
        inbound.take(session, [("wecom", "early", {}), ("console", "lost", {})], T0)
        inbound.take(session, [("wecom", "not-yet", {})], T0 + timedelta(hours=1))
    with transaction(engine) as session:
        done = inbound.claim(session, "a", T0, keys=[("wecom", f"done{i}") for i in range(300)])
        for row in done:
            assert inbound.finish(session, "wecom", row.delivery_key, "a", T0)
        assert [r.delivery_key for r in inbound.claim(session, "dead", T0, keys=[("console", "lost")])] == ["lost"]
    with transaction(engine) as session:  # the dead instance's lease has run out; "not-yet" is not due
        rows = inbound.claim(session, "b", T0 + timedelta(seconds=61), batch=3)
    assert [(r.platform, r.delivery_key) for r in rows] == [
        ("console", "lost"), ("wecom", "early"), ("dingtalk", "late")]
    with transaction(engine) as session:
        assert inbound.claim(session, "b", T0 + timedelta(seconds=62)) == []


@pytest.fixture
def sqlite_engine(tmp_path, sqlite_template):
    shutil.copy(sqlite_template, tmp_path / "test.db")
    engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    yield engine
    engine.dispose()


def test_an_inbound_claim_reads_through_indexes_on_sqlite(sqlite_engine):
    """Every delivery stays in the table (its key dedupes retries); a claim must not scan them all."""
    with transaction(sqlite_engine) as session:
        inbound.take(session, [("wecom", "k1", {}), ("dingtalk", "k2", {})], T0)
        plans: list[tuple[str, str]] = []  # (statement kind, plan line)
        connection = session.connection()

        def explain(conn, cursor, statement, parameters, context, executemany):
            kind = statement.lstrip().split(None, 1)[0].upper()
            if kind in ("SELECT", "UPDATE"):
                plans.extend((kind, row[3]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                                            tuple(parameters)).all())

        event.listen(connection, "before_cursor_execute", explain)
        try:
            inbound.claim(session, "a", T0)
            inbound.claim(session, "a", T0 + timedelta(seconds=61), keys=[("wecom", "k1"), ("dingtalk", "k2")])
        finally:
            event.remove(connection, "before_cursor_execute", explain)
        assert session.execute(text("SELECT COUNT(*) FROM inbound_deliveries WHERE owner = 'a'")).scalar_one() == 2
    searches = [plan for kind, plan in plans if "inbound_deliveries" in plan]
    assert searches and all(plan.startswith("SEARCH") for plan in searches), plans
    # The picks range over (status, next_attempt_at); the update finds its rows by key, not by status.
    assert all("ix_inbound_due" in plan for kind, plan in plans if kind == "SELECT" and "inbound" in plan), plans
    assert all("sqlite_autoindex_inbound_deliveries_1" in plan
               for kind, plan in plans if kind == "UPDATE" and "inbound" in plan), plans


def test_writers_of_one_process_queue_in_a_lock_on_sqlite(sqlite_engine):
    lock = writer_lock(sqlite_engine)
    assert writer_lock(sqlite_engine.execution_options(isolation_level="SERIALIZABLE")) is lock
    others = []

    def another_writer_may_start() -> None:
        others.append(lock.acquire(blocking=False))
        if others[-1]:
            lock.release()

    with transaction(sqlite_engine):
        thread = threading.Thread(target=another_writer_may_start)
        thread.start()
        thread.join()
    with reading(sqlite_engine):  # a reader takes no write lock, and no place in the queue
        thread = threading.Thread(target=another_writer_may_start)
        thread.start()
        thread.join()
    assert others == [False, True]


def test_a_write_that_must_not_wait_is_refused_while_another_writer_is_ahead(engine):
    import sqlite3

    from storage.db import Busy, transaction_now

    if engine.dialect.name != "sqlite":  # its writes wait on the network: never on an event loop
        with pytest.raises(Busy), transaction_now(engine):
            pass
        return
    with transaction_now(engine) as session:
        inbound.take(session, [("wecom", "now1", {})], T0)
    refused = []

    def try_now() -> None:
        try:
            with transaction_now(engine) as session:
                inbound.take(session, [("wecom", "never", {})], T0)
        except Busy:
            refused.append(True)

    with transaction(engine):  # a writer of this process (another thread) is ahead
        thread = threading.Thread(target=try_now)
        thread.start()
        thread.join()
    other = sqlite3.connect(engine.url.database, isolation_level=None)  # a writer in another process
    other.execute("BEGIN IMMEDIATE")
    try:
        try_now()
    finally:
        other.rollback()
        other.close()
    assert refused == [True, True]
    with transaction_now(engine) as session:
        assert session.execute(text("PRAGMA busy_timeout")).scalar_one() == BUSY_TIMEOUT_MS  # restored after BEGIN
        keys = set(session.execute(text("SELECT delivery_key FROM inbound_deliveries")).scalars())
    assert keys == {"now1"}


def test_one_refresher_at_a_time(engine):
    key = "wecom:corp:1"
    with transaction(engine) as session:
        assert tokens.current(session, key, T0, timedelta(minutes=5)) is None
        assert tokens.begin_refresh(session, key, "a", T0, timedelta(seconds=20))
    with transaction(engine) as session:
        assert not tokens.begin_refresh(session, key, "b", T0, timedelta(seconds=20))
        tokens.store(session, key, "TOKEN", T0 + timedelta(hours=2))
    with transaction(engine) as session:
        assert tokens.current(session, key, T0, timedelta(minutes=5))[0] == "TOKEN"
        assert tokens.current(session, key, T0 + timedelta(minutes=116), timedelta(minutes=5)) is None
        tokens.invalidate(session, key, "OLD")  # someone else's stale token: no effect
        assert tokens.current(session, key, T0, timedelta(minutes=5))
        tokens.invalidate(session, key, "TOKEN")
        assert tokens.current(session, key, T0, timedelta(minutes=5)) is None
    with transaction(engine) as session:  # a refresher that died is replaced after its lease
        assert tokens.begin_refresh(session, key, "a", T0, timedelta(seconds=20))
    with transaction(engine) as session:
        assert tokens.begin_refresh(session, key, "b", T0 + timedelta(seconds=21), timedelta(seconds=20))


def test_group_destination_counts_against_its_robot(engine):
    with transaction(engine) as session:
        outbox.queue(session, Destination("wecom", GROUP, "default"), Text("公告"), "g1")
    (row,) = claim(engine)
    assert row.rate_key == "wecom:group:default"


async def test_an_acknowledgement_waits_for_its_commit_but_the_loop_does_not(engine):
    """The intake never syncs the disk on the event loop. On PostgreSQL a round is awaited
    on the loop, no thread involved. On SQLite its rows are written on the loop and its
    commit runs on the intake thread: with that thread held up, the takes are not answered
    and nothing is visible (not committed), while the loop goes on; once it runs, the
    concurrent takes commit together and duplicates say so."""
    import asyncio

    from bot.chat.events import Event
    from bot.chat.intake import GroupCommit

    intake = GroupCommit(engine)
    release = threading.Event()
    intake._thread.submit(release.wait)  # the intake thread is busy until released
    try:
        at = datetime.now(UTC)
        events = [Event("wecom", f"app:msg:{n % 5}", "u", "private", Destination("wecom", USER, "u"), at, text="帮助")
                  for n in range(8)]
        takes = asyncio.gather(*(intake.take(event) for event in events))
        if engine.dialect.name == "sqlite":
            ticks = 0
            for _ in range(20):  # the loop is free while the commit waits for the thread
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 20 and not takes.done()
            with reading(engine) as session:  # written, not committed: not acknowledged either
                assert session.execute(text("SELECT COUNT(*) FROM inbound_deliveries")).scalar_one() == 0
            release.set()
        taken = await asyncio.wait_for(takes, timeout=10)
    finally:
        release.set()
        await intake.close()
    assert taken == [True] * 5 + [False] * 3
    with reading(engine) as session:
        keys = session.execute(text("SELECT delivery_key FROM inbound_deliveries ORDER BY delivery_key")).scalars()
        assert list(keys) == [f"app:msg:{n}" for n in range(5)]


async def test_the_intake_says_when_a_burst_has_let_up(engine):
    """Deferred work waits on the intake's quiet event: it resumes once no burst has been
    written for QUIET_AFTER, and waits no longer than it is allowed to."""
    import asyncio
    from dataclasses import replace

    from bot.chat.events import Event
    from bot.chat.intake import QUIET_AFTER, GroupCommit

    intake = GroupCommit(engine)
    loop = asyncio.get_running_loop()
    at = datetime.now(UTC)
    try:
        started = loop.time()
        await intake.until_quiet(5.0)  # nothing taken yet: quiet at once
        assert loop.time() - started < QUIET_AFTER
        events = [Event("wecom", f"app:burst:{n}", "u", "private", Destination("wecom", USER, "u"), at, text="帮助")
                  for n in range(6)]
        burst = loop.time()
        await asyncio.gather(*(intake.take(event) for event in events))  # a burst: written together
        assert not intake.quiet()
        await intake.until_quiet(5.0)
        assert intake.quiet() and QUIET_AFTER <= loop.time() - burst < QUIET_AFTER + 1.0
        stop, rounds = asyncio.Event(), 0

        async def sustained_load():  # bursts back to back: the intake is never quiet
            nonlocal rounds
            while not stop.is_set():
                rounds += 1
                await asyncio.gather(*(intake.take(replace(event, delivery_key=f"{event.delivery_key}:{rounds}"))
                                       for event in events))

        load = asyncio.create_task(sustained_load())
        while intake.quiet():  # until the load has begun
            await asyncio.sleep(0)
        started = loop.time()
        await intake.until_quiet(3 * QUIET_AFTER)  # at most this long: deferred work still progresses
        waited, busy = loop.time() - started, not intake.quiet()
        stop.set()
        await load
        assert busy and 3 * QUIET_AFTER <= waited < 3 * QUIET_AFTER + 1.0 and rounds > 1
    finally:
        await intake.close()


def test_rows_queued_before_subjects_get_theirs_from_their_keys(engine):
    """Migrations 0011 and 0022 backfill ``subject`` from the keys of rows already queued, so a
    card sent before the upgrade is still found (and greyed out) after it, and a message sent
    once a year is kept a year."""
    from alembic import command

    from storage.schema import alembic_config

    config = alembic_config(engine)
    command.downgrade(config, "0010")
    keys = ["task-card:12:wecom", "task-card-close:recused:1", "result-card:7:2:dingtalk:u1", "result-card-close:3",
            "approval-card:3:wecom:boss", "approval-close:5", "reminders:wecom:u1:41", "event:wecom:app:msg:1:reply",
            "draw:B1:wecom", "calendar-missing:2027:wecom:admin", "plan-behind:4:2026:dingtalk:boss"]
    try:
        with engine.begin() as connection:
            for key in keys:
                connection.execute(text(
                    "INSERT INTO outbox (platform, recipient, kind, payload, idempotency_key, status, attempts, "
                    "in_doubt, next_attempt_at, created_at) VALUES ('wecom', 'u1', 'card', '{}', :key, 'sent', 1, "
                    ":no, :at, :at)"), {"key": key, "no": False, "at": T0})
    finally:
        command.upgrade(config, "head")
    with reading(engine) as session:
        subjects = dict(session.execute(text("SELECT idempotency_key, subject FROM outbox")).all())
    assert subjects == {
        "task-card:12:wecom": "task-card:12", "result-card:7:2:dingtalk:u1": "result-card:7",
        "approval-card:3:wecom:boss": "approval-card:3", "reminders:wecom:u1:41": "reminders",
        "task-card-close:recused:1": None, "result-card-close:3": None, "approval-close:5": None,
        "event:wecom:app:msg:1:reply": None, "draw:B1:wecom": None,
        "calendar-missing:2027:wecom:admin": "yearly", "plan-behind:4:2026:dingtalk:boss": "yearly"}


def test_outbox_keys_keep_the_formats_rows_were_queued_under():
    """A key must not change across an upgrade (a message queued before it would be queued
    again); the subjects are those migrations 0011 and 0022 give older rows."""
    from bot import outbox_keys as k

    assert [k.reply("wecom", "app:msg:1", 0), k.reply("wecom", "app:msg:1", 1), k.reply("wecom", "m", 0, 2),
            k.reply("wecom", "m", 2, 0), k.clicked_card("dingtalk", "card:c:u:d"), k.failed("console", "m")] == [
        k.Key("event:wecom:app:msg:1:reply"), k.Key("event:wecom:app:msg:1:1-reply"), k.Key("event:wecom:m:reply-2"),
        k.Key("event:wecom:m:2-reply-0"), k.Key("event:dingtalk:card:c:u:d:card"), k.Key("event:console:m:failed")]
    assert k.to_group(k.draw("B1"), "wecom") == k.Key("draw:B1:wecom")
    assert k.to_person(k.recusal(4, "partner"), "wecom", "u1") == k.Key("recusal:4:partner:wecom:u1")
    assert k.to_group(k.recusal(4, "group"), "dingtalk") == k.Key("recusal:4:group:dingtalk")
    assert k.to_person(k.decided(9, "approved"), "wecom", "u1") == k.Key("decided:9:approved:wecom:u1")
    assert k.task_card(12, "wecom") == k.Key("task-card:12:wecom", "task-card:12") and k.task_card_subject(12) == \
        "task-card:12"
    assert k.result_card(7, 2, "dingtalk", "u1") == k.Key("result-card:7:2:dingtalk:u1", k.result_card_subject(7))
    assert k.approval_card(3, "wecom", "boss") == k.Key("approval-card:3:wecom:boss", k.approval_card_subject(3))
    assert [k.task_card_closed("recused", 1), k.result_card_closed(3), k.approval_card_closed(5)] == [
        k.Key("task-card-close:recused:1"), k.Key("result-card-close:3"), k.Key("approval-close:5")]
    assert k.reminder_digest("wecom:u1", 41) == k.Key("reminders:wecom:u1:41", k.REMINDERS)
    assert k.calendar_missing(2027, "wecom", "admin") == k.Key("calendar-missing:2027:wecom:admin", k.YEARLY)
    assert k.plan_behind(4, 2026, "dingtalk", "boss") == k.Key("plan-behind:4:2026:dingtalk:boss", k.YEARLY)
    text_key = k.summary("daily", "2026-12-05", "wecom", "group", "default")
    assert text_key == k.Key("summary:daily:2026-12-05:wecom:group:default")
    assert k.summary_chart(text_key) == k.Key("summary:daily:2026-12-05:wecom:group:default:chart")
    assert k.send_failed(8, "admin") == k.Key("send-failed:8:admin") and k.is_send_failed("send-failed:8:admin")
    assert k.key_of("m:1") == k.Key("m:1")


async def test_the_intake_commits_durably(engine, monkeypatch):
    """An acknowledged delivery is never resent (DingTalk's robot messages are not): the
    intake's transactions run with ``PRAGMA synchronous=FULL`` on SQLite, on the loop and
    on its thread, while other writers keep WAL's NORMAL on the same connections."""
    import asyncio

    from bot.chat import intake as intake_module
    from bot.chat.events import Event
    from bot.chat.intake import GroupCommit

    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL commits durably by default (synchronous_commit=on)")
    seen: list[int] = []
    take = inbound.take

    def spying(session, rows, at):
        seen.append(session.connection().exec_driver_sql("PRAGMA synchronous").scalar())
        return take(session, rows, at)

    monkeypatch.setattr(intake_module.inbound, "take", spying)
    intake = GroupCommit(engine)
    at = datetime.now(UTC)
    try:
        await intake.take(Event("wecom", "app:msg:loop", "u", "private", Destination("wecom", USER, "u"), at,
                                text="帮助"))
        held, release = threading.Event(), threading.Event()

        def writer_ahead():
            with writer_lock(engine):
                held.set()
                release.wait(10)

        ahead = threading.Thread(target=writer_ahead)
        ahead.start()
        held.wait(10)
        pending = asyncio.ensure_future(intake.take(  # a writer ahead: the round goes to the intake thread
            Event("wecom", "app:msg:thread", "u", "private", Destination("wecom", USER, "u"), at, text="帮助")))
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.wait_for(pending, timeout=10)
        ahead.join()
    finally:
        await intake.close()
    assert seen == [2, 2]  # FULL
    with transaction(engine) as session:
        assert session.connection().exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
