"""Staffing that cannot dead-end (issue 18 §2; art. 12, 14).

A task whose team a recusal left short (``unstaffed``) is re-staffed by DRAW.md §6's
replacement pass on the directory as it stands (补员), or given a named qualified
inspector by hand with a sealed reason (指派, counted publicly); a task that cannot be
inspected is closed as not inspected (结束任务, the reason sealed and never published); a
task whose team lacks a required speciality gets a specialist to assist (协助, art. 12:
指派专业人员协助), who is not a team member. ``needs_expert`` is recomputed after every
change of the team. Every action is idempotent, audited, and checks the caller's
authority before anything else about the task.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import true
from sqlmodel import Session, col, select

from bot.batches import roster
from bot.batches.inspection import DONE_OR_LATER, OPEN
from bot.batches.lifecycle import advance
from bot.chat.identity import ADMIN, LEAD, Identity
from bot.refusal import Refusal
from bot.rules import matching
from bot.rules import staffing as rules
from bot.texts import say
from storage import audit
from storage.models import Assignment, Batch, Conflict, Inspector, Task
from storage.sealing import sealer_of

NOT_INSPECTED = "not_inspected"  # 结束任务: closed without an inspection (未检查（原因已记录）)
CLOSED = (*DONE_OR_LATER, NOT_INSPECTED)  # no more staffing once inspected or closed


class Refused(Refusal):
    """A refusal whose text is in templates/staffing.j2."""

    def text(self) -> str:
        return say("staffing", self.message, **self.values)


@dataclass(frozen=True)
class Team:
    """A task of an open batch with its whole team (recused included), locked."""

    task: Task
    batch: Batch
    assignments: list[Assignment]

    @property
    def standing(self) -> list[Assignment]:
        return [a for a in self.assignments if a.status != "recused"]

    @property
    def needed(self) -> int:
        """The team's size: as drawn (a recusal replaces one for one), at least two (art. 14)."""
        return max(sum(a.origin == "draw" for a in self.assignments), matching.MIN_TEAM_SIZE)

    @property
    def missing(self) -> int:
        return max(self.needed - len(self.standing), 0)


@dataclass(frozen=True)
class Directory:
    """What matching reads for one task, from the directory on the day (DRAW.md §6)."""

    obj: matching.TaskObject
    inspectors: list[matching.Inspector]
    conflicts: set[tuple[str, str]]
    loads: Counter[str]
    tasks: int


@dataclass(frozen=True)
class Staffed:
    """What 补员 or 指派 did: the newcomers (their assignments), what is still missing."""

    team: Team
    added: list[Assignment]
    missing: int
    shortfall: rules.Shortfall | None = None
    already: bool = False
    wanted: frozenset[str] = frozenset()  # required specialities no member holds: a specialist assists (协助)


def check_lead_office(identity: Identity, batch: Batch, task_id: int, command: str) -> None:
    """Admins, or the leads of the batch's lead office (牵头科室, ``[roles.units.<unit>] leads``)."""
    if ADMIN in identity.roles:
        return
    if batch.lead_unit_id is None or batch.lead_unit_id not in identity.units.get(LEAD, frozenset()):
        raise Refused("not_lead_office", task=task_id, command=command)


def task_and_batch(session: Session, task_id: int) -> tuple[Task, Batch]:
    task = session.get(Task, task_id)
    if task is None:
        raise Refusal("unknown_task", task=task_id)
    return task, session.get_one(Batch, task.batch_id)


def open_team(session: Session, task: Task, batch: Batch) -> Team:
    """The task's team, locked (PostgreSQL: two instances must not both add a member), if
    its batch is open and it is neither inspected nor closed."""
    if batch.status not in OPEN:
        raise Refused("batch_not_open", task=task.id, status=batch.status)
    team = list(session.exec(select(Assignment).where(Assignment.task_id == task.id)
                             .order_by(col(Assignment.position)).with_for_update()))
    if task.status in CLOSED:
        raise Refused("task_done", task=task.id, status=task.status)
    return Team(task, batch, team)


def directory(session: Session, batch: Batch, task: Task) -> Directory:
    """The directory as it stands (eligibility on the day, DRAW.md §6), with the conflicts
    frozen with the batch's roster kept in force for this batch."""
    inputs = batch.matching_inputs
    assert inputs is not None  # stored by the draw
    drawn_object = next(o for o in inputs["objects"] if o["id"] == task.object_id)
    obj = matching.TaskObject(drawn_object["id"], drawn_object["unit"], frozenset(drawn_object["required_specialties"]))
    inspectors = [matching.Inspector(i.id, i.unit_id, frozenset(i.specialties), i.active, i.certificate_expiry)
                  for i in session.exec(select(Inspector).where(Inspector.listed == true()))]
    conflicts = {(c.inspector_id, c.object_id) for c in session.exec(
        select(Conflict).where(Conflict.listed == true(), Conflict.object_id == task.object_id))}
    frozen = roster.frozen(batch)
    if frozen is not None:
        conflicts |= {(i, o) for i, o in frozen.conflicts if o == task.object_id}
    standing = session.exec(select(Assignment.inspector_id).join(Task, col(Task.id) == Assignment.task_id)
                            .where(Task.batch_id == batch.id, Assignment.status != "recused")).all()
    return Directory(obj, inspectors, conflicts, Counter(standing), len(inputs["objects"]))


def refresh_needs_expert(session: Session, task: Task, found: Directory, members: list[str]) -> frozenset[str]:
    """Recompute ``needs_expert`` from the standing members' specialities (art. 12) against
    what the task's items need (as recorded at the draw); returns the specialities still wanted."""
    wanted = rules.missing_specialties(found.obj, found.inspectors, members)
    task.needs_expert = bool(wanted)
    session.add(task)
    return wanted


def _join(session: Session, team: Team, inspector_id: str, origin: str, now: datetime,
          reason: str | None = None) -> Assignment:
    assert team.task.id is not None  # a stored task
    added = Assignment(task_id=team.task.id, inspector_id=inspector_id,
                       position=max((a.position for a in team.assignments), default=-1) + 1,
                       origin=origin, assigned_at=now, hand_reason=reason)
    session.add(added)
    team.assignments.append(added)
    return added


def _settle(session: Session, team: Team) -> None:
    """Unstaffed while short; once complete, back to 待确认 (the newcomers confirm, art. 12)."""
    task = team.task
    if team.missing:
        task.status = "unstaffed"
    elif task.status in ("unstaffed", "accepted"):
        task.status = "drawn" if any(a.status == "drawn" for a in team.standing) else "accepted"
    session.add(task)


def restaff(session: Session, identity: Identity, task_id: int, on: date, now: datetime) -> Staffed:
    """补员: DRAW.md §6's pass once per missing member, on the directory as it stands."""
    task, batch = task_and_batch(session, task_id)
    check_lead_office(identity, batch, task_id, "补员")
    team = open_team(session, task, batch)
    if not team.missing:
        return Staffed(team, [], 0, already=True)
    assert batch.seed is not None  # a drawn batch
    found = directory(session, batch, task)
    recused = {a.inspector_id for a in team.assignments if a.status == "recused"}
    outcome = rules.restaff(batch.seed, found.obj, found.inspectors, mode=batch.mode,
                            members=[a.inspector_id for a in team.standing], missing=team.missing,
                            loads=found.loads, tasks=found.tasks, conflicts=found.conflicts, recused=recused, on=on,
                            team_size=batch.team_size, slack=batch.slack)
    added = [_join(session, team, c, "restaff", now) for c in outcome.chosen]
    _settle(session, team)
    wanted = refresh_needs_expert(session, task, found, [a.inspector_id for a in team.standing])
    session.flush()
    audit.record(session, identity.actor.label, "task.restaffed", f"{batch.id}/{task.id}", object=task.object_id,
                 chosen=list(outcome.chosen), missing=outcome.missing, on=on.isoformat(),
                 shortfall=_shortfall(outcome.shortfall), needs_expert=task.needs_expert)
    return Staffed(team, added, outcome.missing, outcome.shortfall, wanted=wanted)


def _shortfall(shortfall: rules.Shortfall | None) -> dict[str, Any] | None:
    return None if shortfall is None else dict(shortfall.__dict__)


def assign(session: Session, identity: Identity, task_id: int, inspector_id: str, reason: str, on: date,
           now: datetime) -> Staffed:
    """指派: an admin names a qualified inspector for a short team; the reason is sealed."""
    task, batch = task_and_batch(session, task_id)
    team = open_team(session, task, batch)
    person = session.get(Inspector, inspector_id)
    if person is None or not person.listed:
        raise Refused("unknown_inspector", inspector=inspector_id)
    mine = next((a for a in team.assignments if a.inspector_id == inspector_id), None)
    if mine is not None and mine.status != "recused":
        if mine.origin == "hand":
            return Staffed(team, [], team.missing, already=True)
        raise Refused("already_on_team", task=task_id, inspector=inspector_id)
    if not reason.strip():
        raise Refused("assign_needs_reason", task=task_id)
    if not team.missing:
        raise Refused("team_complete", task=task_id, size=team.needed)
    found = directory(session, batch, task)
    candidate = next(i for i in found.inspectors if i.id == inspector_id)
    # Art. 14: a qualified enforcement officer, in post, certificate valid today; art. 12: no conflict.
    if not candidate.active:
        raise Refused("not_active", inspector=inspector_id)
    if not candidate.eligible_on(on):
        raise Refused("not_qualified", inspector=inspector_id, expiry=person.certificate_expiry, on=on)
    recused = {a.inspector_id for a in team.assignments if a.status == "recused"}
    if inspector_id in recused or (inspector_id, task.object_id) in found.conflicts:
        raise Refused("conflicted", task=task_id, inspector=inspector_id)
    members = [a.inspector_id for a in team.standing]
    wanted = rules.missing_specialties(found.obj, found.inspectors, members)
    if wanted and not candidate.specialties & wanted and any(
            i.specialties & wanted and i.eligible_on(on) and i.id not in members and i.id not in recused
            and (i.id, task.object_id) not in found.conflicts for i in found.inspectors):
        # A qualified holder of the missing speciality exists: the team must get one (art. 12).
        raise Refused("needs_specialty", task=task_id, inspector=inspector_id, wanted=sorted(wanted))
    added = _join(session, team, inspector_id, "hand", now, reason.strip())
    _settle(session, team)
    wanted = refresh_needs_expert(session, task, found, [a.inspector_id for a in team.standing])
    session.flush()
    audit.record(session, identity.actor.label, "task.assigned", f"{batch.id}/{task.id}", inspector=inspector_id,
                 object=task.object_id, reason=sealer_of(session).seal_text(reason.strip()),
                 missing=team.missing, needs_expert=task.needs_expert)
    return Staffed(team, [added], team.missing, wanted=wanted)


@dataclass(frozen=True)
class Closed:
    task: Task
    batch: Batch
    standing: list[Assignment]
    already: bool = False


def close(session: Session, identity: Identity, task_id: int, reason: str, now: datetime) -> Closed:
    """结束任务: a task that cannot be inspected is closed as not inspected; the batch may then complete."""
    task, batch = task_and_batch(session, task_id)
    check_lead_office(identity, batch, task_id, "结束任务")
    if task.status == NOT_INSPECTED:
        return Closed(task, batch, [], already=True)
    team = open_team(session, task, batch)
    if not reason.strip():
        raise Refused("close_needs_reason", task=task_id)
    before = task.status
    task.status, task.closed_reason, task.closed_by, task.closed_at = NOT_INSPECTED, reason.strip(), \
        identity.actor.label, now
    session.add(task)
    session.flush()
    audit.record(session, identity.actor.label, "task.closed", f"{batch.id}/{task.id}", object=task.object_id,
                 was=before, reason=sealer_of(session).seal_text(reason.strip()))
    advance(session, identity.actor.label, batch.id, now)
    return Closed(task, batch, team.standing)


@dataclass(frozen=True)
class Assisted:
    task: Task
    batch: Batch
    expert: Inspector
    wanted: list[str]
    already: bool = False


def assist(session: Session, identity: Identity, task_id: int, inspector_id: str, on: date,
           now: datetime) -> Assisted:
    """协助: the specialist assigned to assist a task whose team lacks a required speciality
    (art. 12: 指派专业人员协助). Not a team member: no card, no result, no load."""
    task, batch = task_and_batch(session, task_id)
    check_lead_office(identity, batch, task_id, "协助")
    team = open_team(session, task, batch)
    person = session.get(Inspector, inspector_id)
    if person is None or not person.listed:
        raise Refused("unknown_inspector", inspector=inspector_id)
    found = directory(session, batch, task)
    members = [a.inspector_id for a in team.standing]
    wanted = refresh_needs_expert(session, task, found, members)
    if task.expert_id == inspector_id:
        return Assisted(task, batch, person, sorted(wanted), already=True)
    if not wanted:
        raise Refused("no_expert_needed", task=task_id)
    if inspector_id in members:
        raise Refused("already_on_team", task=task_id, inspector=inspector_id)
    if not person.active:
        raise Refused("not_active", inspector=inspector_id)
    recused = {a.inspector_id for a in team.assignments if a.status == "recused"}
    if inspector_id in recused or (inspector_id, task.object_id) in found.conflicts:
        raise Refused("conflicted", task=task_id, inspector=inspector_id)
    if not set(person.specialties) & wanted:
        raise Refused("not_a_specialist", task=task_id, inspector=inspector_id, wanted=sorted(wanted))
    was, task.expert_id = task.expert_id, inspector_id
    session.add(task)
    session.flush()
    audit.record(session, identity.actor.label, "task.expert_assigned", f"{batch.id}/{task.id}",
                 inspector=inspector_id, object=task.object_id, wanted=sorted(wanted), was=was)
    return Assisted(task, batch, person, sorted(wanted))
