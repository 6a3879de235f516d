"""How far each annual plan is on its frequency (art. 11): the batches made from it that
were drawn, against the times a year it plans. ``plan show``, the public plans page and
the summaries say it; in December the planning office of a plan still behind is reminded
(``remind_behind``, part of the reminder sweep)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, col, select

from bot import outbox_keys
from bot.chat import recipients
from bot.outbound import Destination, Text
from bot.settings import Settings
from bot.texts import say
from storage import outbox
from storage.models import AnnualPlan, Batch
from storage.pools import DRAWN_STATUSES

REMIND_MONTH = 12  # art. 11: the year's plan is carried out within the year


@dataclass(frozen=True)
class Progress:
    plan: AnnualPlan
    drawn: int  # batches made from the plan that were drawn (not cancelled)

    @property
    def behind(self) -> bool:
        return self.drawn < self.plan.frequency


def drawn_counts(session: Session, plan_ids: Iterable[int | None]) -> dict[int, int]:
    """Per plan id, the batches made from it that were drawn and are not cancelled."""
    wanted = [plan_id for plan_id in plan_ids if plan_id is not None]
    if not wanted:
        return {}
    rows = session.exec(select(Batch.plan_id).where(col(Batch.plan_id).in_(wanted),
                                                    col(Batch.status).in_(DRAWN_STATUSES)))
    counts = Counter(plan_id for plan_id in rows if plan_id is not None)
    return {plan_id: counts.get(plan_id, 0) for plan_id in wanted}


def progress(session: Session, year: int) -> list[Progress]:
    """The listed plans of ``year`` with their drawn batches, in office and id order."""
    plans = list(session.exec(select(AnnualPlan).where(AnnualPlan.listed, AnnualPlan.year == year)
                              .order_by(col(AnnualPlan.office_id), col(AnnualPlan.id))))
    counts = drawn_counts(session, [plan.id for plan in plans])
    return [Progress(plan, counts.get(plan.id or 0, 0)) for plan in plans]


def remind_behind(session: Session, settings: Settings, today: date) -> list[Destination]:
    """In December, tell the planning office (its leads; the admins when it has none) of
    each plan of the year still behind its frequency, once per plan and person: the
    outbox key makes a second sweep queue nothing."""
    if today.month != REMIND_MONTH:
        return []
    told = []
    for item in progress(session, today.year):
        if not item.behind:
            continue
        assert item.plan.id is not None  # a stored plan
        people = recipients.first_reachable(settings, (recipients.unit_people(settings, item.plan.office_id, "leads"),
                                                       list(settings.roles.admins)))
        text = Text(say("plans", "behind_reminder", progress=item))
        for destination in people:
            key = outbox_keys.plan_behind(item.plan.id, today.year, destination.platform, destination.address)
            if outbox.queue(session, destination, text, key):
                told.append(destination)
    return told
