"""Follow-up (后续处置, art. 18, 19, 23): the receiving unit's leads — or the batch's lead
office, or an admin — close a published result's hand-over with its outcome, by the card
sent to them or the private command 处置; 立案's case number, which a card cannot take,
is asked in the private chat."""

from __future__ import annotations

from datetime import date

from bot.batches import followup_notices
from bot.batches.followups import Disposed, dispose, handovers, may_dispose
from bot.chat import pending
from bot.chat.arguments import arguments, task_of
from bot.chat.context import Context
from bot.chat.identity import APPROVER, LEAD
from bot.chat.router import Router
from bot.clock import bureau_today
from bot.refusal import Refusal
from bot.texts import say
from storage.models import Batch, PendingInput, Task

router = Router()
KEYS = frozenset({"task", "outcome", "case_no", "note", "date"})
NO_CASE_NO = {"无", "没有", "暂无", "-", "—"}


@router.command("处置", "dispose", roles={LEAD, APPROVER}, private_only=True)
def dispose_by_command(ctx: Context) -> None:
    args = arguments(ctx, KEYS)
    task_id = task_of(ctx, args)
    today = bureau_today(ctx.settings.bureau.timezone)
    do_dispose(ctx, task_id, args.get("outcome"), args.get("case_no"), args.get("note"),
               _date(args.get("date")), today)


@router.action("dispose", of="dispose", roles={LEAD, APPROVER})
def dispose_by_card(ctx: Context) -> None:
    """An outcome button; 立案 asks for the case number next (the card cannot take text)."""
    task_id = task_of(ctx, None)
    code = ctx.clicked.value.split(":", 1)[1] if ":" in ctx.clicked.value else ""
    today = bureau_today(ctx.settings.bureau.timezone)
    if code == "case" and _may_and_open(ctx, task_id):  # who may, and whether it is still open, before asking
        pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "case_no", task_id, ctx.now)
        ctx.close_card(say("followups", "card_waiting", task=task_id))
        ctx.reply(say("followups", "ask_case_no", task=task_id))
        return
    do_dispose(ctx, task_id, code, None, None, None, today)


@router.answer("case_no", of="dispose", roles={LEAD, APPROVER})
def case_no_typed(ctx: Context, asked: PendingInput) -> None:
    """The case number of 立案 (or 无)."""
    pending.clear(ctx.session, ctx.event.platform, ctx.event.sender)
    text = (ctx.event.text or "").strip()
    do_dispose(ctx, asked.task_id, "case", None if text in NO_CASE_NO else text, None, None,
               bureau_today(ctx.settings.bureau.timezone))


def _may_and_open(ctx: Context, task_id: int) -> bool:
    """Refused as 处置 would be; whether the follow-up is still open (else 处置 says it is closed)."""
    task = ctx.session.get(Task, task_id)
    found = handovers(ctx.session, task_id) if task else []
    if task is None or not found:
        raise Refusal("unknown_task" if task is None else "no_follow_up", task=task_id)
    follow_up = next((f for f in found if f.status == "open"), found[-1])
    if not may_dispose(ctx.settings, ctx.identity, follow_up, ctx.session.get_one(Batch, task.batch_id)):
        raise Refusal("not_receiving_unit", task=task_id, unit=follow_up.target)
    return follow_up.status == "open"


def do_dispose(ctx: Context, task_id: int, outcome: str | None, case_no: str | None, note: str | None,
               on: date | None, today: date) -> None:
    done: Disposed = dispose(ctx.session, ctx.settings, ctx.identity, task_id, outcome, case_no, note, on, today,
                             ctx.now)
    if not done.already:
        followup_notices.close_cards(ctx.session, done.follow_up)
    elif ctx.event.action is not None:
        ctx.close_card(say("followups", "closed_button", follow_up=done.follow_up))
    ctx.reply(say("followups", "disposed", follow_up=done.follow_up, task=done.task, transfers=done.transfers,
                  already=done.already))


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Refusal("bad_date", key="date", value=value) from None



