"""The small district of ``batch_district`` walked through the service layer (no chat):
the bureau's roles, the dates of a draw and of an inspection five days later, and the steps
a task goes through before its result is judged — drawn, confirmed, inspected, submitted.
Shared by the rules of results (tests/storage/test_results_rules.py), the sealed
declarations and the public district."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from bot.batches import create, draw, publish
from bot.batches.confirmation import confirm
from bot.batches.inspection import mark_inspected
from bot.batches.results import Entry, submit
from bot.rules.arguments import parse_arguments
from bot.settings import Settings
from storage.db import transaction
from storage.models import Assignment, Task
from storage.sealing import new_key

TODAY = date(2026, 11, 26)  # the draw day
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
LATER = TODAY + timedelta(days=5)  # "today" when the inspection is marked done
LATER_NOW = NOW + timedelta(days=5)
UNITS = ("S-DC", "S-XC")
SETTINGS = Settings(
    security={"keys": [new_key()]}, bureau={"default_lead": "U-XY"},
    roles={"admins": ["admin1"], "supervisors": ["boss"],
           "units": {"S-DC": {"approvers": ["apr-dc"], "leads": ["lead-dc"], "accountability": ["acc-dc"]},
                     "S-XC": {"approvers": ["apr-xc"], "leads": ["lead-xc"], "accountability": ["acc-xc"]},
                     "U-XY": {"leads": ["lead-xy"]}}})
APPROVER_OF = {"S-DC": "apr-dc", "S-XC": "apr-xc"}


def drawn_batch(engine, count: int = 2, mode: str = "大随机", extra: str = "") -> str:
    """A batch created, published and drawn on TODAY; returns its id."""
    with transaction(engine) as session:
        args = parse_arguments(f"名称=规则测试 事项=A01 数量={count} 方式={mode} 截止=2026-12-31 {extra}".strip(),
                               create.NEW_KEYS)
        batch_id = create.new_batch(session, SETTINGS, "admin", args, TODAY).batch.id
    with transaction(engine) as session:
        publish.publish(session, SETTINGS, "admin", parse_arguments(f"批次={batch_id}", publish.PUBLISH_KEYS), NOW)
    with transaction(engine) as session:
        draw.draw(session, SETTINGS, "admin", parse_arguments(f"批次={batch_id}", draw.DRAW_KEYS), NOW)
    return batch_id


def tasks_of(engine, batch_id: str) -> list[Task]:
    with transaction(engine) as session:
        return list(session.scalars(select(Task).where(Task.batch_id == batch_id).order_by(Task.position)))


def team(engine, task_id: int, *, standing: bool = True) -> list[str]:
    """The task's inspector ids in the order accepted (without the recused ones)."""
    with transaction(engine) as session:
        found = session.scalars(select(Assignment).where(Assignment.task_id == task_id)
                                .order_by(Assignment.position)).all()
        return [a.inspector_id for a in found if not standing or a.status != "recused"]


def confirm_all(engine, task_id: int) -> None:
    for inspector in team(engine, task_id):
        with transaction(engine) as session:
            confirm(session, f"wecom:{inspector}", task_id, inspector, NOW)


def inspected(engine, task_id: int, on: date = LATER) -> str:
    """Confirm the whole team and mark the inspection done; returns the lead inspector."""
    confirm_all(engine, task_id)
    lead = team(engine, task_id)[0]
    with transaction(engine) as session:
        mark_inspected(session, f"wecom:{lead}", task_id, lead, on, LATER, LATER_NOW)
    return lead


def submitted(engine, task_id: int, entry: Entry = Entry(category=1, signed=True)) -> int:
    """An inspected task with a result waiting for approval; returns the result id."""
    lead = inspected(engine, task_id)
    with transaction(engine) as session:
        return submit(session, f"wecom:{lead}", task_id, lead, entry, LATER_NOW).id
