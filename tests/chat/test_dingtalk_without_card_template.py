"""Issue 19 item 13: DingTalk without ``[dingtalk] card_template_id`` cannot show cards, so a
task notice goes as a private text naming the command twins of its buttons (SPEC §5),
rather than failing at the platform; an inspector answers it by command. (``serve``'s
warning at start is in tests/operations/test_app.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from bot.batches import commands
from bot.batches.confirmation import confirm
from bot.batches.notices import close_task_card
from bot.settings import Settings
from storage.db import transaction
from storage.models import Assignment, OutboxMessage
from storage.sealing import new_key
from tests.support.batch_district import seed_district
from tests.support.dingtalk_bot import link_inspectors

NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
DINGTALK = {"app_key": "k", "app_secret": "s", "robot_code": "k", "api_base": "http://127.0.0.1:9"}


def draw_one(engine, tmp_path, settings: Settings) -> None:
    seed_district(engine, tmp_path)
    link_inspectors(engine)
    with transaction(engine) as session:
        batch = commands.run(session, settings, "admin", "new", "名称=钉钉 事项=A01 数量=2 方式=大随机 截止=2026-12-31",
                             NOW).batch_id
    for action in ("publish", "draw"):
        with transaction(engine) as session:
            commands.run(session, settings, "admin", action, f"批次={batch}", NOW)


def task_notices(engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("task-card:%"))))


@pytest.mark.parametrize("template", ["", "shuangsui_task.schema"])
def test_task_notices_fall_back_to_text_with_the_command_twins(engine, tmp_path, template):
    settings = Settings(dingtalk={**DINGTALK, "card_template_id": template}, security={"keys": [new_key()]},
                        bureau={"default_lead": "U-XY"})
    draw_one(engine, tmp_path, settings)
    notices = task_notices(engine)
    assert len(notices) == 4 and {n.platform for n in notices} == {"dingtalk"}  # two tasks, two inspectors each
    if template:
        assert {n.kind for n in notices} == {"card"}
        return
    assert {n.kind for n in notices} == {"text"}
    with Session(engine) as session:
        assignment = session.exec(select(Assignment).order_by(Assignment.id)).first()
    text = next(n for n in notices if n.idempotency_key.startswith(f"task-card:{assignment.id}:"))
    body = text.payload["message"]["text"]
    assert f"确认 任务={assignment.task_id}" in body and f"回避 任务={assignment.task_id} 原因=" in body
    assert "检查对象" in body or "对象" in body
    with transaction(engine) as session:  # the twin works: the card was never needed, nor is there one to close
        done = confirm(session, f"dingtalk:{assignment.inspector_id}", assignment.task_id, assignment.inspector_id,
                       NOW)
        close_task_card(session, settings, done.assignment, "已确认", "confirmed")
        assert session.get(Assignment, assignment.id).status == "confirmed"
    with Session(engine) as session:
        closing = session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("task-card-close:%")))
        assert list(closing) == []
