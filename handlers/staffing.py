"""Staffing that cannot dead-end (issue 18 §2; art. 12, 14): 补员 (DRAW.md §6's pass on
today's directory), 指派 (a named qualified inspector by hand, private, reason sealed),
结束任务 (closed as not inspected) and 协助 (the specialist assisting a task that needs one)."""

from __future__ import annotations

from bot.batches import staffing, staffing_notices
from bot.chat.arguments import arguments, task_of
from bot.chat.context import Context
from bot.chat.identity import ADMIN, LEAD
from bot.chat.router import Router
from bot.clock import bureau_today
from bot.refusal import Refusal
from bot.texts import say
from storage.models import Inspector, Unit

router = Router()


def _inspector(value: str | None) -> str:
    if not value or not value.strip():
        raise Refusal("missing_argument", key="inspector")
    return value.strip()


@router.command("补员", "restaff", roles={ADMIN, LEAD})
def restaff(ctx: Context) -> None:
    task_id = task_of(ctx, arguments(ctx, {"task"}))
    done = staffing.restaff(ctx.session, ctx.identity, task_id, bureau_today(ctx.settings.bureau.timezone), ctx.now)
    staffing_notices.queue_staffed(ctx.session, ctx.settings, done)
    unit = ctx.session.get(Unit, done.shortfall.unit) if done.shortfall else None
    ctx.reply(say("staffing", "restaffed", task=task_id, already=done.already, missing=done.missing,
                  shortfall=done.shortfall, unit=unit.name if unit else (done.shortfall.unit if done.shortfall else ""),
                  names=[ctx.session.get_one(Inspector, a.inspector_id).name for a in done.added],
                  wanted=sorted(done.wanted)))


@router.command("指派", "assign", roles={ADMIN}, private_only=True)
def assign(ctx: Context) -> None:
    args = arguments(ctx, {"task", "inspector", "reason"})
    task_id = task_of(ctx, args)
    inspector_id = _inspector(args.get("inspector"))
    done = staffing.assign(ctx.session, ctx.identity, task_id, inspector_id, args.get("reason") or "",
                           bureau_today(ctx.settings.bureau.timezone), ctx.now)
    staffing_notices.queue_staffed(ctx.session, ctx.settings, done)
    ctx.reply(say("staffing", "assigned", task=task_id, name=ctx.session.get_one(Inspector, inspector_id).name,
                  missing=done.missing, already=done.already, wanted=sorted(done.wanted)))


@router.command("结束任务", "close", roles={LEAD})
def close(ctx: Context) -> None:
    args = arguments(ctx, {"task", "reason"})
    done = staffing.close(ctx.session, ctx.identity, task_of(ctx, args), args.get("reason") or "", ctx.now)
    if not done.already:
        staffing_notices.queue_closed(ctx.session, ctx.settings, done)
    ctx.reply(say("staffing", "closed", task=done.task.id, already=done.already))


@router.command("协助", "assist", roles={LEAD})
def assist(ctx: Context) -> None:
    args = arguments(ctx, {"task", "inspector"})
    task_id = task_of(ctx, args)
    done = staffing.assist(ctx.session, ctx.identity, task_id, _inspector(args.get("inspector")),
                           bureau_today(ctx.settings.bureau.timezone), ctx.now)
    if not done.already:
        staffing_notices.queue_assisting(ctx.session, ctx.settings, done)
    ctx.reply(say("staffing", "assisted", task=task_id, name=done.expert.name, wanted=done.wanted,
                  already=done.already))
