"""Follow-up after a published result (art. 18, 谁管辖、谁负责): problems found are handed
to the object's jurisdiction unit; where the category means listing in the
abnormal-operations list, the hand-off says so, because an order to rectify or
administrative guidance cannot replace the listing."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.chat.identity import ADMIN, LEAD, Identity
from bot.refusal import Refusal
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
