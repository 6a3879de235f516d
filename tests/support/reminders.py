"""What the reminder tests share: the bureau's clock, the roles that receive reminders, and
a drawn batch whose tasks were inspected (due 2026-10-16, inspected 2026-09-29)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import select

from bot.batches import commands
from bot.batches.confirmation import confirm
from bot.batches.inspection import mark_inspected, team_of
from bot.settings import Settings
from storage.db import transaction
from storage.models import Task
from storage.sealing import new_key
from tests.support.batch_district import seed_district

TZ = ZoneInfo("Asia/Shanghai")
ROLES = {"admins": ["console:admin"],
         "units": {"S-DC": {"approvers": ["approver-dc"], "accountability": ["contact-dc"]},
                   "S-XC": {"approvers": ["approver-xc"], "accountability": ["contact-xc"]},
                   "U-XY": {"leads": ["lead-xy"]}}}


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """``day`` at ``hour:minute`` in the bureau's time zone, as UTC."""
    return datetime.combine(day, time(hour, minute), TZ).astimezone(UTC)


def reminder_settings() -> Settings:
    return Settings(console={"enabled": True}, roles=ROLES, security={"keys": [new_key()]},
                    bureau={"default_lead": "U-XY"})


def inspected_batch(engine: Engine, tmp_path: Path, settings: Settings) -> str:
    """A drawn batch (due 2026-10-16) whose three tasks were inspected on 2026-09-29."""
    seed_district(engine, tmp_path)
    drawn_at = at(date(2026, 9, 25))
    with transaction(engine) as session:
        batch = commands.run(session, settings, "admin", "new",
                             "名称=国庆前抽查 事项=A01 数量=3 方式=交叉随机 截止=2026-10-16", drawn_at).batch_id
    for action in ("publish", "draw"):
        with transaction(engine) as session:
            commands.run(session, settings, "admin", action, f"批次={batch}", drawn_at)
    with transaction(engine) as session:
        tasks = session.exec(select(Task).where(Task.batch_id == batch)).all()
        for task in tasks:
            for a in team_of(session, task.id):
                confirm(session, "t", task.id, a.inspector_id, drawn_at)
        for task in tasks:
            lead = team_of(session, task.id)[0].inspector_id
            mark_inspected(session, "t", task.id, lead, date(2026, 9, 29), date(2026, 9, 29), at(date(2026, 9, 29)))
    assert batch is not None
    return batch
