"""The deadlines of open work, kept in step with the tasks: each stored with what it
belongs to, who owes it and whether it rests on a provisional calendar (暂定).

- inspection: by the batch's 截止, owed by the task's inspectors;
- result: entered, approved and published within 20 working days of the inspection
  (art. 20), owed by the lead inspector (谁检查、谁录入);
- approval: within ``[reminders] approval_days`` working days of submission, owed by
  the approvers of the lead inspector's unit.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.rules.workdays import Calendar
from bot.settings import Settings
from storage.models import Assignment, Batch, Deadline, Inspector, Result, Task, utcnow

RESULT_DAYS = 20  # art. 20
OPEN_BATCHES = ("drawn", "in_progress")


def wanted(session: Session, settings: Settings, calendar: Calendar) -> dict[tuple[str, str], dict]:
    """The deadlines the open work calls for now, by (kind, subject)."""
    tz = ZoneInfo(settings.bureau.timezone)
    batches = {b.id: b for b in session.exec(select(Batch).where(Batch.status.in_(OPEN_BATCHES)))}
    if not batches:
        return {}
    tasks = session.exec(select(Task).where(Task.batch_id.in_(list(batches)))).all()
    teams: dict[int, list[Assignment]] = defaultdict(list)
    for a in session.exec(select(Assignment).join(Task, Assignment.task_id == Task.id)
                          .where(Task.batch_id.in_(list(batches)), Assignment.status != "recused")
                          .order_by(Assignment.position)):
        teams[a.task_id].append(a)
    units = dict(session.exec(select(Inspector.id, Inspector.unit_id)).all())
    submitted = {r.task_id: r.submitted_at for r in session.exec(
        select(Result).where(Result.status == "submitted", Result.task_id.in_([t.id for t in tasks])))} \
        if tasks else {}
    after: dict[tuple[date, int], object] = {}  # working days after a date, computed once per date

    def due_after(start: date, days: int):
        if (start, days) not in after:
            after[(start, days)] = calendar.working_days_after(start, days)
        return after[(start, days)]

    found = {}
    for task in tasks:
        team = teams.get(task.id, [])
        if not team:
            continue
        batch, lead = batches[task.batch_id], team[0].inspector_id
        base = {"task_id": task.id, "batch_id": batch.id, "unit_id": units.get(lead)}
        if task.status in ("drawn", "accepted") and batch.due is not None:
            found[("inspection", f"task:{task.id}")] = {
                **base, "owed_by": [f"inspector:{a.inspector_id}" for a in team], "due": batch.due,
                "provisional": calendar.is_provisional(batch.due)}
        elif task.status == "inspected" and task.inspected_on is not None:
            due = due_after(task.inspected_on, RESULT_DAYS)
            found[("result", f"task:{task.id}")] = {**base, "owed_by": [f"inspector:{lead}"], "due": due.day,
                                                    "provisional": due.provisional}
        elif task.status == "submitted" and task.id in submitted:
            due = due_after(submitted[task.id].astimezone(tz).date(), settings.reminders.approval_days)
            found[("approval", f"task:{task.id}")] = {**base, "owed_by": [f"approvers:{units.get(lead)}"],
                                                      "due": due.day, "provisional": due.provisional}
    return found


def refresh(session: Session, settings: Settings, calendar: Calendar) -> list[Deadline]:
    """Bring the stored deadlines in line with the work; returns the open ones."""
    target = wanted(session, settings, calendar)
    existing = {(d.kind, d.subject): d for d in session.exec(select(Deadline))}
    now = utcnow()
    for key, row in existing.items():
        if row.status == "open" and key not in target:
            row.status, row.updated_at = "met", now
            session.add(row)
    new = []
    for (kind, subject), values in target.items():
        row = existing.get((kind, subject))
        if row is None:
            new.append(Deadline(kind=kind, subject=subject, status="open", updated_at=now, **values))
            continue
        changed = {k: v for k, v in values.items() if getattr(row, k) != v}
        if changed or row.status != "open":  # a later date after an import of the official calendar, too
            for k, v in changed.items():
                setattr(row, k, v)
            row.status, row.updated_at = "open", now
            session.add(row)
    session.add_all(new)
    session.flush()
    return list(session.exec(select(Deadline).where(Deadline.status == "open")))
