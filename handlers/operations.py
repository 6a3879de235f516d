"""The bureau's own duties in chat (SPEC §5), each the same use case as its CLI command:
计划报送 — the planning office notes art. 11's dates (``shuangsui plan record``);
暂停提醒 and 知悉 — an admin pauses a deadline's reminders or acknowledges its escalation
(``shuangsui reminders snooze|ack``; the reminder digests name the deadline ids);
汇总 — supervisors, lead offices and admins get the daily or weekly summary now, with its
chart where a CJK font exists (``shuangsui summaries send``, to the asker only)."""

from __future__ import annotations

from datetime import date

from bot import outbox_keys, plans
from bot.chat.arguments import arguments, arguments_text, number
from bot.chat.context import Context
from bot.chat.identity import ADMIN, LEAD, SUPERVISOR
from bot.chat.router import Router
from bot.clock import bureau_today
from bot.outbound import USER, Destination
from bot.refusal import Refusal
from bot.reminders.operations import acknowledge, snooze
from bot.reports.summary import compose
from bot.texts import say
from storage import audit

router = Router()


def _day(value: str | None, key: str) -> date:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise Refusal("bad_date", key=key, value=value) from None


@router.command("计划报送", "plan_record", roles={LEAD})
def record_plan_date(ctx: Context) -> None:
    """Art. 11: the annual plan reported (by the end of January), filed (by the end of
    February), re-filed after an adjustment (within 10 working days)."""
    args = arguments(ctx, {"plan", "status", "date"})
    plan_id = number(args.get("plan"), "plan")
    status = (args.get("status") or "").strip().lower()
    if not status:
        raise Refusal("missing_argument", key="status")
    if status not in plans.FILING_STEPS:
        raise Refusal("bad_filing_status", value=status)
    today = bureau_today(ctx.settings.bureau.timezone)
    on = _day(args.get("date"), "date") if args.get("date") else today
    if on > today:
        raise Refusal("date_in_future", key="date", value=on.isoformat())
    done = plans.record_filing_as(ctx.session, ctx.identity, plan_id, status, on)
    ctx.reply(say("plans", "recorded", plan=done.plan, step=status, on=on, already=done.already))


@router.command("暂停提醒", "snooze", roles={ADMIN})
def snooze_reminders(ctx: Context) -> None:
    """No reminders about a deadline before the day given (an agreed extension), with the reason."""
    args = arguments(ctx, {"deadline", "until", "reason"})
    deadline_id = number(args.get("deadline"), "deadline")
    if not args.get("until"):
        raise Refusal("missing_argument", key="until")
    until = _day(args.get("until"), "until")
    if until <= bureau_today(ctx.settings.bureau.timezone):
        raise Refusal("until_not_future", value=until.isoformat())
    done = snooze(ctx.session, ctx.actor_label, deadline_id, until, args.get("reason") or "")
    ctx.reply(say("reminders", "snoozed", row=done.row, already=done.already))


@router.command("知悉", "ack", roles={ADMIN})
def acknowledge_escalation(ctx: Context) -> None:
    """The escalation is known and handled: the owner is still reminded, nobody above them."""
    args = arguments(ctx, {"deadline", "reason"})
    deadline_id = number(args.get("deadline"), "deadline")
    done = acknowledge(ctx.session, ctx.actor_label, deadline_id, args.get("reason") or "")
    ctx.reply(say("reminders", "acknowledged", row=done.row, already=done.already))


SUMMARY_KINDS = {"": "daily", "日报": "daily", "daily": "daily", "周报": "weekly", "weekly": "weekly"}


@router.command("汇总", "summary", roles={SUPERVISOR, LEAD})
def summary_now(ctx: Context) -> None:
    """The daily (default) or weekly summary now, to the asker: the text where asked, the
    chart (where a CJK font exists) in the private chat."""
    word = arguments_text(ctx).strip()
    kind = SUMMARY_KINDS.get(word.lower())
    if kind is None:
        raise Refusal("bad_summary_kind", value=word)
    summary = compose(ctx.session, ctx.settings, kind, ctx.now)
    audit.record(ctx.session, ctx.actor_label, "summary.requested", kind, period=summary.period)
    ctx.reply(summary.text)
    if summary.chart is not None:
        ctx.flush()  # the text first, then the chart
        ctx.send(Destination(ctx.event.platform, USER, ctx.event.sender), summary.chart,
                 outbox_keys.summary_asked(ctx.event.platform, ctx.event.delivery_key))
