"""The frequency cap (art. 11: 防止执法扰民) end to end in a pool: an object inspected as
often as ``[draw] frequency_cap`` allows within the window — the bureau's calendar year,
in ``[bureau] timezone``, or the last ``frequency_window_days`` days — is left out of the
next pool, unless it carries an exempt risk tag (issue 19: windows and exemptions)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.batches import create, draw, publish
from bot.rules.arguments import parse_arguments
from bot.settings import Settings
from storage.db import transaction
from storage.models import Batch, Stratum
from storage.sealing import new_key
from tests.support.batch_district import seed_district

TODAY = date(2026, 11, 26)
DRAWN = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
ABNORMAL = 8  # n % 7 == 0 for n ≤ 60 (tests/support/batch_district.py)
WITH_COMPLAINTS = 48  # n % 5 != 0


def settings_with(timezone: str = "Asia/Shanghai", **draw_settings) -> Settings:
    return Settings(security={"keys": [new_key()]}, bureau={"default_lead": "U-XY", "timezone": timezone},
                    draw=draw_settings)


@pytest.fixture
def inspected_all(engine, tmp_path):
    """Every one of the district's 60 objects drawn once, in a batch drawn at ``DRAWN``."""
    seed_district(engine, tmp_path)
    settings = settings_with()
    with transaction(engine) as session:
        args = parse_arguments("名称=全部 事项=A01 数量=60 方式=大随机 截止=2027-12-31", create.NEW_KEYS)
        batch_id = create.new_batch(session, settings, "admin", args, TODAY).batch.id
    with transaction(engine) as session:
        publish.publish(session, settings, "admin", parse_arguments(f"批次={batch_id}", publish.PUBLISH_KEYS), DRAWN)
    with transaction(engine) as session:
        draw.draw(session, settings, "admin", parse_arguments(f"批次={batch_id}", draw.DRAW_KEYS), DRAWN)
    return engine, batch_id


def pool_now(engine, settings: Settings, now: datetime) -> int:
    """The size of the pool a new batch over the whole district gets, published at ``now``."""
    with transaction(engine) as session:
        args = parse_arguments("名称=下一批 事项=A01 数量=1 方式=大随机 截止=2027-12-31", create.NEW_KEYS)
        batch_id = create.new_batch(session, settings, "admin", args, TODAY).batch.id
    with transaction(engine) as session:
        publish.publish(session, settings, "admin", parse_arguments(f"批次={batch_id}", publish.PUBLISH_KEYS), now)
    with transaction(engine) as session:
        return session.exec(select(Stratum).where(Stratum.batch_id == batch_id)).scalar_one().pool_size


def test_exempt_risk_tags_stay_in_the_pool(inspected_all):
    engine, _ = inspected_all
    later = DRAWN + timedelta(days=1)
    assert pool_now(engine, settings_with(frequency_cap=1), later) == 0
    assert pool_now(engine, settings_with(frequency_cap=2), later) == 60  # inspected once only
    assert pool_now(engine, settings_with(frequency_cap=1, frequency_exempt=["abnormal"]), later) == ABNORMAL
    assert pool_now(engine, settings_with(frequency_cap=1, frequency_exempt=[" Abnormal "]), later) == ABNORMAL
    assert pool_now(engine, settings_with(frequency_cap=1, frequency_exempt=["complaints", "abnormal"]),
                    later) == len({n for n in range(1, 61) if n % 5 or n % 7 == 0})
    assert pool_now(engine, settings_with(frequency_cap=1, frequency_exempt=["complaints"]), later) == WITH_COMPLAINTS
    assert pool_now(engine, settings_with(frequency_cap=0), later) == 60  # no cap


def test_a_window_of_days_counts_back_from_publication(inspected_all):
    engine, _ = inspected_all
    settings = settings_with(frequency_cap=1, frequency_window_days=30)
    assert pool_now(engine, settings, DRAWN + timedelta(days=29)) == 0
    assert pool_now(engine, settings, DRAWN + timedelta(days=31)) == 60
    assert pool_now(engine, settings_with(frequency_cap=1), DRAWN + timedelta(days=31)) == 0  # still this year


def test_the_calendar_year_is_the_bureaus_own(inspected_all):
    """Drawn at 2026-12-31 17:00 UTC — already 2027-01-01 01:00 in Shanghai: in 2027 the
    draw counts against the cap for a bureau on Asia/Shanghai, not for one on UTC."""
    engine, batch_id = inspected_all
    with transaction(engine) as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(
            drawn_at=datetime(2026, 12, 31, 17, 0, tzinfo=UTC)))
    january = datetime(2027, 1, 10, 2, 0, tzinfo=UTC)
    assert pool_now(engine, settings_with(frequency_cap=1), january) == 0
    assert pool_now(engine, settings_with("UTC", frequency_cap=1), january) == 60
    assert pool_now(engine, settings_with("America/New_York", frequency_cap=1), january) == 60
