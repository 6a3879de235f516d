"""The SQLModel tables of the whole domain (SPEC §2) and the bot's shared state."""

from storage.models.batches import Batch, Stratum
from storage.models.common import table_of, utcnow
from storage.models.directory import (
    Conflict,
    Holiday,
    InspectionObject,
    Inspector,
    Item,
    Listed,
    Team,
    Unit,
)
from storage.models.infrastructure import (
    AccessToken,
    AuditAnchor,
    AuditEntry,
    ConsoleMessage,
    DirectoryChange,
    ImportRun,
    InboundDelivery,
    OutboxMessage,
    RateHold,
    SeenSignature,
    SendSlot,
)
from storage.models.planning import AnnualPlan, PlanAdjustment
from storage.models.workflow import (
    Assignment,
    Deadline,
    DeadlineMark,
    Evidence,
    EvidenceBlob,
    FollowUp,
    PendingInput,
    Reminder,
    ReminderSweep,
    Result,
    Task,
)

__all__ = [
    "AccessToken", "AnnualPlan", "Assignment", "AuditAnchor", "AuditEntry", "Batch", "Conflict", "ConsoleMessage",
    "Deadline", "DirectoryChange", "Evidence", "EvidenceBlob", "FollowUp", "Holiday", "ImportRun", "InboundDelivery",
    "InspectionObject", "Inspector", "Item", "Listed", "OutboxMessage", "PendingInput", "PlanAdjustment", "RateHold",
    "Reminder", "Result", "SeenSignature", "SendSlot", "Stratum", "Task", "Team", "Unit", "table_of", "utcnow",
    "DeadlineMark", "ReminderSweep",
]

import storage.deadline_marks  # noqa: E402,F401  (registers the listeners marking changed work)
