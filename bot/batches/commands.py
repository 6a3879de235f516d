"""The batch commands (新建抽查 追加分层 公示方案 抽取 撤销) as one service call each,
the same from chat and from ``shuangsui batch`` (SPEC §3, §5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot.batches import create, draw, lifecycle, publish
from bot.batches.records import strata_of
from bot.clock import bureau_date
from bot.refusal import Refusal
from bot.rules.arguments import ArgumentError, parse_arguments
from bot.settings import Settings
from bot.texts import say

KEYS = {"new": create.NEW_KEYS, "stratum": create.STRATUM_KEYS, "publish": publish.PUBLISH_KEYS,
        "draw": draw.DRAW_KEYS, "cancel": lifecycle.CANCEL_KEYS}


@dataclass(frozen=True)
class Done:
    """What changed, as lines for a person; ``batch_id`` of the batch concerned."""

    lines: list[str]
    batch_id: str


def run(session: Session, settings: Settings, actor: str, action: str, text: str, now: datetime,
        prepared: object = None) -> Done:
    """Carry out ``action`` with its ``key=value`` arguments; a Refusal changes nothing.
    ``prepared``: what ``prepare`` worked out before the write transaction, if anything."""
    try:
        arguments = parse_arguments(text, KEYS[action])
    except ArgumentError as exc:
        raise Refusal("bad_arguments", problem=exc.problem, subject=exc.subject, allowed=exc.allowed) from None
    today = bureau_date(now, settings.bureau.timezone)
    if action == "new":
        made = create.new_batch(session, settings, actor, arguments, today, now)
        return Done([say("batches", "created", batch=made.batch, size=made.pool_size, capped=made.capped)],
                    made.batch.id)
    if action == "stratum":
        made = create.add_stratum(session, actor, arguments, settings, now)
        return Done([say("batches", "stratum_added", batch=made.batch, stratum=made.stratum, size=made.pool_size,
                         capped=made.capped)], made.batch.id)
    if action == "publish":
        batch = publish.publish(session, settings, actor, arguments, now)
        return Done(say("batches", "published", batch=batch, strata=strata_of(session, batch.id)).splitlines(),
                    batch.id)
    if action == "draw":
        drawn = draw.draw(session, settings, actor, arguments, now,
                          prepared if isinstance(prepared, draw.Prepared) else None)
        return Done(say("batches", "drawn", drawn=drawn).splitlines(), drawn.batch.id)
    batch = lifecycle.cancel(session, actor, arguments, now)
    return Done([say("batches", "cancelled", batch=batch)], batch.id)


def prepare(session: Session, settings: Settings, action: str, text: str, now: datetime) -> object:
    """An action's long read-only work, done before its write transaction: the draw's
    selection and matching (``draw.prepare``); None for the others."""
    return draw.prepare(session, settings, text, now) if action == "draw" else None


def audit_refusal(session: Session, actor: str, action: str, text: str, refusal: Refusal) -> None:
    """Leave the trace of a refused ``action`` that must leave one: every draw attempt
    (DRAW.md §5). Call it after the refused call's writes were undone, in a transaction
    that commits."""
    if action == "draw":
        draw.record_refusal(session, actor, text, refusal)
