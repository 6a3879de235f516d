"""Follow-up after a published result (art. 18, 谁管辖、谁负责): problems found are handed
to the object's jurisdiction unit; where the category means listing in the
abnormal-operations list, the hand-off says so, because an order to rectify or
administrative guidance cannot replace the listing. The receiving unit's leads (or the
batch's lead office) close it with its outcome (处置) within ``[followups] days``
working days; transfers to other agencies or the judiciary (移送, art. 18, 23) are on
record beside it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from bot.chat import recipients
from bot.chat.identity import ADMIN, APPROVER, LEAD, Identity
from bot.clock import bureau_date
from bot.outbound import Destination
from bot.refusal import Refusal
from bot.rules.workdays import Calendar, DueDate
from bot.settings import Settings
from bot.texts import say
from storage import audit
from storage.models import Batch, FollowUp, InspectionObject, Result, Task

#: 2 未按规定公示, 3 隐瞒真实情况弄虚作假, 4 住所无法联系, 5 已责令改正 (check the
#: rectification), 6 不配合检查情节严重 (art. 19: publicised), 8 待后续处理.
NEEDS_FOLLOW_UP = frozenset({2, 3, 4, 5, 6, 8})
#: Listing in the abnormal-operations list (企业信息公示暂行条例 第十七条; 住所无法联系).
ABNORMAL_LIST = frozenset({2, 3, 4})


def hand_over(session: Session, result: Result, obj: InspectionObject, actor: str, now: datetime) -> FollowUp | None:
    """The hand-off a published result calls for, if any (audited)."""
    if result.category not in NEEDS_FOLLOW_UP:
        return None
    listing = result.category in ABNORMAL_LIST and obj.market  # only market entities are listed
    follow_up = FollowUp(task_id=result.task_id, kind="handover", target=obj.unit_id, abnormal_list=listing,
                         note=say("followups", "note", category=result.category, listing=listing),
                         created_by=actor, created_at=now)
    session.add(follow_up)
    session.flush()
    audit.record(session, actor, "followup.created", str(result.task_id), target=obj.unit_id,
                 category=result.category, abnormal_list=listing)
    return follow_up


def transfer(session: Session, identity: Identity, task_id: int, agency: str, judicial: bool, note: str,
             now: datetime) -> FollowUp:
    """移送: a case handed to another agency, or to the judiciary (art. 18, 23), on record —
    by the batch's lead office (its leads in ``[roles]``) or an admin only."""
    task = session.get(Task, task_id)
    if task is None:
        raise Refusal("unknown_task", task=task_id)
    batch = session.get_one(Batch, task.batch_id)
    if ADMIN not in identity.roles and (batch.lead_unit_id is None
                                        or batch.lead_unit_id not in identity.units.get(LEAD, frozenset())):
        raise Refusal("not_lead_office", task=task_id)
    if task.status != "approved":
        raise Refusal("transfer_needs_result", task=task_id)
    if not agency.strip():
        raise Refusal("missing_argument", key="agency")
    actor = identity.actor.label
    kind = "transfer_judiciary" if judicial else "transfer_agency"
    follow_up = FollowUp(task_id=task_id, kind=kind, target=agency.strip(), note=note.strip(), created_by=actor,
                         created_at=now)
    session.add(follow_up)
    session.flush()
    audit.record(session, actor, "followup.transferred", str(task_id), kind=kind, target=agency.strip())
    return follow_up


HANDOVER = "handover"
#: 处置's outcomes (SPEC §5 结论=), by their Chinese names and codes.
OUTCOMES = {"列入异常名录": "listed", "责令整改": "rectify", "立案": "case", "移送": "transfer", "无需处置": "none"}
#: Outcomes the public object page shows with their day (列入经营异常名录 and 立案 are
#: public under 企业信息公示暂行条例; remarks and people never are).
PUBLIC_OUTCOMES = frozenset({"listed", "case"})
#: Art. 18: where listing is required, an order to rectify (or doing nothing) cannot replace it.
NOT_INSTEAD_OF_LISTING = frozenset({"rectify", "none"})


def open_handovers(session: Session, task_id: int) -> list[FollowUp]:
    return [f for f in handovers(session, task_id) if f.status == "open"]


def withdraw(session: Session, earlier: list[FollowUp], result: Result, actor: str, now: datetime) -> None:
    """更正: the corrected result replaces the one before, so the hand-overs of that one
    still open (``earlier``, taken before the correction) are withdrawn (superseded,
    audited): nobody owes a follow-up of a result no longer standing."""
    for follow_up in earlier:
        follow_up.status, follow_up.closed_at, follow_up.closed_by = "superseded", now, actor
        session.add(follow_up)
        session.flush()
        audit.record(session, actor, "followup.superseded", str(follow_up.task_id), follow_up=follow_up.id,
                     result=result.id)


def outcome_of(value: str | None) -> str:
    """The outcome code 结论= names (Chinese name or code)."""
    text = (value or "").strip()
    if not text:
        raise Refusal("missing_argument", key="结论")  # shown as typed (SPEC §5)
    if text in OUTCOMES:
        return OUTCOMES[text]
    if text.lower() in OUTCOMES.values():
        return text.lower()
    raise Refusal("bad_outcome", value=text, allowed=list(OUTCOMES))


def receivers(settings: Settings, unit_id: str | None) -> list[Destination]:
    """Who is told of a unit's follow-ups and owes them: ``[roles.units.<unit>] leads``,
    failing them its approvers, failing them the admins — someone must be (art. 18)."""
    return recipients.first_reachable(settings, (recipients.unit_people(settings, unit_id, "leads"),
                                                 recipients.unit_people(settings, unit_id, "approvers"),
                                                 list(settings.roles.admins)))


def due_of(follow_up: FollowUp, calendar: Calendar, settings: Settings) -> DueDate:
    """A hand-over is closed within ``[followups] days`` working days of its publication."""
    return calendar.working_days_after(bureau_date(follow_up.created_at, settings.bureau.timezone),
                                       settings.followups.days)


def handovers(session: Session, task_id: int) -> list[FollowUp]:
    """The task's hand-overs, oldest first (a correction may have made another)."""
    return list(session.exec(select(FollowUp).where(FollowUp.task_id == task_id, FollowUp.kind == HANDOVER)
                             .order_by(col(FollowUp.id))))


def transfers(session: Session, task_id: int) -> list[FollowUp]:
    return list(session.exec(select(FollowUp).where(FollowUp.task_id == task_id, FollowUp.kind != HANDOVER)
                             .order_by(col(FollowUp.id))))


def may_dispose(settings: Settings, identity: Identity, follow_up: FollowUp, batch: Batch) -> bool:
    """The receiving unit's leads, the batch's lead office, or an admin (SPEC §5 处置);
    where the receiving unit has no leads configured, its approvers stand in for them —
    they are the ones told (``receivers``)."""
    if ADMIN in identity.roles:
        return True
    leads = identity.units.get(LEAD, frozenset())
    if follow_up.target in leads or (batch.lead_unit_id is not None and batch.lead_unit_id in leads):
        return True
    unit = settings.roles.units.get(follow_up.target)
    return (unit is not None and not unit.leads and follow_up.target in identity.units.get(APPROVER, frozenset()))


@dataclass(frozen=True)
class Disposed:
    follow_up: FollowUp
    task: Task
    transfers: list[FollowUp]
    already: bool = False


def dispose(session: Session, settings: Settings, identity: Identity, task_id: int, outcome: str | None,
            case_no: str | None, note: str | None, on: date | None, today: date, now: datetime) -> Disposed:
    """处置: close the task's open hand-over with its outcome (art. 18, 19, 23), once.

    Who may is checked before the outcome is looked at; a closed one says so and changes
    nothing. Where listing in the abnormal-operations list is required, an order to
    rectify or 无需处置 cannot close it (art. 18: 不得以责令改正、行政指导代替列入).
    """
    task = session.get(Task, task_id)
    if task is None:
        raise Refusal("unknown_task", task=task_id)
    found = handovers(session, task_id)
    if not found:
        raise Refusal("no_follow_up", task=task_id)
    batch = session.get_one(Batch, task.batch_id)
    follow_up = next((f for f in found if f.status == "open"), found[-1])  # else: closed or withdrawn
    if not may_dispose(settings, identity, follow_up, batch):
        raise Refusal("not_receiving_unit", task=task_id, unit=follow_up.target)
    if follow_up.status != "open":
        return Disposed(follow_up, task, transfers(session, task_id), already=True)
    code = outcome_of(outcome)
    if follow_up.abnormal_list and code in NOT_INSTEAD_OF_LISTING:
        raise Refusal("listing_required", task=task_id, outcome=code)
    case_no = (case_no or "").strip() or None
    if case_no and code != "case":
        raise Refusal("case_no_only_for_case")
    day = on or today
    if day > today:
        raise Refusal("future_date", key="date", value=day.isoformat())
    actor = identity.actor.label
    follow_up.status, follow_up.outcome, follow_up.case_no = "done", code, case_no
    follow_up.outcome_note, follow_up.outcome_on = (note or "").strip() or None, day
    follow_up.closed_by, follow_up.closed_at = actor, now
    session.add(follow_up)
    session.flush()
    audit.record(session, actor, "followup.closed", str(task_id), follow_up=follow_up.id, outcome=code,
                 case_no=case_no, on=day.isoformat())
    return Disposed(follow_up, task, transfers(session, task_id))


def followup_deadlines(session: Session, settings: Settings, calendar: Calendar) -> dict[tuple[str, str], dict]:
    """The reminder ladder's deadlines of open hand-overs (art. 18, 25): due ``[followups]
    days`` working days after publication, owed by the receiving unit's people
    (``receivers``); overdue, the batch's lead office, then the receiving unit's
    accountability contacts hear of it. Whatever the batch's state: a completed batch's
    follow-ups are still owed."""
    found: dict[tuple[str, str], dict] = {}
    rows = session.exec(select(FollowUp, Task.batch_id).join(Task, col(Task.id) == FollowUp.task_id)
                        .where(FollowUp.kind == HANDOVER, FollowUp.status == "open")).all()
    for follow_up, batch_id in rows:
        due = due_of(follow_up, calendar, settings)
        found[("followup", f"followup:{follow_up.id}")] = {
            "task_id": follow_up.task_id, "batch_id": batch_id, "unit_id": follow_up.target,
            "owed_by": [f"receivers:{follow_up.target}"], "due": due.day, "provisional": due.provisional}
    return found
