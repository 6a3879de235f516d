"""Art. 11: a plan's frequency is used. ``plan show``, the public plans page and the
summaries say how many batches of the year's plan were drawn against it, and in December
the planning office of a plan still behind is reminded, once (the reminder sweep)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from bot.batches import commands
from bot.plans import import_plans, show_plan
from bot.public.site import Site
from bot.reminders.sweep import sweep
from bot.reports.summary import send_summaries
from bot.settings import Settings
from bot.texts import say
from storage.db import transaction
from storage.models import OutboxMessage
from storage.retention import purge
from storage.sealing import new_key
from tests.support.batch_district import PLANS, seed_district

TZ = ZoneInfo("Asia/Shanghai")


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), TZ).astimezone(UTC)


@pytest.fixture
def settings():
    return Settings(console={"enabled": True}, security={"keys": [new_key()]}, bureau={"default_lead": "U-XY"},
                    roles={"admins": ["console:admin"], "supervisors": ["boss"],
                           "units": {"U-XY": {"leads": ["lead-xy"]}}})


@pytest.fixture
def plan_half_done(engine, tmp_path, settings):
    """Plan 1 (twice a year): one batch drawn, one left in draft, one drawn and then cancelled."""
    seed_district(engine, tmp_path)
    path = tmp_path / "plans.csv"
    path.write_text(PLANS.replace(",10,1,", ",10,2,"), encoding="utf-8")
    assert import_plans(engine, path, actor="test", reason=None, today=date(2026, 1, 5)).ok
    moment = at(date(2026, 11, 2))
    made = []
    for name in ("第一批", "草稿", "撤销的"):
        with transaction(engine) as session:
            made.append(commands.run(session, settings, "admin", "new",
                                     f"名称={name} 计划=1 方式=大随机 截止=2026-12-31", moment).batch_id)
    for batch in (made[0], made[2]):
        for action in ("publish", "draw"):
            with transaction(engine) as session:
                commands.run(session, settings, "admin", action, f"批次={batch}", moment)
    with transaction(engine) as session:
        commands.run(session, settings, "admin", "cancel", f"批次={made[2]} 原因=重复", moment)
    return made


def plan_reminders(engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("plan-behind:%"))))


def test_plan_show_public_page_and_summary_count_drawn_batches(engine, settings, plan_half_done):
    with Session(engine) as session:
        view = show_plan(session, 1)
        assert view.drawn == 1  # the draft and the cancelled batch do not count
        assert "执行情况：已抽取 1 批 / 计划每年 2 次（还差 1 次）" in say("plans", "detail", view=view)
        page = Site(session, settings).get("plans.html").body.decode()
    assert "<dt>执行情况</dt><dd>已抽取 1 批 / 计划 2 次</dd>" in page
    with transaction(engine) as session:
        send_summaries(session, settings, "daily", at(date(2026, 11, 3), 17))
    with Session(engine) as session:
        summaries = session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("summary:%"))
                                 .where(~OutboxMessage.idempotency_key.like("%:chart"))).all()  # not the chart
    assert summaries
    for summary in summaries:
        text = summary.payload["message"]["text"]
        assert "年度计划执行" in text and "1「餐饮企业年度抽查」1/2（差 1）" in text


def test_the_planning_office_is_reminded_in_december_once(engine, settings, plan_half_done):
    sweep(engine, settings, at(date(2026, 11, 30)))
    assert plan_reminders(engine) == []  # not before December
    sweep(engine, settings, at(date(2026, 12, 5)))  # a Saturday: not a working day
    assert plan_reminders(engine) == []
    sent = sweep(engine, settings, at(date(2026, 12, 1)))
    reminders = plan_reminders(engine)
    assert [(m.recipient, m.platform) for m in reminders] == [("lead-xy", "console")]
    assert any(d.destination.address == "lead-xy" for d in sent)
    text = reminders[0].payload["message"]["text"]
    assert "计划每年抽查 2 次" in text and "只有 1 批" in text and "还差 1 次" in text and "新建抽查 计划=1" in text
    sweep(engine, settings, at(date(2026, 12, 2)))
    sweep(engine, settings, at(date(2026, 12, 2)))
    assert len(plan_reminders(engine)) == 1  # idempotent: once per plan, year and person


def test_the_december_reminder_stays_once_after_the_retention_job(engine, settings, plan_half_done):
    """Sent messages go after ``[retention] days``; the one whose key is the only record
    that a plan was reminded this year stays, so a later sweep does not remind again."""
    sweep(engine, settings, at(date(2026, 12, 1)))
    first = [m.id for m in plan_reminders(engine)]
    with transaction(engine) as session:
        for message in session.exec(select(OutboxMessage)):
            message.status, message.sent_at = "sent", at(date(2026, 12, 1))
            session.add(message)
    with transaction(engine) as session:
        purged = purge(session, at(date(2026, 12, 31)), days=7)
    assert purged is not None and purged.outbox > 0  # the other sent messages went
    sweep(engine, settings, at(date(2026, 12, 31)))
    assert [m.id for m in plan_reminders(engine)] == first  # the same row: nothing queued again
    with transaction(engine) as session:  # a year on, it goes too
        purge(session, at(date(2028, 1, 3)), days=7)
    assert plan_reminders(engine) == []


def test_a_plan_on_track_is_not_reminded_and_without_leads_the_admins_are(engine, tmp_path, settings):
    seed_district(engine, tmp_path)
    path = tmp_path / "plans.csv"
    path.write_text(PLANS.replace("U-XY,餐饮企业年度抽查", "S-DC,东城计划"), encoding="utf-8")  # no leads configured
    assert import_plans(engine, path, actor="test", reason=None, today=date(2026, 1, 5)).ok
    sweep(engine, settings, at(date(2026, 12, 1)))
    assert [m.recipient for m in plan_reminders(engine)] == ["admin"]
    with transaction(engine) as session:
        batch = commands.run(session, settings, "admin", "new", "名称=补 计划=1 方式=大随机 截止=2026-12-31",
                             at(date(2026, 12, 1))).batch_id
    for action in ("publish", "draw"):
        with transaction(engine) as session:
            commands.run(session, settings, "admin", action, f"批次={batch}", at(date(2026, 12, 1)))
    with Session(engine) as session:
        assert show_plan(session, 1).drawn == 1
        assert "还差" not in say("plans", "detail", view=show_plan(session, 1))
