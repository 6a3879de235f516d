"""An inspector's own tasks (谁检查、谁录入): 确认 无利害关系 and 回避 (art. 12), 完成 (art. 14)
and 取证 (photos and files as 监管痕迹, art. 14) — by card or by private command."""

from __future__ import annotations

from datetime import date

from sqlmodel import select

from bot.batches import notices
from bot.batches.cards import recusal_reason_card
from bot.batches.confirmation import confirm
from bot.batches.inspection import mark_inspected, own_task, team_of
from bot.batches.recusal import recuse
from bot.chat import pending
from bot.chat.context import Context
from bot.chat.identity import INSPECTOR
from bot.chat.router import Router
from bot.clock import bureau_today
from bot.refusal import Refusal
from bot.texts import say
from handlers.common import arguments, refuse, task_of
from storage import audit, evidence
from storage.models import Evidence, InspectionObject

router = Router()


@router.action("confirm", roles={INSPECTOR})
@router.command("确认", "confirm", roles={INSPECTOR})
def confirm_no_conflict(ctx: Context) -> None:
    try:
        task_id = task_of(ctx, None if ctx.event.action else arguments(ctx, {"task"}))
        done = confirm(ctx.session, ctx.actor_label, task_id, ctx.identity.inspector_id, ctx.now)
    except Refusal as refusal:
        refuse(ctx, refusal, "确认")
        return
    if not done.already:  # the task card, on every platform, whether clicked or typed
        notices.close_task_card(ctx.session, ctx.settings, done.assignment, say("tasks", "confirmed_button"),
                                "confirmed")
    ctx.reply(say("tasks", "confirmed", task=task_id, already=done.already, accepted=done.accepted))


@router.action("recuse", roles={INSPECTOR})
def ask_recusal_reason(ctx: Context) -> None:
    """申请回避 on the task card: the reason comes from a second card, or typed."""
    try:
        task, _, mine = own_task(ctx.session, task_of(ctx, None), ctx.identity.inspector_id)
    except Refusal as refusal:
        refuse(ctx, refusal, "回避")
        return
    ctx.reply(recusal_reason_card(task, mine, ctx.session.get(InspectionObject, task.object_id)))


@router.action("recuse_reason", roles={INSPECTOR})
def recusal_reason_chosen(ctx: Context) -> None:
    value = ctx.event.action.value
    reason = value.split(":", 1)[1] if ":" in value else "other"
    try:
        task_id = task_of(ctx, None)
        own_task(ctx.session, task_id, ctx.identity.inspector_id, recused_too=True)
    except Refusal as refusal:
        refuse(ctx, refusal, "回避")
        return
    if reason == "other":
        pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "recusal_reason", task_id, ctx.now)
        ctx.close_card(say("tasks", "reason_asked_button"))
        ctx.reply(say("tasks", "ask_recusal_reason", task=task_id))
        return
    label = say("cards", "reason_text", reason=reason)
    if do_recuse(ctx, task_id, label):
        ctx.close_card(say("tasks", "recused_button", reason=label))


@router.command("回避", "recuse", roles={INSPECTOR}, private_only=True)
def recuse_by_command(ctx: Context) -> None:
    try:
        args = arguments(ctx, {"task", "reason"})
        task_id = task_of(ctx, args)
        _, _, mine = own_task(ctx.session, task_id, ctx.identity.inspector_id, recused_too=True)
    except Refusal as refusal:
        refuse(ctx, refusal, "回避")
        return
    reason = (args.get("reason") or "").strip()
    if not reason and mine.status != "recused":
        pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "recusal_reason", task_id, ctx.now)
        ctx.reply(say("tasks", "ask_recusal_reason", task=task_id))
        return
    do_recuse(ctx, task_id, reason)


def do_recuse(ctx: Context, task_id: int, reason: str) -> bool:
    """Record the conflict, draw the replacement (DRAW.md §6), tell everyone concerned."""
    today = bureau_today(ctx.settings.bureau.timezone)
    try:
        with ctx.session.begin_nested():
            done = recuse(ctx.session, ctx.actor_label, task_id, ctx.identity.inspector_id, reason, today, ctx.now)
    except Refusal as refusal:
        refuse(ctx, refusal, "回避")
        return False
    if not done.already:
        recused = next(a for a in team_of(ctx.session, task_id) if a.inspector_id == ctx.identity.inspector_id)
        notices.queue_recusal_notices(ctx.session, ctx.settings, done.task, recused, done.replacement)
        notices.close_task_card(ctx.session, ctx.settings, recused, say("tasks", "recused_button", reason=reason),
                                "recused")
    ctx.reply(say("tasks", "recused", task=task_id, already=done.already, unstaffed=done.replacement is None))
    return True


@router.command("完成", "done", roles={INSPECTOR}, private_only=True)
def inspection_done(ctx: Context) -> None:
    """The inspection is done (art. 14); the result card follows (art. 20)."""
    today = bureau_today(ctx.settings.bureau.timezone)
    try:
        args = arguments(ctx, {"task", "date"})
        task_id = task_of(ctx, args)
        on = _date(args.get("date"), today)
        with ctx.session.begin_nested():
            done = mark_inspected(ctx.session, ctx.actor_label, task_id, ctx.identity.inspector_id, on, today,
                                  ctx.now)
    except Refusal as refusal:
        refuse(ctx, refusal, "完成")
        return
    pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "evidence", task_id, ctx.now)
    ctx.reply(say("tasks", "inspected", task=done.task, already=done.already))
    ctx.flush()  # the answer first, then the result card
    if not done.already:
        notices.queue_result_card(ctx.session, ctx.settings, done.task, ctx.identity.inspector_id,
                                  evidence.count(ctx.session, task_id))


def _date(value: str | None, today: date) -> date:
    if not value:
        return today
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Refusal("bad_date", key="date", value=value) from None


@router.command("取证", "evidence", roles={INSPECTOR}, private_only=True)
def choose_task_for_evidence(ctx: Context) -> None:
    """Photos, videos and files sent next belong to this task (art. 14)."""
    try:
        task_id = task_of(ctx, arguments(ctx, {"task"}))
        own_task(ctx.session, task_id, ctx.identity.inspector_id)
    except Refusal as refusal:
        refuse(ctx, refusal, "取证")
        return
    pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "evidence", task_id, ctx.now)
    ctx.reply(say("tasks", "evidence_ready", task=task_id, count=evidence.count(ctx.session, task_id)))


def attach_evidence(ctx: Context) -> None:
    """A photo, video or file in the private chat: kept with the chosen task, audited."""
    media = ctx.event.media
    asked = pending.current(ctx.session, ctx.event.platform, ctx.event.sender, ctx.now)
    if INSPECTOR not in ctx.identity.roles:
        ctx.reply(say("tasks", "evidence_not_inspector"))
        return
    if asked is None or asked.kind != "evidence":
        ctx.reply(say("tasks", "evidence_no_task"))
        return
    if not media.sha256:
        ctx.reply(say("tasks", "evidence_unavailable"))
        return
    try:
        own_task(ctx.session, asked.task_id, ctx.identity.inspector_id)
    except Refusal as refusal:
        refuse(ctx, refusal, "取证")
        return
    known = ctx.session.exec(select(Evidence).where(Evidence.task_id == asked.task_id,
                                                    Evidence.sha256 == media.sha256)).first()
    if known is None:
        ctx.session.add(Evidence(task_id=asked.task_id, sha256=media.sha256, media_type=media.kind,
                                 file_name=media.file_name, size=media.size, added_by=ctx.actor_label,
                                 added_at=ctx.now))
        ctx.session.flush()
        audit.record(ctx.session, ctx.actor_label, "evidence.added", str(asked.task_id), sha256=media.sha256,
                     kind=media.kind, size=media.size)
    ctx.reply(say("tasks", "evidence_kept", task=asked.task_id, count=evidence.count(ctx.session, asked.task_id),
                  already=known is not None))
