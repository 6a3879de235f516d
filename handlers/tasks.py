"""An inspector's own tasks (谁检查、谁录入): 确认 无利害关系 and 回避 (art. 12), 完成 (art. 14)
and 取证 (photos and files as 监管痕迹, art. 14) — by card or by private command."""

from __future__ import annotations

from datetime import date

from bot.batches import notices
from bot.batches.cards import recusal_reason_card
from bot.batches.confirmation import confirm
from bot.batches.inspection import keep_evidence, mark_inspected, own_task, team_of
from bot.batches.recusal import not_yet_inspected, recuse
from bot.chat import pending
from bot.chat.arguments import arguments, task_of
from bot.chat.context import Context
from bot.chat.events import LOCATION
from bot.chat.identity import INSPECTOR
from bot.chat.router import Router
from bot.clock import bureau_time, bureau_today
from bot.refusal import Refusal
from bot.texts import say
from storage import evidence
from storage.models import InspectionObject, PendingInput

router = Router()


@router.action("confirm", of="confirm", roles={INSPECTOR})
@router.command("确认", "confirm", roles={INSPECTOR})
def confirm_no_conflict(ctx: Context) -> None:
    task_id = task_of(ctx, None if ctx.event.action else arguments(ctx, {"task"}))
    done = confirm(ctx.session, ctx.actor_label, task_id, ctx.identity.inspector_id, ctx.now)
    if not done.already:  # the task card, on every platform, whether clicked or typed
        notices.close_task_card(ctx.session, ctx.settings, done.assignment, say("tasks", "confirmed_button"),
                                "confirmed")
    ctx.reply(say("tasks", "confirmed", task=task_id, already=done.already, accepted=done.accepted))


@router.command("回避", "recuse", roles={INSPECTOR}, private_only=True)
def recuse_by_command(ctx: Context) -> None:
    args = arguments(ctx, {"task", "reason"})
    task_id = task_of(ctx, args)
    task, _, mine = own_task(ctx.session, task_id, ctx.identity.inspector_id, recused_too=True)
    reason = (args.get("reason") or "").strip()
    if not reason and mine.status != "recused":
        not_yet_inspected(task)  # refused before the reason is asked
        pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "recusal_reason", task_id, ctx.now)
        ctx.reply(say("tasks", "ask_recusal_reason", task=task_id))
        return
    do_recuse(ctx, task_id, reason)


@router.action("recuse", of="recuse", roles={INSPECTOR})
def ask_recusal_reason(ctx: Context) -> None:
    """申请回避 on the task card: the reason comes from a second card, or typed."""
    task, _, mine = own_task(ctx.session, task_of(ctx, None), ctx.identity.inspector_id)
    not_yet_inspected(task)
    ctx.reply(recusal_reason_card(task, mine, ctx.session.get_one(InspectionObject, task.object_id)))


@router.action("recuse_reason", of="recuse", roles={INSPECTOR})
def recusal_reason_chosen(ctx: Context) -> None:
    value = ctx.clicked.value
    reason = value.split(":", 1)[1] if ":" in value else "other"
    task_id = task_of(ctx, None)
    own_task(ctx.session, task_id, ctx.identity.inspector_id, recused_too=True)
    if reason == "other":
        pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "recusal_reason", task_id, ctx.now)
        ctx.close_card(say("tasks", "reason_asked_button"))
        ctx.reply(say("tasks", "ask_recusal_reason", task=task_id))
        return
    label = say("cards", "reason_text", reason=reason)
    do_recuse(ctx, task_id, label)
    ctx.close_card(say("tasks", "recused_button"))  # no reason: a card update is kept in plaintext


@router.answer("recusal_reason", of="recuse")
def recusal_reason_typed(ctx: Context, asked: PendingInput) -> None:
    pending.clear(ctx.session, ctx.event.platform, ctx.event.sender)
    do_recuse(ctx, asked.task_id, (ctx.event.text or "").strip())


def do_recuse(ctx: Context, task_id: int, reason: str) -> None:
    """Record the conflict, draw the replacement (DRAW.md §6), tell everyone concerned."""
    today = bureau_today(ctx.settings.bureau.timezone)
    done = recuse(ctx.session, ctx.actor_label, task_id, ctx.identity.inspector_id, reason, today, ctx.now)
    if not done.already:
        recused = next(a for a in team_of(ctx.session, task_id) if a.inspector_id == ctx.identity.inspector_id)
        notices.queue_recusal_notices(ctx.session, ctx.settings, done.task, recused, done.replacement)
        notices.close_task_card(ctx.session, ctx.settings, recused, say("tasks", "recused_button"),
                                "recused")
    ctx.reply(say("tasks", "recused", task=task_id, already=done.already, unstaffed=done.replacement is None))


@router.command("完成", "done", roles={INSPECTOR}, private_only=True)
def inspection_done(ctx: Context) -> None:
    """The inspection is done (art. 14); the result card follows (art. 20)."""
    today = bureau_today(ctx.settings.bureau.timezone)
    args = arguments(ctx, {"task", "date"})
    task_id = task_of(ctx, args)
    on = _date(args.get("date"), today)
    done = mark_inspected(ctx.session, ctx.actor_label, task_id, ctx.identity.inspector_id, on, today, ctx.now)
    pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "evidence", task_id, ctx.now)
    ctx.reply(say("tasks", "inspected", task=done.task, already=done.already))
    ctx.flush()  # the answer first, then the result card
    if not done.already:
        assert ctx.identity.inspector_id is not None  # mark_inspected found them on the task
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
    task_id = task_of(ctx, arguments(ctx, {"task"}))
    own_task(ctx.session, task_id, ctx.identity.inspector_id)
    pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "evidence", task_id, ctx.now)
    ctx.reply(say("tasks", "evidence_ready", task=task_id, count=evidence.count(ctx.session, task_id)))


@router.answer("evidence", of="evidence", media=True)
def attach_evidence(ctx: Context, asked: PendingInput) -> None:
    """A photo, video, file or location for the chosen task: kept with it, audited."""
    media = ctx.media
    if INSPECTOR not in ctx.identity.roles:  # no longer one since the task was chosen
        evidence_unasked(ctx)
        return
    if not media.sha256:
        ctx.reply(say("tasks", "evidence_unavailable"))
        return
    kept = keep_evidence(ctx.session, ctx.actor_label, asked.task_id, ctx.identity.inspector_id, media,
                         ctx.event.at, ctx.now)
    ctx.reply(say("tasks", "evidence_kept", task=asked.task_id, count=evidence.count(ctx.session, asked.task_id),
                  already=kept.already, location=kept.evidence if media.kind == LOCATION else None,
                  at=bureau_time(ctx.event.at, ctx.settings.bureau.timezone)))


@router.media
def evidence_unasked(ctx: Context) -> None:
    """A photo, video, file or location when no task was chosen: only inspectors keep evidence, 取证 first."""
    ctx.reply(say("tasks", "evidence_not_inspector" if INSPECTOR not in ctx.identity.roles else "evidence_no_task"))
