"""Results (art. 14, 19, 20): the inspectors enter one of the eight categories — by the
result card or the 结果 command — and the approvers of the lead inspector's unit
批准 (publish, art. 20–21) or 退回 with a reason; a published result is only ever
superseded by an audited 更正."""

from __future__ import annotations

from dataclasses import replace

from bot.batches import followup_notices, followups, notices
from bot.batches.inspection import team_of
from bot.batches.results import (
    NONCOOPERATION,
    Entry,
    approve,
    check_entry,
    correct,
    latest,
    return_result,
    submit,
    submittable,
)
from bot.chat import pending
from bot.chat.arguments import arguments, number, task_of
from bot.chat.context import Context
from bot.chat.identity import APPROVER, INSPECTOR, LEAD
from bot.chat.router import Router
from bot.refusal import Refusal
from bot.texts import say
from storage import evidence
from storage.models import PendingInput, Result, Task

router = Router()
YES, NO = {"是", "true", "1", "yes", "y"}, {"否", "false", "0", "no", "n"}


def yes_no(value: str | None, key: str) -> bool | None:
    """是/否 (also true/false, 1/0); None when not given."""
    if value is None or value == "":
        return None
    if value.strip().lower() in YES:
        return True
    if value.strip().lower() in NO:
        return False
    raise Refusal("bad_yes_no", key=key, value=value)


RESULT_KEYS = {"task", "category", "note", "signed", "reason", "case", "witness"}
SKIP = {"无", "没有", "none", "no"}  # a reply that skips an optional question (remarks, witness)


@router.command("结果", "result", roles={INSPECTOR}, private_only=True)
def result_by_command(ctx: Context) -> None:
    """结果 任务= 类别= …: what is missing and must not be left blank (签字=, art. 14) is asked."""
    args = arguments(ctx, RESULT_KEYS)
    task_id = task_of(ctx, args)
    case = args.get("case")
    entry = Entry(category=number(args.get("category"), "category"), note=args.get("note") or "",
                  signed=yes_no(args.get("signed"), "signed"), unsigned_reason=args.get("reason"),
                  case=number(case, "case") if case else None, witness=args.get("witness") or "")
    if entry.signed is not None:
        submit_entry(ctx, task_id, entry)
        return
    check_entry(replace(entry, signed=True))  # every other mistake is said first
    submittable(ctx.session, task_id, ctx.identity.inspector_id)
    proceed(ctx, task_id, {"category": entry.category, "note": entry.note, "signed": None,
                           "reason": entry.unsigned_reason, "case": entry.case, "witness": entry.witness})


@router.action("result", of="result", roles={INSPECTOR})
def result_by_card(ctx: Context) -> None:
    """The result card: the chosen category, signed or not; the rest — the art. 19 case,
    why unsigned, a witness where unsigned, the remarks — is asked in the private chat."""
    action = ctx.clicked
    chosen = action.choices.get("category") or []
    try:
        task_id = task_of(ctx, None)
        category = number(chosen[0] if chosen else None, "category")
    except Refusal:
        ctx.reply(say("results", "choose_category"))
        return
    if category not in range(1, 9):
        raise Refusal("bad_category", value=category)
    submittable(ctx.session, task_id, ctx.identity.inspector_id)
    signed = not action.value.endswith(":unsigned")
    # None: not asked yet. A witness is asked where the signature could not be had (art. 14).
    proceed(ctx, task_id, {"category": category, "note": None, "signed": signed, "reason": None, "case": None,
                           "witness": None if not signed else ""})
    ctx.close_card(say("results", "card_waiting"))


def proceed(ctx: Context, task_id: int, draft: dict) -> None:
    """Ask the next thing a result still lacks, or submit it when nothing is."""
    step = _next_step(draft)
    if step is None:
        pending.clear(ctx.session, ctx.event.platform, ctx.event.sender)
        submit_entry(ctx, task_id, Entry(category=draft["category"], note=draft["note"] or "",
                                         signed=draft["signed"], unsigned_reason=draft["reason"],
                                         case=draft["case"], witness=draft["witness"] or ""))
        return
    pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, step, task_id, ctx.now, draft)
    ctx.reply(say("results", f"ask_{step}", task=task_id))


def _next_step(draft: dict) -> str | None:
    if draft["category"] == NONCOOPERATION and draft["case"] is None:
        return "case"
    if draft["signed"] is None:
        return "signed"
    if draft["signed"] is False and not (draft["reason"] or "").strip():
        return "unsigned_reason"
    if draft["witness"] is None:
        return "witness"
    if draft["note"] is None:
        return "note"
    return None


@router.answer("case", of="result")
def case_typed(ctx: Context, asked: PendingInput) -> None:
    """Which of art. 19's cases (第一项 to 第四项) a category 6 result is."""
    text = (ctx.event.text or "").strip()
    try:
        case = number(text.strip("（）() 第项"), "case")
        if case not in range(1, 5):
            raise Refusal("bad_number", key="case", value=text)
    except Refusal:
        ctx.reply(say("results", "ask_case", task=asked.task_id))
        return
    proceed(ctx, asked.task_id, {**asked.data, "case": case})


@router.answer("signed", of="result")
def signed_typed(ctx: Context, asked: PendingInput) -> None:
    """Whether the legal representative signed or sealed the record (art. 14): 是 or 否."""
    try:
        signed = yes_no((ctx.event.text or "").strip(" 。.！!"), "signed")
    except Refusal:
        signed = None
    if signed is None:
        ctx.reply(say("results", "ask_signed", task=asked.task_id))
        return
    proceed(ctx, asked.task_id, {**asked.data, "signed": signed})


@router.answer("unsigned_reason", of="result")
def unsigned_reason_typed(ctx: Context, asked: PendingInput) -> None:
    """Why the inspected did not sign (art. 14)."""
    reason = (ctx.event.text or "").strip()
    if not reason:
        ctx.reply(say("results", "ask_unsigned_reason", task=asked.task_id))
        return
    proceed(ctx, asked.task_id, {**asked.data, "reason": reason})


@router.answer("witness", of="result")
def witness_typed(ctx: Context, asked: PendingInput) -> None:
    """Who witnessed the record (art. 14: 必要时可以邀请有关人员做见证记录); 无 for nobody."""
    proceed(ctx, asked.task_id, {**asked.data, "witness": _unless_skipped(ctx.event.text)})


@router.answer("note", of="result")
def note_typed(ctx: Context, asked: PendingInput) -> None:
    """The remarks on a result chosen on the card; 无 for none."""
    proceed(ctx, asked.task_id, {**asked.data, "note": _unless_skipped(ctx.event.text)})


def _unless_skipped(text: str | None) -> str:
    value = (text or "").strip()
    return "" if value.strip(" 。.！!").lower() in SKIP else value


def submit_entry(ctx: Context, task_id: int, entry: Entry) -> None:
    """谁检查、谁录入: submit, then ask the approvers."""
    result = submit(ctx.session, ctx.actor_label, task_id, ctx.identity.inspector_id, entry, ctx.now)
    task = ctx.session.get_one(Task, task_id)
    notices.queue_approval_cards(ctx.session, ctx.settings, result, task, evidence.count(ctx.session, task_id))
    notices.close_result_cards(ctx.session, task_id, say("results", "card_submitted", category=result.category))
    ctx.reply(say("results", "submitted", task=task_id, result=result))


def _result_for(ctx: Context, action_keys: set[str]) -> tuple[int, dict[str, str]]:
    """The result a button names, or the latest one of ``任务=``."""
    if ctx.event.action is not None:
        return number(ctx.event.action.value, "result"), {}
    args = arguments(ctx, action_keys)
    task_id = number(args.get("task"), "task")
    found = latest(ctx.session, task_id)
    if found is None or found.status == "superseded":
        raise Refusal("no_pending_result", task=task_id)
    assert found.id is not None  # a stored result
    return found.id, args.values  # already decided: the service says so


@router.action("approve", of="approve", roles={APPROVER, LEAD})
@router.command("批准", "approve", roles={APPROVER, LEAD}, private_only=True)
def approve_result(ctx: Context) -> None:
    result_id, _ = _result_for(ctx, {"task"})
    done = approve(ctx.session, ctx.identity, result_id, ctx.now)
    ctx.reply(say("results", "approved", task=done.task, result=done.result, follow_up=done.follow_up,
                  already=done.already))
    if not done.already:
        notices.queue_decision_notices(ctx.session, ctx.settings, done.result, done.task)
        notices.close_approval_cards(ctx.session, ctx.settings, done.result, say("results", "approved_button"))
        ctx.flush()  # the answer first: an approver standing in for the unit's leads gets the follow-up card next
        followup_notices.after_publication(ctx.session, ctx.settings, done.task.id or 0)  # art. 18


@router.command("退回", "return", roles={APPROVER, LEAD}, private_only=True)
def return_by_command(ctx: Context) -> None:
    result_id, values = _result_for(ctx, {"task", "reason"})
    reason = (values.get("reason") or "").strip()
    if not reason:
        task_id = ctx.session.get_one(Result, result_id).task_id  # _result_for found it
        pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "return_reason", task_id, ctx.now,
                    {"result": result_id})
        ctx.reply(say("results", "ask_return_reason", task=task_id))
        return
    do_return(ctx, result_id, reason)


@router.action("return", of="return", roles={APPROVER, LEAD})
def ask_return_reason(ctx: Context) -> None:
    result_id = number(ctx.clicked.value, "result")
    result = ctx.session.get(Result, result_id)
    if result is None:
        raise Refusal("unknown_result", result=result_id)
    pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "return_reason", result.task_id, ctx.now,
                {"result": result_id})
    ctx.reply(say("results", "ask_return_reason", task=result.task_id))


@router.answer("return_reason", of="return")
def return_reason_typed(ctx: Context, asked: PendingInput) -> None:
    pending.clear(ctx.session, ctx.event.platform, ctx.event.sender)
    do_return(ctx, asked.data["result"], (ctx.event.text or "").strip())


def do_return(ctx: Context, result_id: int, reason: str) -> None:
    done = return_result(ctx.session, ctx.identity, result_id, reason, ctx.now)
    if not done.already:
        notices.queue_decision_notices(ctx.session, ctx.settings, done.result, done.task)
        notices.close_approval_cards(ctx.session, ctx.settings, done.result, say("results", "returned_button"))
        task_id = done.result.task_id
        lead = next(a for a in team_of(ctx.session, task_id) if a.status != "recused")
        notices.queue_result_card(ctx.session, ctx.settings, done.task, lead.inspector_id,
                                  evidence.count(ctx.session, task_id))
    ctx.reply(say("results", "returned", task=done.task, already=done.already))


@router.command("更正", "correct", roles={APPROVER, LEAD}, private_only=True)
def correct_result(ctx: Context) -> None:
    args = arguments(ctx, {"task", "category", "note", "case", "reason"})
    case = args.get("case")
    entry = Entry(category=number(args.get("category"), "category"), note=args.get("note") or "",
                  case=number(case, "case") if case else None)
    task_id = number(args.get("task"), "task")
    earlier = followups.open_handovers(ctx.session, task_id)
    new = correct(ctx.session, ctx.identity, task_id, entry, args.get("reason") or "", ctx.now)
    followups.withdraw(ctx.session, earlier, new, ctx.actor_label, ctx.now)  # art. 18: the result replaced
    ctx.reply(say("results", "corrected", result=new))
    ctx.flush()  # the answer before any follow-up card
    followup_notices.after_publication(ctx.session, ctx.settings, new.task_id)  # art. 18, as for any result


@router.command("移送", "transfer", roles={LEAD})
def transfer_case(ctx: Context) -> None:
    """Art. 18, 23: a case handed to another agency or the judiciary, with the receiving body."""
    from bot.batches.followups import transfer

    args = arguments(ctx, {"task", "agency", "judicial", "note"})
    judicial = yes_no(args.get("judicial"), "judicial") or False
    done = transfer(ctx.session, ctx.identity, number(args.get("task"), "task"), args.get("agency") or "",
                    judicial, args.get("note") or "", ctx.now)
    ctx.reply(say("results", "transferred", follow_up=done))
