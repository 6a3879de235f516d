"""Results (art. 14, 19, 20, 21): the inspectors of a task enter one of the eight
categories (谁检查、谁录入); the approvers of the lead inspector's unit approve —
which publishes it onto the object's credit record — or return it with a reason. A
published result is never edited, only superseded by an audited correction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from bot.batches.followups import hand_over
from bot.batches.inspection import own_task, team_of
from bot.batches.lifecycle import advance
from bot.chat.identity import ADMIN, APPROVER, LEAD, Identity
from bot.refusal import Refusal
from storage import audit
from storage.models import Batch, FollowUp, InspectionObject, Inspector, Result, Task, Unit

NONCOOPERATION = 6  # art. 19: with one of its four cases
OPEN = ("drawn", "in_progress")  # a cancelled or completed batch takes no more results
CASES = range(1, 5)


@dataclass(frozen=True)
class Entry:
    """What the inspector entered."""

    category: int
    note: str = ""
    signed: bool | None = None
    unsigned_reason: str | None = None
    case: int | None = None
    witness: str = ""  # who witnessed the record, where someone did (art. 14)


def check_entry(entry: Entry) -> None:
    if entry.category not in range(1, 9):
        raise Refusal("bad_category", value=entry.category)
    if entry.category == NONCOOPERATION and entry.case not in CASES:
        raise Refusal("case_required")
    if entry.category != NONCOOPERATION and entry.case is not None:
        raise Refusal("case_only_for_6")
    if entry.signed is False and not (entry.unsigned_reason or "").strip():
        raise Refusal("unsigned_needs_reason")


def latest(session: Session, task_id: int) -> Result | None:
    return session.exec(select(Result).where(Result.task_id == task_id).order_by(col(Result.id).desc())).first()


def submittable(session: Session, task_id: int, inspector_id: str | None) -> Task:
    """The caller's own inspected task, still waiting for its result (refused otherwise):
    checked before the bot asks anything more about a result, and again at submission."""
    task, batch, _ = own_task(session, task_id, inspector_id)
    if task.status == "submitted":
        raise Refusal("result_pending", task=task_id)
    if task.status == "approved":
        raise Refusal("result_published", task=task_id)
    if batch.status not in OPEN:
        raise Refusal("task_closed", task=task_id, status=batch.status)
    if task.status != "inspected":
        raise Refusal("not_inspected", task=task_id)
    return task


def submit(session: Session, actor: str, task_id: int, inspector_id: str | None, entry: Entry,
           now: datetime) -> Result:
    """Enter the result of an inspected task; it waits for approval."""
    task = submittable(session, task_id, inspector_id)
    check_entry(entry)
    witness = entry.witness.strip() or None
    result = Result(task_id=task_id, category=entry.category, note=entry.note.strip(), signed=entry.signed,
                    unsigned_reason=(entry.unsigned_reason or None) if entry.signed is False else None,
                    noncooperation_case=entry.case, witness=witness, status="submitted", submitted_by=actor,
                    submitted_at=now)
    task.status = "submitted"
    session.add_all([result, task])
    session.flush()
    audit.record(session, actor, "result.submitted", str(task_id), result=result.id, category=entry.category,
                 signed=entry.signed, case=entry.case, **({"witness": witness} if witness else {}))
    return result


def lead_unit(session: Session, task_id: int) -> str | None:
    """The unit of the task's lead inspector (主办), whose approvers decide (SPEC §1)."""
    lead = next((a for a in team_of(session, task_id) if a.status != "recused"), None)
    inspector = session.get(Inspector, lead.inspector_id) if lead else None
    return inspector.unit_id if inspector else None


def may_decide(session: Session, identity: Identity, task: Task) -> bool:
    """Approvers of the lead inspector's unit, the batch's lead office, or an admin."""
    if ADMIN in identity.roles:
        return True
    assert task.id is not None  # a stored task
    batch = session.get_one(Batch, task.batch_id)
    unit = lead_unit(session, task.id)
    return ((unit is not None and unit in identity.units.get(APPROVER, frozenset()))
            or (batch.lead_unit_id is not None and batch.lead_unit_id in identity.units.get(LEAD, frozenset())))


def refuse_own(session: Session, identity: Identity, task: Task) -> None:
    """Nobody decides on their own work (细则第十四条 谁检查、谁录入; 第二十条): whoever was
    ever on the task's team — recused or replaced too — neither approves, returns nor
    corrects its result, whatever role they hold and whichever account they use."""
    assert task.id is not None  # a stored task
    if identity.is_one_of({a.inspector_id for a in team_of(session, task.id)}):
        raise Refusal("own_result", task=task.id)


def record_units(session: Session, identity: Identity, result: Result, task: Task) -> None:
    """Keep on a result being published the units it is published with (art. 21): the
    inspecting unit (the lead inspector's, with its name) and the deciding unit — the
    batch's lead office when its lead decided and not as an approver of the inspecting
    unit, else the inspecting unit (whose approvers decide, SPEC §1). Read back by the
    feed and the pages whatever the directory becomes."""
    assert task.id is not None  # a stored task
    unit_id = lead_unit(session, task.id)
    unit = session.get(Unit, unit_id) if unit_id else None
    batch = session.get_one(Batch, task.batch_id)
    deciding = unit_id
    if (ADMIN not in identity.roles and unit_id not in identity.units.get(APPROVER, frozenset())
            and batch.lead_unit_id in identity.units.get(LEAD, frozenset())):
        deciding = batch.lead_unit_id
    result.inspecting_unit, result.inspecting_unit_name = unit_id, unit.name if unit else None
    result.deciding_unit = deciding


@dataclass(frozen=True)
class Decided:
    result: Result
    task: Task
    follow_up: FollowUp | None = None
    already: bool = False


def _pending_result(session: Session, result_id: int, identity: Identity) -> tuple[Result, Task]:
    result = session.get(Result, result_id)
    if result is None:
        raise Refusal("unknown_result", result=result_id)
    task = session.get_one(Task, result.task_id)
    if not may_decide(session, identity, task):
        raise Refusal("not_your_unit", task=task.id)
    refuse_own(session, identity, task)
    batch = session.get_one(Batch, task.batch_id)
    if batch.status not in OPEN and result.status == "submitted":
        raise Refusal("task_closed", task=task.id, status=batch.status)
    return result, task


def approve(session: Session, identity: Identity, result_id: int, now: datetime) -> Decided:
    """批准: the result is published onto the object's credit record (art. 20, 21)."""
    actor = identity.actor.label
    result, task = _pending_result(session, result_id, identity)
    if result.status == "approved":
        return Decided(result, task, already=True)
    if result.status != "submitted":
        raise Refusal("result_not_pending", task=task.id, status=result.status)
    result.status, result.decided_by, result.decided_at, result.published_at = "approved", actor, now, now
    record_units(session, identity, result, task)
    task.status = "approved"
    session.add_all([result, task])
    session.flush()
    audit.record(session, actor, "result.published", str(task.id), result=result.id, category=result.category)
    follow_up = hand_over(session, result, session.get_one(InspectionObject, task.object_id), actor, now)
    advance(session, actor, task.batch_id, now)
    return Decided(result, task, follow_up)


def return_result(session: Session, identity: Identity, result_id: int, reason: str, now: datetime) -> Decided:
    """退回: back to the inspectors with the reason; they enter it again."""
    actor = identity.actor.label
    result, task = _pending_result(session, result_id, identity)
    if result.status == "returned":
        return Decided(result, task, already=True)
    if result.status != "submitted":
        raise Refusal("result_not_pending", task=task.id, status=result.status)
    if not reason.strip():
        raise Refusal("return_needs_reason")
    result.status, result.decided_by, result.decided_at, result.return_reason = "returned", actor, now, reason.strip()
    task.status = "inspected"
    session.add_all([result, task])
    session.flush()
    audit.record(session, actor, "result.returned", str(task.id), result=result.id, reason=reason.strip())
    return Decided(result, task)


def correct(session: Session, identity: Identity, task_id: int, entry: Entry, reason: str, now: datetime) -> Result:
    """更正: supersede a published result with a new one; the old stays on record."""
    task = session.get(Task, task_id)
    if task is None:
        raise Refusal("unknown_task", task=task_id)
    if not may_decide(session, identity, task):
        raise Refusal("not_your_unit", task=task_id)
    refuse_own(session, identity, task)
    old = latest(session, task_id)
    if old is None or old.status != "approved":
        raise Refusal("nothing_to_correct", task=task_id)
    if not reason.strip():
        raise Refusal("correction_needs_reason")
    check_entry(entry)
    actor = identity.actor.label
    new = Result(task_id=task_id, category=entry.category, note=entry.note.strip(), signed=old.signed,
                 unsigned_reason=old.unsigned_reason, noncooperation_case=entry.case, witness=old.witness,
                 status="approved",
                 submitted_by=actor, submitted_at=now, decided_by=actor, decided_at=now, published_at=now,
                 supersedes=old.id, correction_reason=reason.strip())
    old.status = "superseded"
    record_units(session, identity, new, task)
    session.add_all([old, new])
    session.flush()
    audit.record(session, actor, "result.corrected", str(task_id), old=old.id, new=new.id, category=entry.category,
                 reason=reason.strip())
    hand_over(session, new, session.get_one(InspectionObject, task.object_id), actor, now)  # art. 18, as for any result
    return new
