"""Batches made through the service layer, as a chat test's set-up, and the rows they leave."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session

from bot.batches import create, draw, publish
from bot.clock import bureau_today
from bot.clock import now as clock_now
from bot.rules.arguments import parse_arguments
from bot.settings import Settings
from storage.db import transaction
from storage.models import Assignment


def rows(engine, model, *where) -> list:
    """The rows of ``model`` matching ``where``, in primary-key order."""
    with Session(engine) as session:
        return list(session.scalars(select(model).where(*where).order_by(*model.__table__.primary_key.columns)))


def team(engine, task_id: int) -> list[str]:
    """The task's standing inspectors (ids), lead first."""
    found = rows(engine, Assignment, Assignment.task_id == task_id, Assignment.status != "recused")
    return [a.inspector_id for a in sorted(found, key=lambda a: a.position)]


def published_batch(engine, settings: Settings, text: str, name: str = "命令测试") -> str:
    """A batch created today with ``text`` (SPEC §5 arguments), due in 60 days, published."""
    now, today = clock_now(), bureau_today(settings.bureau.timezone)
    due = (today + timedelta(days=60)).isoformat()
    with transaction(engine) as session:
        args = parse_arguments(f"名称={name} 截止={due} {text}", create.NEW_KEYS)
        batch_id = create.new_batch(session, settings, "admin", args, today).batch.id
    with transaction(engine) as session:
        publish.publish(session, settings, "admin", parse_arguments(f"批次={batch_id}", publish.PUBLISH_KEYS), now)
    return batch_id


def drawn_batch(engine, settings: Settings, text: str, name: str = "命令测试") -> str:
    """A batch as ``published_batch``, drawn: its cards go out."""
    batch_id = published_batch(engine, settings, text, name)
    with transaction(engine) as session:
        draw.draw(session, settings, "admin", parse_arguments(f"批次={batch_id}", draw.DRAW_KEYS), clock_now())
    return batch_id
