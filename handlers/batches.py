"""Batches in chat (SPEC §5): 新建抽查 追加分层 公示方案 抽取 撤销 for admins (art. 10–12),
进度 and 核验 for anyone with a role. The service calls are those of ``shuangsui batch``."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session

from bot import verifier
from bot.batches import commands
from bot.batches.export import export
from bot.batches.progress import progress
from bot.chat.arguments import arguments, arguments_text
from bot.chat.context import Context
from bot.chat.identity import ADMIN
from bot.chat.router import EVERYONE, Router, refuse
from bot.clock import bureau_today
from bot.refusal import Refusal
from bot.texts import say
from storage.calendar import load_calendar

router = Router()


def _batch_command(action: str, name: str) -> Callable[[Context], None]:
    def handler(ctx: Context) -> None:
        text = arguments_text(ctx)
        try:
            with ctx.savepoint():  # a refusal undoes the call's writes, not its trace below
                done = commands.run(ctx.session, ctx.settings, ctx.actor_label, action, text, ctx.now, ctx.prepared)
        except Refusal as refusal:
            # Every draw attempt leaves a trace (DRAW.md §5): audited after the rollback,
            # committed with the answer.
            commands.audit_refusal(ctx.session, ctx.actor_label, action, text, refusal)
            refuse(ctx, refusal, name)
            return
        ctx.reply("\n".join(done.lines))
    handler.__name__ = f"batch_{action}"
    return handler


def _draw_before(ctx: Context) -> object:
    """抽取's long part — every pool scored, the tasks matched — in a reading session
    before the write transaction (``Router.prepare``); the handler commits it if the
    batch is still as it was read, and works again otherwise."""
    return commands.prepare(ctx.session, ctx.settings, "draw", arguments_text(ctx), ctx.now)


for _action, _names in (("new", ("新建抽查", "new")), ("stratum", ("追加分层", "stratum")),
                        ("publish", ("公示方案", "publish")), ("draw", ("抽取", "draw")),
                        ("cancel", ("撤销", "cancel"))):
    router.command(*_names, roles={ADMIN}, prepare=_draw_before if _action == "draw" else None)(
        _batch_command(_action, _names[0]))


@router.command("进度", "status", roles=EVERYONE)
def show_progress(ctx: Context) -> None:
    batch_id = arguments(ctx, {"batch"}).get("batch")
    today = bureau_today(ctx.settings.bureau.timezone)
    found = progress(ctx.session, load_calendar(ctx.session), today, batch_id)
    ctx.reply(say("progress", "report", batches=found))


def _verify(session: Session, batch_id: str) -> str:
    """Recompute the draw from its record, exactly as a citizen would (DRAW.md §7): the answer."""
    with tempfile.TemporaryDirectory() as directory:
        export(session, batch_id, Path(directory), internal=True)
        try:
            verdict = verifier.verify(Path(directory))
            return say("progress", "verified", batch=batch_id, verdict=verdict)
        except verifier.Mismatch as mismatch:
            return say("progress", "mismatch", batch=batch_id, detail=str(mismatch))


def _verify_before(ctx: Context) -> str | None:
    """The long part, before the write transaction (``Router.prepare``: a reading session)."""
    batch_id = arguments(ctx, {"batch"}).get("batch")
    return _verify(ctx.session, batch_id) if batch_id else None


@router.command("核验", "verify", roles=EVERYONE, prepare=_verify_before)
def verify_draw(ctx: Context) -> None:
    """Recompute the draw from its record; the pipeline has done it already, in a reading
    session, so the write transaction only answers (a refusal is met here again)."""
    batch_id = arguments(ctx, {"batch"}).get("batch")
    if not batch_id:
        raise Refusal("missing_argument", key="batch")
    ctx.reply(ctx.prepared if isinstance(ctx.prepared, str) else _verify(ctx.session, batch_id))
