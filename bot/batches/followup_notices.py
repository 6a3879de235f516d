"""Who hears of a follow-up (art. 18, 19, 23), queued in the transaction of the change:
the card to the receiving unit's leads when a result needing action is published, its
greying-out once the follow-up is closed (处置), and — when a batch's last result is
published — one list of the batch's follow-ups per receiving unit (汇总移交)."""

from __future__ import annotations

import io
from collections import defaultdict

from openpyxl import Workbook
from sqlmodel import Session, col, select

from bot import outbox_keys
from bot.batches import cards
from bot.batches.followups import HANDOVER, due_of, handovers, receivers
from bot.batches.notices import _close_cards
from bot.outbound import Button, Card, Destination, File, Message, Text
from bot.outbox_keys import Key
from bot.public.feeds import neutral
from bot.settings import Settings
from bot.texts import say
from storage import evidence, outbox
from storage.calendar import load_calendar
from storage.models import Batch, FollowUp, InspectionObject, Result, Task, Unit

#: The buttons of a hand-over card: the common outcomes (案号 is asked in the private chat).
BUTTONS = ("listed", "rectify", "case", "transfer", "none")


def published_category(session: Session, task_id: int) -> int | None:
    """The category of the task's published result (the latest, after a correction)."""
    found = session.exec(select(Result.category).where(Result.task_id == task_id, Result.status == "approved")
                         .order_by(col(Result.id).desc())).first()
    return found


def unit_name(session: Session, unit_id: str) -> str:
    unit = session.get(Unit, unit_id)
    return unit.name if unit else unit_id


def followup_card(session: Session, settings: Settings, follow_up: FollowUp, user: str) -> Card:
    """Object, batch, category, what the rules require, deadline; the outcomes as buttons
    (listing required: no 责令整改 nor 无需处置, art. 18)."""
    assert follow_up.id is not None  # a stored follow-up
    task = session.get_one(Task, follow_up.task_id)
    batch = session.get_one(Batch, task.batch_id)
    obj = session.get_one(InspectionObject, task.object_id)
    category = published_category(session, follow_up.task_id)
    due = due_of(follow_up, load_calendar(session), settings)
    values = dict(follow_up=follow_up, task=task, batch=batch, obj=obj, category=category, due=due,
                  unit=unit_name(session, follow_up.target))
    allowed = [b for b in BUTTONS if not (follow_up.abnormal_list and b in ("rectify", "none"))]
    return Card(
        card_id=cards.for_recipient(f"ss-fu{follow_up.id}", user),
        title=say("followups", "card_title", **values),
        body=say("followups", "card_body", **values),
        fields=[(say("followups", "card_field", name=name), say("followups", "card_value", name=name, **values))
                for name in ("object", "batch", "category", "unit", "due")],
        buttons=[Button("dispose", say("followups", "outcome", code=code), f"{task.id}:{code}",
                        style="primary" if code in ("listed", "case") else "secondary") for code in allowed],
    )


def queue_cards(session: Session, settings: Settings, task_id: int) -> int:
    """The card of each open hand-over of the task to its receivers, on every platform,
    once (the key names the follow-up and the person); returns how many were new."""
    queued: list[tuple[Destination, Message, Key]] = []
    for follow_up in handovers(session, task_id):
        if follow_up.status != "open":
            continue
        assert follow_up.id is not None  # a stored follow-up
        for d in receivers(settings, follow_up.target):
            queued.append((d, followup_card(session, settings, follow_up, d.address),
                           outbox_keys.followup_card(follow_up.id, d.platform, d.address)))
    return outbox.queue_many(session, queued)


def close_cards(session: Session, follow_up: FollowUp) -> None:
    """Every card of a closed follow-up greys out with its outcome, on every platform."""
    assert follow_up.id is not None  # a stored follow-up
    _close_cards(session, outbox_keys.followup_card_subject(follow_up.id),
                 say("followups", "closed_button", follow_up=follow_up), outbox_keys.followup_card_closed)


def batch_followups(session: Session, batch_id: str) -> dict[str, list[tuple[FollowUp, Task, InspectionObject]]]:
    """A batch's hand-overs by receiving unit, in task order."""
    rows = session.exec(select(FollowUp, Task, InspectionObject)
                        .join(Task, col(Task.id) == FollowUp.task_id)
                        .join(InspectionObject, col(InspectionObject.id) == Task.object_id)
                        .where(Task.batch_id == batch_id, FollowUp.kind == HANDOVER)
                        .order_by(col(Task.position), col(FollowUp.id))).all()
    found: defaultdict[str, list[tuple[FollowUp, Task, InspectionObject]]] = defaultdict(list)
    for follow_up, task, obj in rows:
        found[follow_up.target].append((follow_up, task, obj))
    return dict(found)


def queue_batch_lists(session: Session, settings: Settings, batch: Batch) -> int:
    """汇总移交: once a batch is complete, each receiving unit's people get one list of
    the batch's follow-ups (text; an XLSX file where the platform takes files)."""
    if batch.status != "completed":
        return 0
    calendar = load_calendar(session)
    queued: list[tuple[Destination, Message, Key]] = []
    for unit_id, entries in sorted(batch_followups(session, batch.id).items()):
        lines = [dict(follow_up=f, task=t, obj=o, category=published_category(session, t.id or 0),
                      due=due_of(f, calendar, settings)) for f, t, o in entries]
        text = Text(say("followups", "batch_list", batch=batch, unit=unit_name(session, unit_id), entries=lines))
        name = say("followups", "list_file_name", batch=batch, unit=unit_id).strip()
        sheet = File(evidence.store(session, list_xlsx(lines), XLSX), name, say("followups", "list_file_caption"))
        for d in receivers(settings, unit_id):
            queued.append((d, text, outbox_keys.followup_list(batch.id, unit_id, d.platform, d.address)))
            queued.append((d, sheet, outbox_keys.followup_list(batch.id, unit_id, d.platform, d.address, "xlsx")))
    return outbox.queue_many(session, queued)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def list_xlsx(lines: list[dict]) -> bytes:
    """A unit's list of a batch's follow-ups as a spreadsheet (cells never formulas)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(say("followups", "list_sheet").strip())
    sheet.append([c.strip() for c in say("followups", "list_columns").split("|")])
    for line in lines:
        sheet.append([neutral(say("followups", "list_cell", column=column, **line).strip())
                      for column in LIST_COLUMNS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


LIST_COLUMNS = ("task", "object_id", "object", "category", "listing", "due", "state")


def after_publication(session: Session, settings: Settings, task_id: int) -> None:
    """What a publication (批准, 更正) calls for: the hand-over cards, and the batch's
    lists when it was the batch's last result."""
    for withdrawn in handovers(session, task_id):
        if withdrawn.status == "superseded":  # by a correction: its cards grey out (once each)
            close_cards(session, withdrawn)
    queue_cards(session, settings, task_id)
    task = session.get_one(Task, task_id)
    queue_batch_lists(session, settings, session.get_one(Batch, task.batch_id))
