"""The rules behind the workflow, straight through the service layer (no chat), on SQLite
and PostgreSQL: 无利害关系 (art. 12, ``confirmation``), 完成 and its date rules (art. 14,
20, ``inspection``), results — submit, approve/publish, return, correct — (art. 14,
19–21, ``results``) and the hand-offs after publication (art. 18, ``followups``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.batches import lifecycle
from bot.batches.confirmation import confirm
from bot.batches.followups import ABNORMAL_LIST, NEEDS_FOLLOW_UP, hand_over
from bot.batches.inspection import mark_inspected
from bot.batches.progress import progress
from bot.batches.recusal import recuse
from bot.batches.results import Entry, approve, correct, latest, lead_unit, return_result, submit
from bot.chat.identity import identify
from bot.refusal import Refusal
from bot.roles import Actor
from bot.rules.arguments import parse_arguments
from storage import audit
from storage.calendar import load_calendar
from storage.db import transaction
from storage.models import Assignment, AuditEntry, Batch, FollowUp, InspectionObject, Result, Task
from tests.support.batch_district import seed_district
from tests.support.results_district import (
    APPROVER_OF,
    LATER,
    LATER_NOW,
    NOW,
    SETTINGS,
    TODAY,
    UNITS,
    confirm_all,
    drawn_batch,
    inspected,
    submitted,
    tasks_of,
    team,
)

# ----- helpers ------------------------------------------------------------------------------------------------------


@pytest.fixture
def district(engine, tmp_path):
    seed_district(engine, tmp_path)
    return engine


def outsider(engine, task_id: int) -> str:
    on_task = set(team(engine, task_id, standing=False))
    return next(f"I{n:02d}" for n in range(1, 9) if f"I{n:02d}" not in on_task)


def who(session, user: str):
    """The identity configured for ``user`` (SETTINGS), as the bot would see them on WeCom."""
    return identify(session, SETTINGS, Actor("wecom", user))


def approver_for(engine, task_id: int, *, right: bool = True) -> str:
    """The approver of the task's lead inspector's unit, or (``right=False``) of the other station."""
    with transaction(engine) as session:
        unit = lead_unit(session, task_id)
    return APPROVER_OF[unit] if right else APPROVER_OF[next(u for u in UNITS if u != unit)]


def refused(engine, call) -> Refusal:
    """Run ``call(session)`` in a transaction that must be refused (and so rolled back)."""
    with pytest.raises(Refusal) as caught:
        with transaction(engine) as session:
            call(session)
    assert caught.value.text(), f"refusal {caught.value.message} has no text for a person"
    return caught.value


def state(engine) -> dict:
    """Everything the workflow changes, to compare before and after a no-op."""
    with transaction(engine) as session:
        def rows(model, *columns):
            return sorted(tuple(getattr(r, c) for c in columns) for r in session.scalars(select(model)))
        return {
            "batches": rows(Batch, "id", "status", "completed_at"),
            "tasks": rows(Task, "id", "status", "inspected_on"),
            "assignments": rows(Assignment, "id", "inspector_id", "status", "answered_at", "recusal_reason"),
            "results": rows(Result, "id", "status", "category", "decided_by", "published_at", "supersedes"),
            "follow_ups": rows(FollowUp, "id", "task_id", "abnormal_list"),
            "audit": session.scalar(select(func.count()).select_from(AuditEntry)),
        }


def audited(engine, action: str, subject: str | None = None) -> list[AuditEntry]:
    with transaction(engine) as session:
        query = select(AuditEntry).where(AuditEntry.action == action)
        if subject is not None:
            query = query.where(AuditEntry.subject == subject)
        return list(session.scalars(query.order_by(AuditEntry.seq)))


def cancel(engine, batch_id: str) -> None:
    with transaction(engine) as session:
        lifecycle.cancel(session, "admin", parse_arguments(f"批次={batch_id} 原因=计划调整", lifecycle.CANCEL_KEYS),
                         NOW)


# ----- confirmation (art. 12) ---------------------------------------------------------------------------------------


def test_a_task_is_accepted_when_its_whole_team_has_confirmed(district):
    batch_id = drawn_batch(district)
    task = tasks_of(district, batch_id)[0]
    first, second = team(district, task.id)
    with transaction(district) as session:
        done = confirm(session, "wecom:a", task.id, first, NOW)
    assert (done.accepted, done.already) == (False, False)
    assert tasks_of(district, batch_id)[0].status == "drawn"
    with transaction(district) as session:
        assert session.get(Batch, batch_id).status == "drawn"
        done = confirm(session, "wecom:b", task.id, second, NOW)
    assert (done.accepted, done.already) == (True, False)
    assert tasks_of(district, batch_id)[0].status == "accepted"
    with transaction(district) as session:
        assert session.get(Batch, batch_id).status == "in_progress"  # a task has started
        statuses = {a.status for a in session.scalars(select(Assignment).where(Assignment.task_id == task.id))}
    assert statuses == {"confirmed"}
    entries = audited(district, "task.confirmed", str(task.id))
    assert [(e.actor, e.detail["inspector"], e.detail["accepted"]) for e in entries] == [
        ("wecom:a", first, False), ("wecom:b", second, True)]
    assert audited(district, "batch.in_progress", batch_id)


def test_confirming_again_changes_nothing_and_says_so(district):
    batch_id = drawn_batch(district)
    task = tasks_of(district, batch_id)[0]
    confirm_all(district, task.id)
    before = state(district)
    with transaction(district) as session:
        again = confirm(session, "wecom:a", task.id, team(district, task.id)[0], NOW + timedelta(hours=1))
    assert again.already and again.accepted
    assert state(district) == before


def test_confirmation_refusals(district):
    batch_id = drawn_batch(district)
    first, other = tasks_of(district, batch_id)[:2]
    member = team(district, first.id)[0]
    assert refused(district, lambda s: confirm(s, "x", 999_999, member, NOW)).message == "unknown_task"
    stranger = outsider(district, first.id)
    refusal = refused(district, lambda s: confirm(s, "x", first.id, stranger, NOW))
    assert refusal.message == "not_on_task" and stranger in refusal.text()
    with transaction(district) as session:
        recuse(session, "x", first.id, member, "亲属关系", TODAY, NOW)
    assert refused(district, lambda s: confirm(s, "x", first.id, member, NOW)).message == "already_recused"
    before = state(district)
    cancel(district, batch_id)
    colleague = team(district, other.id)[0]
    refusal = refused(district, lambda s: confirm(s, "x", other.id, colleague, NOW))
    assert refusal.message == "task_closed"
    assert state(district)["assignments"] == before["assignments"]


def test_confirming_an_unstaffed_task_does_not_call_it_accepted(district):
    batch_id = drawn_batch(district, count=1, mode="小随机")
    (task,) = tasks_of(district, batch_id)
    for _ in range(3):  # a station of four: two replacements, then nobody
        with transaction(district) as session:
            left = recuse(session, "x", task.id, team(district, task.id)[0], "其他", TODAY, NOW)
    assert left.replacement is None and tasks_of(district, batch_id)[0].status == "unstaffed"
    (last,) = team(district, task.id)
    with transaction(district) as session:
        done = confirm(session, "x", task.id, last, NOW)
    assert tasks_of(district, batch_id)[0].status == "unstaffed"
    assert not done.accepted, "an unstaffed task (one inspector left) was reported as accepted"


# ----- inspection (art. 14, 20) -------------------------------------------------------------------------------------


def test_inspection_only_after_the_whole_team_confirmed(district):
    batch_id = drawn_batch(district)
    task = tasks_of(district, batch_id)[0]
    lead, partner = team(district, task.id)

    def done(session):
        return mark_inspected(session, "x", task.id, lead, LATER, LATER, LATER_NOW)

    assert refused(district, done).message == "not_accepted"
    with transaction(district) as session:
        confirm(session, "x", task.id, lead, NOW)
    assert refused(district, done).message == "not_accepted"
    with transaction(district) as session:
        confirm(session, "x", task.id, partner, NOW)
        assert done(session).task.status == "inspected"


@pytest.mark.parametrize("on, allowed", [
    (TODAY - timedelta(days=1), False),  # before the draw
    (TODAY, True),  # the draw day itself
    (LATER - timedelta(days=1), True),
    (LATER, True),  # today
    (LATER + timedelta(days=1), False),  # in the future
])
def test_inspection_date_lies_between_the_draw_and_today(district, on, allowed):
    batch_id = drawn_batch(district)
    task = tasks_of(district, batch_id)[0]
    confirm_all(district, task.id)
    lead = team(district, task.id)[0]

    def done(session):
        return mark_inspected(session, "x", task.id, lead, on, LATER, LATER_NOW)

    if allowed:
        with transaction(district) as session:
            done(session)
        assert tasks_of(district, batch_id)[0].inspected_on == on
        (entry,) = audited(district, "task.inspected", str(task.id))
        assert entry.detail == {"on": on.isoformat()}
    else:
        refusal = refused(district, done)
        assert refusal.message == "bad_inspection_date"
        assert on.isoformat() in refusal.text() and TODAY.isoformat() in refusal.text()
        assert LATER.isoformat() in refusal.text()
        assert tasks_of(district, batch_id)[0].status == "accepted"


def test_inspection_is_marked_once(district):
    batch_id = drawn_batch(district)
    task = tasks_of(district, batch_id)[0]
    lead, partner = team(district, task.id)
    inspected(district, task.id, on=TODAY + timedelta(days=1))
    before = state(district)
    with transaction(district) as session:  # the partner, another day: nothing changes
        again = mark_inspected(session, "x", task.id, partner, LATER, LATER, LATER_NOW)
    assert again.already and again.task.inspected_on == TODAY + timedelta(days=1)
    assert state(district) == before


def test_inspection_by_someone_not_on_the_team_or_of_a_cancelled_batch_is_refused(district):
    batch_id = drawn_batch(district)
    task = tasks_of(district, batch_id)[0]
    confirm_all(district, task.id)
    stranger = outsider(district, task.id)
    refusal = refused(district, lambda s: mark_inspected(s, "x", task.id, stranger, LATER, LATER, LATER_NOW))
    assert refusal.message == "not_on_task"
    assert refused(district, lambda s: mark_inspected(s, "x", task.id, None, LATER, LATER, LATER_NOW)).message \
        == "not_on_task"
    cancel(district, batch_id)
    lead = team(district, task.id)[0]
    refusal = refused(district, lambda s: mark_inspected(s, "x", task.id, lead, LATER, LATER, LATER_NOW))
    assert refusal.message == "task_closed"
    assert tasks_of(district, batch_id)[0].status == "accepted"


def test_a_recusal_after_acceptance_waits_for_the_replacement(district):
    batch_id = drawn_batch(district)
    task = tasks_of(district, batch_id)[0]
    confirm_all(district, task.id)
    leaving, staying = team(district, task.id)
    with transaction(district) as session:
        replacement = recuse(session, "x", task.id, leaving, "发现亲属关系", TODAY, NOW).replacement
    assert replacement and tasks_of(district, batch_id)[0].status == "drawn"
    refusal = refused(district, lambda s: mark_inspected(s, "x", task.id, staying, LATER, LATER, LATER_NOW))
    assert refusal.message == "not_accepted"
    assert refused(district, lambda s: mark_inspected(s, "x", task.id, leaving, LATER, LATER, LATER_NOW)).message \
        == "not_on_task"  # the recused inspector is off the task
    with transaction(district) as session:
        assert confirm(session, "x", task.id, replacement, NOW).accepted
        assert mark_inspected(session, "x", task.id, staying, LATER, LATER, LATER_NOW).task.status == "inspected"


def test_an_unstaffed_task_cannot_be_inspected(district):
    batch_id = drawn_batch(district, count=1, mode="小随机")
    (task,) = tasks_of(district, batch_id)
    for _ in range(3):
        with transaction(district) as session:
            recuse(session, "x", task.id, team(district, task.id)[0], "其他", TODAY, NOW)
    (last,) = team(district, task.id)
    with transaction(district) as session:
        confirm(session, "x", task.id, last, NOW)
    refusal = refused(district, lambda s: mark_inspected(s, "x", task.id, last, LATER, LATER, LATER_NOW))
    assert refusal.message == "not_accepted"
    assert tasks_of(district, batch_id)[0].status == "unstaffed"


# ----- results: submit (art. 14, 19, 20) ----------------------------------------------------------------------------


def test_a_result_needs_an_inspected_task_of_ones_own(district):
    batch_id = drawn_batch(district)
    task = tasks_of(district, batch_id)[0]
    confirm_all(district, task.id)
    lead, partner = team(district, task.id)
    entry = Entry(category=1, signed=True)
    assert refused(district, lambda s: submit(s, "x", task.id, lead, entry, NOW)).message == "not_inspected"
    inspected(district, task.id)
    stranger = outsider(district, task.id)
    assert refused(district, lambda s: submit(s, "x", task.id, stranger, entry, NOW)).message == "not_on_task"
    assert refused(district, lambda s: submit(s, "x", 999_999, lead, entry, NOW)).message == "unknown_task"
    with transaction(district) as session:  # the partner (协办) may enter it too: 谁检查、谁录入
        assert submit(session, "x", task.id, partner, entry, NOW).status == "submitted"


@pytest.mark.parametrize("entry, message", [
    (Entry(category=0), "bad_category"),
    (Entry(category=9), "bad_category"),
    (Entry(category=6), "case_required"),
    (Entry(category=6, case=5), "case_required"),
    (Entry(category=6, case=0), "case_required"),
    (Entry(category=1, case=2), "case_only_for_6"),
    (Entry(category=1, signed=False), "unsigned_needs_reason"),
    (Entry(category=5, signed=False, unsigned_reason="  "), "unsigned_needs_reason"),
])
def test_a_malformed_result_is_refused_and_writes_nothing(district, entry, message):
    batch_id = drawn_batch(district)
    task = tasks_of(district, batch_id)[0]
    lead = inspected(district, task.id)
    before = state(district)
    refusal = refused(district, lambda s: submit(s, "x", task.id, lead, entry, LATER_NOW))
    assert refusal.message == message
    if message == "case_required":
        assert "第十九条" in refusal.text() and all(str(n) in refusal.text() for n in range(1, 5))
    assert state(district) == before


def test_a_submitted_result_records_what_was_entered(district):
    batch_id = drawn_batch(district)
    first, second = tasks_of(district, batch_id)[:2]
    result_id = submitted(district, first.id, Entry(category=6, note=" 拒不开门 ", signed=False,
                                                    unsigned_reason="负责人拒绝签字", case=1))
    with transaction(district) as session:
        result = session.get(Result, result_id)
        assert (result.category, result.note, result.signed, result.unsigned_reason, result.noncooperation_case,
                result.status) == (6, "拒不开门", False, "负责人拒绝签字", 1, "submitted")
        assert session.get(Task, first.id).status == "submitted"
    (entry,) = audited(district, "result.submitted", str(first.id))
    assert entry.detail == {"result": result_id, "category": 6, "signed": False, "case": 1}
    # signed: a reason given anyway is not kept as a reason for not signing
    other = submitted(district, second.id, Entry(category=1, signed=True, unsigned_reason="不需要"))
    with transaction(district) as session:
        assert session.get(Result, other).unsigned_reason is None
    lead = team(district, first.id)[0]
    refusal = refused(district, lambda s: submit(s, "x", first.id, lead, Entry(category=1), LATER_NOW))
    assert refusal.message == "result_pending"


# ----- results: approve, return, correct (art. 20, 21) --------------------------------------------------------------


@pytest.mark.parametrize("user", ["apr-right", "lead-xy", "admin1"])
def test_a_result_is_approved_by_the_lead_units_approver_the_lead_office_or_an_admin(district, user):
    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    result_id = submitted(district, task.id, Entry(category=2, note="年报未公示", signed=True))
    user = approver_for(district, task.id) if user == "apr-right" else user
    with transaction(district) as session:
        done = approve(session, who(session, user), result_id, LATER_NOW)
    assert not done.already
    with transaction(district) as session:
        result, task = session.get(Result, result_id), session.get(Task, task.id)
        assert (result.status, result.decided_by, task.status) == ("approved", f"wecom:{user}", "approved")
        assert result.published_at == result.decided_at and result.published_at is not None
        assert session.get(Batch, batch_id).status == "completed"  # its only task is published
        (follow_up,) = session.scalars(select(FollowUp)).all()
        obj = session.get(InspectionObject, task.object_id)
    assert (follow_up.task_id, follow_up.target, follow_up.abnormal_list) == (task.id, obj.unit_id, True)
    (entry,) = audited(district, "result.published", str(task.id))
    assert entry.actor == f"wecom:{user}" and entry.detail == {"result": result_id, "category": 2}
    assert audited(district, "followup.created", str(task.id)) and audited(district, "batch.completed", batch_id)


@pytest.mark.parametrize("user", ["apr-wrong", "lead-dc", "lead-xc", "acc-dc", "boss", "inspector"])
def test_nobody_else_may_approve_or_return(district, user):
    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    result_id = submitted(district, task.id)
    user = {"apr-wrong": approver_for(district, task.id, right=False),
            "inspector": team(district, task.id)[0]}.get(user, user)
    before = state(district)
    with transaction(district) as session:
        identity = who(session, user)
    assert refused(district, lambda s: approve(s, identity, result_id, LATER_NOW)).message == "not_your_unit"
    assert refused(district, lambda s: return_result(s, identity, result_id, "不行", LATER_NOW)).message \
        == "not_your_unit"
    assert refused(district, lambda s: correct(s, identity, task.id, Entry(category=1), "错", LATER_NOW)).message \
        == "not_your_unit"
    assert state(district) == before


def test_approving_again_changes_nothing(district):
    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    result_id = submitted(district, task.id, Entry(category=5, signed=True))
    with transaction(district) as session:
        approve(session, who(session, "lead-xy"), result_id, LATER_NOW)
    before = state(district)
    with transaction(district) as session:  # another approver, later: still nothing
        again = approve(session, who(session, approver_for(district, task.id)), result_id,
                        LATER_NOW + timedelta(hours=2))
    assert again.already and again.follow_up is None and again.result.decided_by == "wecom:lead-xy"
    assert state(district) == before
    assert len(before["follow_ups"]) == 1


def test_a_returned_result_goes_back_to_the_inspectors_and_is_entered_again(district):
    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    result_id = submitted(district, task.id, Entry(category=1, signed=True))
    with transaction(district) as session:
        approver = who(session, approver_for(district, task.id))
    assert refused(district, lambda s: return_result(s, approver, result_id, "  ", LATER_NOW)).message \
        == "return_needs_reason"
    with transaction(district) as session:
        done = return_result(session, approver, result_id, " 说明不完整 ", LATER_NOW)
    assert not done.already
    with transaction(district) as session:
        result = session.get(Result, result_id)
        assert (result.status, result.return_reason, result.published_at) == ("returned", "说明不完整", None)
        assert session.get(Task, task.id).status == "inspected"
    (entry,) = audited(district, "result.returned", str(task.id))
    assert entry.detail == {"result": result_id, "reason": "说明不完整"}
    before = state(district)
    with transaction(district) as session:
        assert return_result(session, approver, result_id, "再退一次", LATER_NOW).already
    assert state(district) == before
    assert refused(district, lambda s: approve(s, approver, result_id, LATER_NOW)).message == "result_not_pending"
    lead = team(district, task.id)[0]
    with transaction(district) as session:
        again = submit(session, "x", task.id, lead, Entry(category=5, note="已责令改正", signed=True), LATER_NOW)
        approve(session, approver, again.id, LATER_NOW)
    with transaction(district) as session:
        assert [(r.id, r.status) for r in session.scalars(select(Result).order_by(Result.id))] == [
            (result_id, "returned"), (again.id, "approved")]
        assert latest(session, task.id).id == again.id


def test_a_published_result_cannot_be_edited(district):
    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    result_id = submitted(district, task.id, Entry(category=1, signed=True))
    with transaction(district) as session:
        approver = who(session, approver_for(district, task.id))
        approve(session, approver, result_id, LATER_NOW)
    before = state(district)
    lead = team(district, task.id)[0]
    refusal = refused(district, lambda s: submit(s, "x", task.id, lead, Entry(category=3, signed=True), LATER_NOW))
    assert refusal.message == "result_published" and "更正" in refusal.text()
    assert refused(district, lambda s: return_result(s, approver, result_id, "改", LATER_NOW)).message \
        == "result_not_pending"
    with transaction(district) as session:  # marking it done again is a no-op
        assert mark_inspected(session, "x", task.id, lead, TODAY, LATER, LATER_NOW).already
    assert state(district) == before


def test_a_correction_supersedes_the_published_result_and_keeps_it(district):
    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    result_id = submitted(district, task.id, Entry(category=1, note="一切正常", signed=True))
    with transaction(district) as session:
        approver = who(session, approver_for(district, task.id))
    assert refused(district, lambda s: correct(s, approver, task.id, Entry(category=5), "录入错误", LATER_NOW)) \
        .message == "nothing_to_correct"  # not yet published
    with transaction(district) as session:
        approve(session, approver, result_id, LATER_NOW)
    assert refused(district, lambda s: correct(s, approver, task.id, Entry(category=5), " ", LATER_NOW)).message \
        == "correction_needs_reason"
    assert refused(district, lambda s: correct(s, approver, task.id, Entry(category=6), "录入错误", LATER_NOW)) \
        .message == "case_required"
    assert refused(district, lambda s: correct(s, approver, 999_999, Entry(category=5), "录入错误", LATER_NOW)) \
        .message == "unknown_task"
    with transaction(district) as session:
        new = correct(session, approver, task.id, Entry(category=5, note="已当场责令改正"), " 录入错误 ", LATER_NOW)
    with transaction(district) as session:
        old, new = session.get(Result, result_id), session.get(Result, new.id)
        assert (old.status, old.category, old.note, old.published_at) == ("superseded", 1, "一切正常", LATER_NOW)
        assert (new.status, new.category, new.supersedes, new.correction_reason, new.signed) == (
            "approved", 5, result_id, "录入错误", True)
        assert session.get(Task, task.id).status == "approved"
        assert latest(session, task.id).id == new.id
        (report,) = progress(session, load_calendar(session), LATER, batch_id)
    assert dict(report.categories) == {5: 1}  # the superseded result no longer counts
    (entry,) = audited(district, "result.corrected", str(task.id))
    assert entry.detail == {"old": result_id, "new": new.id, "category": 5, "reason": "录入错误"}
    # a second correction supersedes the first; the chain stays on record
    with transaction(district) as session:
        third = correct(session, who(session, "lead-xy"), task.id, Entry(category=6, case=2), "补正情形", LATER_NOW)
        chain = [(r.id, r.status, r.supersedes) for r in session.scalars(select(Result).order_by(Result.id))]
        audit.verify(session)
    assert chain == [(result_id, "superseded", None), (new.id, "superseded", result_id),
                     (third.id, "approved", new.id)]


def test_a_correction_to_a_category_needing_follow_up_hands_it_over(district):
    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    result_id = submitted(district, task.id, Entry(category=1, signed=True))
    with transaction(district) as session:
        approver = who(session, approver_for(district, task.id))
        approve(session, approver, result_id, LATER_NOW)
    with transaction(district) as session:
        correct(session, approver, task.id, Entry(category=2, note="年报未公示"), "录入错误", LATER_NOW)
        follow_ups = session.scalars(select(FollowUp)).all()
    assert [(f.task_id, f.abnormal_list) for f in follow_ups] == [(task.id, True)], \
        "no art. 18 hand-off after correcting a published result to category 2"


def test_no_result_is_entered_or_published_in_a_cancelled_batch(district):
    batch_id = drawn_batch(district)
    first, second = tasks_of(district, batch_id)[:2]
    result_id = submitted(district, first.id)
    lead = inspected(district, second.id)
    cancel(district, batch_id)
    with transaction(district) as session:
        approver = who(session, "lead-xy")
    problems = []
    for what, call in (("approve", lambda s: approve(s, approver, result_id, LATER_NOW)),
                       ("submit", lambda s: submit(s, "x", second.id, lead, Entry(category=1, signed=True),
                                                   LATER_NOW))):
        try:
            with transaction(district) as session:
                call(session)
            problems.append(what)
        except Refusal:
            pass
    assert not problems, f"allowed in a cancelled batch: {problems}"


# ----- follow-ups (art. 18) -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("market", [True, False], ids=["market", "non-market"])
def test_which_categories_are_handed_over_and_which_must_be_listed(district, market):
    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    assert NEEDS_FOLLOW_UP == {2, 3, 4, 5, 6, 8} and ABNORMAL_LIST == {2, 3, 4}
    handed = {}
    with transaction(district) as session:
        obj = session.get(InspectionObject, task.object_id)
        obj.market = market  # 产品、项目、行为 are non-market objects: never on the abnormal-operations list
        session.add(obj)
        for category in range(1, 9):
            result = Result(task_id=task.id, category=category, submitted_by="x")
            handed[category] = hand_over(session, result, obj, "wecom:lead-xy", LATER_NOW)
    assert [c for c, f in handed.items() if f is None] == [1, 7]
    for category, follow_up in handed.items():
        if follow_up is None:
            continue
        listing = market and category in (2, 3, 4)
        assert (follow_up.kind, follow_up.target, follow_up.abnormal_list, follow_up.status) == (
            "handover", obj.unit_id, listing, "open"), category
        assert ("不得以责令改正" in follow_up.note) == listing, (category, follow_up.note)
    entries = audited(district, "followup.created", str(task.id))
    assert [(e.detail["category"], e.detail["abnormal_list"]) for e in entries] == [
        (c, market and c in (2, 3, 4)) for c in (2, 3, 4, 5, 6, 8)]


@pytest.mark.parametrize("category, expected", [(1, None), (7, None), (4, True), (8, False)])
def test_approval_hands_over_what_the_category_needs(district, category, expected):
    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    result_id = submitted(district, task.id, Entry(category=category, signed=True))
    with transaction(district) as session:
        done = approve(session, who(session, "lead-xy"), result_id, LATER_NOW)
        follow_ups = session.scalars(select(FollowUp)).all()
    if expected is None:
        assert done.follow_up is None and follow_ups == []
    else:
        (follow_up,) = follow_ups
        assert done.follow_up.id == follow_up.id and follow_up.abnormal_list is expected


def test_who_inspected_does_not_approve_their_own_result(district):
    """An approver who is on the task's team cannot approve it (separation of duties)."""
    from bot.chat.identity import APPROVER, Identity
    from bot.roles import Actor

    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    result_id = submitted(district, task.id, Entry(category=1, signed=True))
    with transaction(district) as session:
        unit = lead_unit(session, task.id)
    member = team(district, task.id)[1]
    insider = Identity(Actor("wecom", "insider"), frozenset({APPROVER, "inspector"}),
                       {APPROVER: frozenset({unit})}, member)
    before = state(district)
    assert refused(district, lambda s: approve(s, insider, result_id, LATER_NOW)).message == "own_result"
    assert state(district) == before


# ----- separation of duties (art. 14, 20: nobody decides on their own work; issue 17 items 4–6) ---------------------


def _accounts(engine, inspector_id: str, wecom: str | None = None, dingtalk: str | None = None, **state) -> None:
    """Give an inspector's directory record these accounts (and e.g. ``active=False``)."""
    from sqlalchemy import update

    from storage.models import Inspector
    with transaction(engine) as session:
        session.execute(update(Inspector).where(Inspector.id == inspector_id)
                        .values(wecom_userid=wecom, dingtalk_userid=dingtalk, **state))


def _deciding(role: str, unit: str, *entries: str):
    """SETTINGS with ``entries`` also holding ``role`` (approver of ``unit``, the lead office U-XY, admin)."""
    roles = SETTINGS.roles.model_copy(deep=True)
    if role == "admin":
        roles.admins += list(entries)
    else:
        unit = unit if role == "approvers" else "U-XY"
        people = roles.units[unit]
        setattr(people, role, [*getattr(people, role), *entries])
    return SETTINGS.model_copy(update={"roles": roles})


def _recused_member_with_result(district) -> tuple[Task, str, int, str]:
    """A task whose partner recused before the inspection and whose result the rest of the
    team submitted: the task, the recused member, the result id and the deciding unit."""
    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    member = team(district, task.id)[1]
    with transaction(district) as session:
        recuse(session, "x", task.id, member, "亲属关系", TODAY, NOW)
    assert member not in team(district, task.id)
    result_id = submitted(district, task.id, Entry(category=1, signed=True))
    with transaction(district) as session:
        unit = lead_unit(session, task.id)
    return task, member, result_id, unit


@pytest.mark.parametrize("role", ["approvers", "leads", "admin"])
def test_a_recused_team_member_never_approves_returns_or_corrects_that_result(district, role):
    """Submit → recuse → approve passed (recused members were skipped), and 更正 had no check."""
    task, member, result_id, unit = _recused_member_with_result(district)
    _accounts(district, member, wecom="zhangsan")
    settings = _deciding(role, unit, "wecom:zhangsan")
    with transaction(district) as session:
        insider = identify(session, settings, Actor("wecom", "zhangsan"))
    assert insider.inspector_id == member and insider.roles > {"inspector"}
    before = state(district)
    assert refused(district, lambda s: approve(s, insider, result_id, LATER_NOW)).message == "own_result"
    assert refused(district, lambda s: return_result(s, insider, result_id, "不行", LATER_NOW)).message \
        == "own_result"
    assert state(district) == before
    with transaction(district) as session:
        approve(session, who(session, "admin1"), result_id, LATER_NOW)
    before = state(district)
    refusal = refused(district, lambda s: correct(s, insider, task.id, Entry(category=5), "录入错误", LATER_NOW))
    assert refusal.message == "own_result" and "更正" in refusal.text()
    assert state(district) == before


def test_a_team_member_no_longer_listed_or_active_is_still_on_the_team(district):
    """Whether someone was on the team does not depend on the directory's state today."""
    task, member, result_id, unit = _recused_member_with_result(district)
    _accounts(district, member, wecom="zhangsan", active=False)
    with transaction(district) as session:
        insider = identify(session, _deciding("approvers", unit, "wecom:zhangsan"), Actor("wecom", "zhangsan"))
    assert insider.inspector_id is None and "approver" in insider.roles
    assert refused(district, lambda s: approve(s, insider, result_id, LATER_NOW)).message == "own_result"


def test_a_team_member_known_by_wecom_is_recognised_when_approving_from_dingtalk(district):
    """The directory links a person's accounts: a role entry naming either gives the role on
    both, and team membership compares persons, not platform ids."""
    task, member, result_id, unit = _recused_member_with_result(district)
    _accounts(district, member, wecom="zhangsan", dingtalk="0123")
    settings = _deciding("approvers", unit, "wecom:zhangsan")
    with transaction(district) as session:
        insider = identify(session, settings, Actor("dingtalk", "0123"))
    assert insider.inspector_id == member and insider.units["approver"] == {unit}
    assert refused(district, lambda s: approve(s, insider, result_id, LATER_NOW)).message == "own_result"
    assert refused(district, lambda s: return_result(s, insider, result_id, "不行", LATER_NOW)).message \
        == "own_result"


def test_a_bare_role_entry_links_the_same_id_on_every_platform(district):
    """A record holding only a WeCom account; the role is a bare id (it matches on every
    platform), and the person approves from DingTalk under that id: still the team member."""
    task, member, result_id, unit = _recused_member_with_result(district)
    _accounts(district, member, wecom="zhangsan")
    settings = _deciding("approvers", unit, "zhangsan")
    with transaction(district) as session:
        insider = identify(session, settings, Actor("dingtalk", "zhangsan"))
    assert insider.inspector_id is None and member in insider.persons
    assert refused(district, lambda s: approve(s, insider, result_id, LATER_NOW)).message == "own_result"
    with transaction(district) as session:  # someone else's prefixed DingTalk id links to nobody
        other = identify(session, _deciding("approvers", unit, "dingtalk:zhangsan"), Actor("dingtalk", "zhangsan"))
    assert other.persons == frozenset() and other.inspector_id is None


def test_an_other_platform_role_is_not_given_through_a_delisted_record(district):
    """Linking gives roles only through a listed record (a delisted one's ids may be reused)."""
    _accounts(district, "I05", wecom="zhangsan", dingtalk="0123", listed=False)
    settings = _deciding("admin", "", "wecom:zhangsan")
    with transaction(district) as session:
        found = identify(session, settings, Actor("dingtalk", "0123"))
    assert found.roles == frozenset() and found.persons == {"I05"}


@pytest.mark.parametrize("user, allowed", [("lead-xy", True), ("admin1", True), ("lead-dc", False),
                                           ("lead-xc", False), ("apr-dc", False)])
def test_only_the_batchs_lead_office_or_an_admin_transfers(district, user, allowed):
    """移送 was open to any lead office for any task (art. 18, 23)."""
    from bot.batches.followups import transfer

    batch_id = drawn_batch(district, count=1)
    (task,) = tasks_of(district, batch_id)
    result_id = submitted(district, task.id, Entry(category=8, signed=True))
    with transaction(district) as session:
        approve(session, who(session, "admin1"), result_id, LATER_NOW)
        assert session.get(Batch, batch_id).lead_unit_id == "U-XY"
    before = state(district)
    with transaction(district) as session:
        identity = who(session, user)

    def call(session):
        return transfer(session, identity, task.id, "区公安分局", True, "涉嫌伪造证照", LATER_NOW)

    if allowed:
        with transaction(district) as session:
            done = call(session)
        assert (done.kind, done.target, done.created_by) == ("transfer_judiciary", "区公安分局", f"wecom:{user}")
    else:
        refusal = refused(district, call)
        assert refusal.message == "not_lead_office" and "牵头科室" in refusal.text()
        assert state(district) == before
