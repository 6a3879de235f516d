"""The operators' view of reminders: what is due and when it will be sent; snoozing a
deadline or acknowledging its escalation, with a reason, audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import Session, select

from bot.clock import bureau_time
from bot.refusal import Refusal
from bot.reminders.deadlines import DUE_NOW, wanted
from bot.reminders.sweep import policy_of
from bot.rules.deadlines import Step, step_for
from bot.settings import Settings
from storage import audit
from storage.calendar import load_calendar
from storage.models import Deadline, Reminder

HORIZON = 60  # days looked ahead for the next rung


@dataclass(frozen=True)
class Upcoming:
    id: int | None  # the stored deadline (None until the first sweep stores it)
    kind: str
    subject: str
    due: date
    provisional: bool
    next_on: date | None  # the day of the next reminder not yet sent
    step: Step | None
    snoozed_until: date | None
    acknowledged: bool


def upcoming(session: Session, settings: Settings, now: datetime) -> list[Upcoming]:
    """Every open deadline (as the next sweep will see it) and its next reminder."""
    calendar, policy = load_calendar(session), policy_of(settings)
    local = bureau_time(now, settings.bureau.timezone)
    start = local.date() if local.time() < policy.end else local.date() + timedelta(days=1)
    stored = {(d.kind, d.subject): d for d in session.exec(select(Deadline))}
    sent = {(r.deadline_id, r.step) for r in session.exec(select(Reminder))}
    found = []
    for (kind, subject), values in sorted(wanted(session, settings, calendar).items(),
                                          key=lambda item: (item[1]["due"], item[0])):
        row = stored.get((kind, subject))
        snoozed = row.snoozed_until if row else None
        next_on, step = None, None
        for offset in range(HORIZON):
            day = start + timedelta(days=offset)
            if not calendar.is_working_day(day) or (snoozed and day < snoozed):
                continue
            step = step_for(day, values["due"], calendar, policy)
            if step and not (row and (row.id, step.step) in sent):
                next_on = day
                break
            step = None
        found.append(Upcoming(row.id if row else None, kind, subject, values["due"], values["provisional"],
                              next_on, step, snoozed, bool(row and row.escalation_acknowledged)))
    return found


def _deadline(session: Session, deadline_id: int) -> Deadline:
    row = session.get(Deadline, deadline_id)
    if row is None or row.status != "open":
        raise Refusal("unknown_deadline", deadline=deadline_id)
    return row


@dataclass(frozen=True)
class Decision:
    """An admin's decision about a deadline; ``already`` if it stood as decided (nothing changed)."""

    row: Deadline
    already: bool = False


def snooze(session: Session, actor: str, deadline_id: int, until: date, reason: str) -> Decision:
    """No reminders about this deadline before ``until`` (e.g. an agreed extension) —
    ``shuangsui reminders snooze`` and 暂停提醒 (SPEC §5); the same again changes nothing."""
    if not reason.strip():
        raise Refusal("needs_reason")
    row = _deadline(session, deadline_id)
    if row.snoozed_until == until:
        return Decision(row, already=True)
    row.snoozed_until = until
    row.next_rung_on = DUE_NOW  # the next sweep looks at it again (an earlier day may be a rung now)
    session.add(row)
    session.flush()
    audit.record(session, actor, "deadline.snoozed", row.subject, kind=row.kind, until=until.isoformat(),
                 reason=reason.strip())
    return Decision(row)


def acknowledge(session: Session, actor: str, deadline_id: int, reason: str) -> Decision:
    """The escalation is known and handled: the owner is still reminded, nobody else —
    ``shuangsui reminders ack`` and 知悉 (SPEC §5); acknowledged again, nothing changes."""
    if not reason.strip():
        raise Refusal("needs_reason")
    row = _deadline(session, deadline_id)
    if row.escalation_acknowledged:
        return Decision(row, already=True)
    row.escalation_acknowledged = True
    row.next_rung_on = DUE_NOW
    session.add(row)
    session.flush()
    audit.record(session, actor, "deadline.acknowledged", row.subject, kind=row.kind, reason=reason.strip())
    return Decision(row)
