"""A chat test's tasks moved along through the service layer (as ``shuangsui batch`` and
the inspectors' own cards would), on the real clock, and the records they leave: only the
behaviour under test then goes through chat."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlmodel import Session

from bot.app import PIPELINE, SETTINGS
from bot.batches.confirmation import confirm
from bot.batches.inspection import mark_inspected
from bot.clock import bureau_today
from bot.clock import now as clock_now
from storage.db import transaction
from storage.models import Assignment, AuditEntry, Batch, Evidence, FollowUp, Result, Task
from tests.support.batches import drawn_batch, rows, team
from tests.support.wecom_bot import INSPECTOR_IDS

USER_OF = INSPECTOR_IDS  # inspector id → WeCom user id


async def drawn(app, engine, text: str = "数量=2 方式=大随机") -> tuple[str, list[Task]]:
    """A batch drawn today (its cards go out); its id and tasks."""
    batch_id = await asyncio.to_thread(drawn_batch, engine, app[SETTINGS], f"事项=A01 {text}")
    return batch_id, rows(engine, Task, Task.batch_id == batch_id)


def outsider(engine, tasks: list[Task]) -> str:
    """An inspector on none of ``tasks``."""
    on_task = {a.inspector_id for a in rows(engine, Assignment, Assignment.task_id.in_([t.id for t in tasks]))}
    return next(i for i in sorted(USER_OF) if i not in on_task)


def _service(engine, call) -> None:
    with transaction(engine) as session:
        call(session)


async def service(engine, call) -> None:
    """One service call in its own transaction, off the event loop."""
    await asyncio.to_thread(_service, engine, call)


async def confirmed(engine, task_id: int) -> None:
    for inspector in team(engine, task_id):
        await service(engine, lambda s, i=inspector: confirm(s, f"wecom:{USER_OF[i]}", task_id, i, clock_now()))


async def inspected(engine, task_id: int) -> str:
    """Confirmed by the team and marked done today; the lead inspector's id."""
    await confirmed(engine, task_id)
    lead = team(engine, task_id)[0]
    today = bureau_today()
    await service(engine, lambda s: mark_inspected(s, "test", task_id, lead, today, today, clock_now()))
    return lead


def state(engine) -> dict:
    """The workflow's records, to compare before and after something that must change nothing."""
    with Session(engine) as session:
        def of(model, *columns):
            return sorted(tuple(getattr(r, c) for c in columns) for r in session.scalars(select(model)))
        return {
            "batches": of(Batch, "id", "status"),
            "tasks": of(Task, "id", "status", "inspected_on"),
            "assignments": of(Assignment, "id", "inspector_id", "status", "answered_at", "recusal_reason"),
            "results": of(Result, "id", "status", "category", "noncooperation_case", "decided_by"),
            "follow_ups": of(FollowUp, "id", "task_id"),
            "evidence": of(Evidence, "id", "task_id", "sha256"),
            "audit": session.scalar(select(func.count()).select_from(AuditEntry)),
        }


def refusals(engine, actor: str) -> list[AuditEntry]:
    return rows(engine, AuditEntry, AuditEntry.action == "refused", AuditEntry.actor == f"wecom:{actor}")


def help_routes(app) -> list:
    """Every command the running bot registered, once each (the router its pipeline dispatches with)."""
    return app[PIPELINE].router.routes()
