"""Integrity of the records against a hostile insider (issue 17): a recusal comes too
late once the inspection is done, and what was published stays as published."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.batches.recusal import recuse
from bot.batches.results import approve, lead_unit
from bot.chat.identity import identify
from bot.refusal import Refusal
from bot.roles import Actor
from bot.texts import say
from storage.db import transaction
from storage.models import Assignment, AuditEntry, Conflict, Result, Task, Unit
from tests.support.batch_district import seed_district
from tests.support.results_district import (
    APPROVER_OF,
    NOW,
    SETTINGS,
    TODAY,
    drawn_batch,
    inspected,
    submitted,
    tasks_of,
    team,
)


@pytest.fixture
def district(engine, tmp_path):
    seed_district(engine, tmp_path)
    return engine


def snapshot(engine) -> tuple:
    with transaction(engine) as session:
        return (session.scalars(select(Assignment.status).order_by(Assignment.id)).all(),
                session.scalars(select(Task.status).order_by(Task.id)).all(),
                session.scalar(select(func.count()).select_from(Conflict)),
                session.scalar(select(func.count()).select_from(AuditEntry)))


def test_a_recusal_is_refused_once_the_task_is_inspected(district):
    """Issue 17 item 2: inspected, submitted, approved — a conflict found then is a correction."""
    batch_id = drawn_batch(district, count=3)
    first, second, third = tasks_of(district, batch_id)
    inspected(district, first.id)
    submitted(district, second.id)
    submitted(district, third.id)
    with transaction(district) as session:
        pending = session.scalars(select(Result).where(Result.task_id == third.id)).one()
        approve(session, identify(session, SETTINGS, Actor("wecom", "admin1")), pending.id, NOW)
    for task, status in ((first, "inspected"), (second, "submitted"), (third, "approved")):
        member = team(district, task.id)[1]  # not the one who entered the result
        before = snapshot(district)
        with pytest.raises(Refusal) as caught:
            with transaction(district) as session:
                recuse(session, f"wecom:{member}", task.id, member, "检查后才发现的亲属关系", TODAY, NOW)
        assert caught.value.message == "recusal_too_late" and caught.value.values["status"] == status
        assert "不能再申请回避" in caught.value.text() and "更正" in caught.value.text()
        assert snapshot(district) == before  # nobody stepped off, no conflict, no replacement
    assert say("batches", "recusal_too_late", task=1, status="approved").count("第十二条") == 1


def test_an_approval_keeps_the_inspecting_and_the_deciding_unit(district):
    """Issue 17 item 3: the units a result is published with are stored at its approval."""
    batch_id = drawn_batch(district, count=2)
    first, second = tasks_of(district, batch_id)
    decided = {}
    for task, user in ((first, None), (second, "lead-xy")):
        result_id = submitted(district, task.id)
        with transaction(district) as session:
            unit = lead_unit(session, task.id)
            approver = user or APPROVER_OF[unit]
            approve(session, identify(session, SETTINGS, Actor("wecom", approver)), result_id, NOW)
            decided[task.id] = unit
    with transaction(district) as session:
        kept = {r.task_id: (r.inspecting_unit, r.inspecting_unit_name, r.deciding_unit)
                for r in session.scalars(select(Result))}
        names = {u.id: u.name for u in session.scalars(select(Unit))}
    assert kept[first.id] == (decided[first.id], names[decided[first.id]], decided[first.id])  # its approver
    assert kept[second.id] == (decided[second.id], names[decided[second.id]], "U-XY")  # the lead office's lead
