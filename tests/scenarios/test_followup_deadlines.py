"""A follow-up's deadline on the reminder ladder (issue 18 §1; art. 18, 25), with a frozen
clock: due ``[followups] days`` working days after the publication (across the National
Day holiday), owed by the receiving unit's leads, escalated to the batch's lead office
and then to the receiving unit's accountability contact, and met once 处置 closes it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from bot.batches import commands
from bot.batches.followups import dispose
from bot.chat.identity import ADMIN, Identity
from bot.reminders.sweep import sweep
from bot.roles import Actor
from bot.settings import Settings
from storage.calendar import load_calendar
from storage.db import transaction
from storage.models import Deadline, FollowUp, OutboxMessage, Task
from storage.sealing import new_key
from tests.support.batch_district import seed_district
from tests.support.reminders import at

ROLES = {"admins": ["console:admin"],
         "units": {"S-DC": {"leads": ["lead-dc"], "approvers": ["approver-dc"], "accountability": ["contact-dc"]},
                   "S-XC": {"approvers": ["approver-xc"], "accountability": ["contact-xc"]},
                   "U-XY": {"leads": ["lead-xy"]}}}
PUBLISHED = date(2026, 9, 29)


@pytest.fixture
def settings():
    return Settings(console={"enabled": True}, roles=ROLES, security={"keys": [new_key()]},
                    bureau={"default_lead": "U-XY"}, followups={"days": 20})


@pytest.fixture
def handed_over(engine, tmp_path, settings) -> int:
    """A batch drawn on 2026-09-25 (due 2027, so its inspections stay quiet), one task's
    result published on 2026-09-29 and handed over to S-DC; the task id."""
    seed_district(engine, tmp_path)
    drawn_at = at(date(2026, 9, 25))
    with transaction(engine) as session:
        batch = commands.run(session, settings, "admin", "new",
                             "名称=后续处置期限 事项=A01 数量=1 方式=大随机 截止=2027-06-30", drawn_at).batch_id
    for action in ("publish", "draw"):
        with transaction(engine) as session:
            commands.run(session, settings, "admin", action, f"批次={batch}", drawn_at)
    with transaction(engine) as session:
        task = session.exec(select(Task).where(Task.batch_id == batch)).one()
        session.add(FollowUp(task_id=task.id, kind="handover", target="S-DC", abnormal_list=True,
                             created_by="t", created_at=at(PUBLISHED, 15)))
        assert task.id is not None
        return task.id


def followup_texts(engine, recipient: str) -> list[str]:
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("reminders:%"),
                                                        OutboxMessage.recipient == recipient)
                            .order_by(OutboxMessage.id)).all()
    return [m.payload["message"]["text"] for m in rows if "后续处置" in m.payload["message"]["text"]]


def test_the_follow_up_deadline_climbs_the_ladder_and_is_met_when_closed(engine, settings, handed_over):
    with Session(engine) as session:
        calendar = load_calendar(session)
    due = calendar.working_days_after(PUBLISHED, 20).day
    sweep(engine, settings, at(due))
    with Session(engine) as session:
        (deadline,) = session.exec(select(Deadline).where(Deadline.kind == "followup")).all()
    assert (deadline.due, deadline.unit_id, deadline.owed_by, deadline.task_id) == (
        due, "S-DC", ["receivers:S-DC"], handed_over)
    (owner,) = followup_texts(engine, "lead-dc")  # the receiving unit's lead owes it
    assert f"处置 任务={handed_over}" in owner and str(due) in owner
    assert not followup_texts(engine, "approver-dc")  # leads first: the approvers only without leads
    day = due
    for _ in range(3):
        day = calendar.next_working_day(day + timedelta(days=1)).day
        sweep(engine, settings, at(day))
    assert any("抄送牵头科室" in t for t in followup_texts(engine, "lead-xy"))  # the batch's lead office
    (contact,) = followup_texts(engine, "contact-dc")  # three working days overdue: the unit's contact
    assert "报问责联系人" in contact and not followup_texts(engine, "contact-xc")

    admin = Identity(Actor("console", "admin"), frozenset({ADMIN}))
    with transaction(engine) as session:
        dispose(session, settings, admin, handed_over, "列入异常名录", None, None, None, day, at(day, 11))
    before = len(followup_texts(engine, "lead-dc"))
    sweep(engine, settings, at(calendar.next_working_day(day + timedelta(days=1)).day))
    with Session(engine) as session:
        assert session.get(Deadline, deadline.id).status == "met"
    assert len(followup_texts(engine, "lead-dc")) == before  # no more reminders
