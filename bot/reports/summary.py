"""The daily and weekly summary (SPEC §2 step 12): progress per batch, overdue work by
unit and by person, recusals, result categories — text for everyone, and a chart
where a CJK font is installed. Sent to the supervisors, the lead offices of the open
batches and the group; queued under one key per person and period, so several
instances sending it at once still send it once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from bot import outbox_keys, plan_frequency
from bot.batches.progress import BatchProgress, progress
from bot.chat import platforms, recipients
from bot.clock import bureau_date
from bot.outbound import GROUP, Destination, Image, Message, Text
from bot.outbox_keys import Key
from bot.reports.chart import progress_chart
from bot.settings import Settings
from bot.texts import say
from storage import evidence, outbox
from storage.calendar import load_calendar
from storage.models import Deadline, Inspector

STATES = ("drawn", "accepted", "inspected", "submitted", "approved", "unstaffed", "not_inspected")


def period_of(kind: str, now: datetime, timezone: str) -> str:
    local = bureau_date(now, timezone)
    if kind == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.isoformat()


@dataclass(frozen=True)
class Summary:
    """A summary as sent: its text, and its chart (stored, ``None`` without a CJK font)."""

    kind: str
    period: str
    text: str
    chart: Image | None
    batches: list[BatchProgress]


def compose(session: Session, settings: Settings, kind: str, now: datetime) -> Summary:
    """The summary of ``kind`` (daily | weekly) as of ``now`` — for the scheduler and for 汇总."""
    today = bureau_date(now, settings.bureau.timezone)
    batches = progress(session, load_calendar(session), today)
    overdue = session.exec(select(Deadline).where(Deadline.status == "open", Deadline.due < today)).all()
    by_unit = Counter(d.unit_id or "—" for d in overdue)
    names = dict(session.exec(select(Inspector.id, Inspector.name)).all())
    by_person = Counter(names.get(owner.split(":", 1)[1], owner) for d in overdue for owner in d.owed_by
                        if owner.startswith("inspector:"))
    period = period_of(kind, now, settings.bureau.timezone)
    text = say("summaries", "summary", kind=kind, period=period, batches=batches, by_unit=by_unit.most_common(10),
               by_person=by_person.most_common(10), overdue=len(overdue),
               plans=plan_frequency.progress(session, today.year))
    chart = progress_chart(say("summaries", "chart_title", kind=kind, period=period),
                           [(p.batch.name, [(say("summaries", "state", state=s), p.states[s]) for s in STATES])
                            for p in batches])
    image = Image(evidence.store(session, chart, "image/png"), say("summaries", "chart_caption")) if chart else None
    return Summary(kind, period, text, image, batches)


def send_summaries(session: Session, settings: Settings, kind: str, now: datetime) -> list[Destination]:
    """Queue the summary of ``kind`` (daily | weekly) for this period; returns who gets it."""
    summary = compose(session, settings, kind, now)
    text, image, period, batches = summary.text, summary.chart, summary.period, summary.batches
    people = list(settings.roles.supervisors)
    for p in batches:
        people += recipients.unit_people(settings, p.batch.lead_unit_id, "leads")
    destinations = recipients.people(settings, list(dict.fromkeys(people)))
    destinations += [Destination(platform, GROUP, "default") for platform in platforms.enabled(settings)
                     if platforms.can_push_to_group(settings, platform)]
    messages: list[tuple[Destination, Message, Key]] = []
    for d in destinations:
        key = outbox_keys.summary(kind, period, d.platform, d.kind, d.address)
        messages.append((d, Text(text), key))
        if image:
            messages.append((d, image, outbox_keys.summary_chart(key)))
    outbox.queue_many(session, messages)
    return destinations
