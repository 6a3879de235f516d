"""A send's rate slots count from the latest it can reach the platform until its answer
settles them (issue 20: the budget in force is the platform's own window, not one a
request timeout longer) — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from bot.outbound import USER, Destination, Text
from storage import outbox
from storage.db import transaction
from storage.models import RateHold, SendSlot
from storage.outbox import RateLimit

T0 = datetime.now(UTC) + timedelta(days=1)  # rows queued during the run are due by then
WINDOW = timedelta(seconds=61)
MEMBER = (RateLimit(30, WINDOW),)
REACH = timedelta(seconds=10)


def limits(rate_key: str):
    return MEMBER if ":user:" in rate_key else ()


def fill(engine, n: int, user: str = "busy") -> None:
    with transaction(engine) as session:
        outbox.queue_many(session, [(Destination("wecom", USER, user), Text(f"第{i}条"), f"m:{user}:{i}")
                                    for i in range(n)])


def claim(engine, now: datetime, reserved=None):
    with transaction(engine) as session:
        return outbox.claim(session, "a", now, limits, reach=REACH, reserved=reserved)


def slot_times(engine) -> list[datetime]:
    with Session(engine) as session:
        found = session.exec(select(SendSlot.at).where(SendSlot.rate_key == "wecom:user:busy")).all()
    return sorted(at if at.tzinfo else at.replace(tzinfo=UTC) for at in found)


def test_a_claimed_send_counts_from_its_reach_until_its_answer_settles_it(engine):
    fill(engine, 70)
    reserved: dict = {}
    first = claim(engine, T0, reserved)
    assert len(first) == 30
    assert sorted(reserved) == [row.id for row in first]
    assert all([key for _, key in reserved[row.id]] == ["wecom:user:busy"] for row in first)  # the app: no limits
    assert slot_times(engine) == [T0 + REACH] * 30  # the latest these can reach the platform
    with Session(engine) as session:
        assert session.exec(select(RateHold.rate_key)).all() == ["wecom:user:busy"]
    # Unsettled, the budget frees only a window after the latest they could have landed.
    assert claim(engine, T0 + WINDOW + timedelta(seconds=1)) == []

    answered = T0 + timedelta(seconds=1)
    with transaction(engine) as session:
        outbox.settle(session, [slot for row in first for slot in reserved[row.id]], answered)
    assert slot_times(engine) == [answered] * 30
    with Session(engine) as session:
        assert session.exec(select(RateHold)).all() == []  # looked at again by the next claim
    assert claim(engine, answered + WINDOW - timedelta(seconds=1)) == []  # the platform's window still holds
    assert len(claim(engine, answered + WINDOW + timedelta(seconds=1))) == 30


def test_settling_moves_only_the_answered_sends_slots(engine):
    fill(engine, 3)
    reserved: dict = {}
    rows = claim(engine, T0, reserved)
    with transaction(engine) as session:
        outbox.settle(session, [slot for row in rows[:2] for slot in reserved[row.id]], T0 + timedelta(seconds=2))
    assert slot_times(engine) == [T0 + timedelta(seconds=2)] * 2 + [T0 + REACH]
