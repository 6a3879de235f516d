"""An inspector's own tasks (谁检查、谁录入): 确认 无利害关系 (art. 12), by card or command."""

from bot.batches.confirmation import confirm
from bot.batches.errors import Refusal
from bot.chat.context import Context
from bot.chat.identity import INSPECTOR
from bot.chat.router import Router
from bot.rules.arguments import ArgumentError, parse_arguments
from bot.texts import say

router = Router()


def task_id_of(ctx: Context) -> int | None:
    """The task a card button or a ``任务=ID`` argument names; replies and returns None if bad."""
    if ctx.event.action is not None:
        raw = ctx.event.action.value
    else:
        text = ctx.event.text or ""
        rest = text.split(maxsplit=1)[1] if len(text.split(maxsplit=1)) > 1 else ""
        try:
            raw = parse_arguments(rest, {"task"}).get("task")
        except ArgumentError as exc:
            ctx.reply(say("tasks", "bad_arguments", problem=exc.problem, subject=exc.subject))
            return None
    try:
        return int(raw or "")
    except ValueError:
        ctx.reply(say("tasks", "bad_task", value=raw or ""))
        return None


@router.action("confirm", roles={INSPECTOR})
@router.command("确认", "confirm", roles={INSPECTOR})
def confirm_no_conflict(ctx: Context) -> None:
    task_id = task_id_of(ctx)
    if task_id is None:
        return
    try:
        done = confirm(ctx.session, ctx.actor_label, task_id, ctx.identity.inspector_id, ctx.now)
    except Refusal as refusal:
        ctx.reply(refusal.text())
        return
    ctx.close_card(say("tasks", "confirmed_button"))
    ctx.reply(say("tasks", "confirmed", task=task_id, already=done.already, accepted=done.accepted))
