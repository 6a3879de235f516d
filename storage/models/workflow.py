"""Tasks, inspector assignments, results and follow-ups (SPEC §2 steps 5–10)."""

from datetime import date, datetime

from sqlalchemy import JSON, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.models.common import utcnow
from storage.sealing import SealedText


class Task(SQLModel, table=True):
    """One visit to one object, covering the items of every stratum that drew it (art. 13)."""

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("batch_id", "object_id"),)
    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id")  # indexed by the unique (batch_id, object_id)
    position: int
    object_id: str = Field(foreign_key="objects.id", index=True)
    strata: list[str] = Field(default_factory=list, sa_type=JSON)
    items: list[str] = Field(default_factory=list, sa_type=JSON)
    team_id: str | None = None
    needs_expert: bool = False
    status: str = Field(default="drawn", index=True)
    # drawn → accepted → inspected → submitted → approved (published); or unstaffed (short
    # of inspectors, re-staffed by 补员/指派), or not_inspected (结束任务: closed uninspected)
    inspected_on: date | None = None  # starts the 20-working-day clock (art. 20)
    expert_id: str | None = None  # 协助: the inspector id of the specialist assisting, not a member (art. 12)
    closed_reason: str | None = Field(default=None, sa_type=SealedText)  # 结束任务: why, sealed, never public
    closed_by: str | None = None
    closed_at: datetime | None = None


class Assignment(SQLModel, table=True):
    """An inspector on a task: drawn, or drawn later as a recusal replacement."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("task_id", "inspector_id"),)
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id")  # indexed by the unique (task_id, inspector_id)
    inspector_id: str = Field(foreign_key="inspectors.id", index=True)
    position: int  # order accepted; 0 is the lead (主办)
    origin: str = "draw"  # draw | replacement | restaff (补员) | hand (指派)
    status: str = "drawn"  # drawn | confirmed | recused
    answered_at: datetime | None = None
    recusal_reason: str | None = Field(default=None, sa_type=SealedText)  # a conflict declaration: sealed
    hand_reason: str | None = Field(default=None, sa_type=SealedText)  # 指派: why by hand, sealed like one
    assigned_at: datetime = Field(default_factory=utcnow)


class Result(SQLModel, table=True):
    """The result of a task: one of the eight categories of art. 20."""

    __tablename__ = "results"
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id", index=True)
    category: int  # 1..8, SPEC §2
    note: str = ""
    signed: bool | None = None  # legal representative signed (art. 14)
    unsigned_reason: str | None = None
    noncooperation_case: int | None = None  # art. 19 (一)–(四), with category 6
    witness: str | None = None  # who witnessed the record (见证, art. 14), where someone did
    status: str = "submitted"  # submitted | returned | approved (published) | superseded
    submitted_by: str
    submitted_at: datetime = Field(default_factory=utcnow)
    decided_by: str | None = None
    decided_at: datetime | None = None
    return_reason: str | None = None
    published_at: datetime | None = None
    supersedes: int | None = Field(default=None, foreign_key="results.id")  # a correction of a published result
    correction_reason: str | None = None
    # As published (issue 17): stored at approval, never recomputed from the directory.
    inspecting_unit: str | None = None  # the lead inspector's unit (id)
    inspecting_unit_name: str | None = None  # its name, as the feed and pages show it
    deciding_unit: str | None = None  # the unit on whose behalf it was approved (id)


class FollowUp(SQLModel, table=True):
    """Work handed over after a result (art. 18): to a unit, another agency, the judiciary."""

    __tablename__ = "follow_ups"
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id", index=True)
    kind: str  # handover | transfer_agency | transfer_judiciary
    target: str  # unit id, or the receiving agency's name
    abnormal_list: bool = False  # listing required: an order to rectify cannot replace it
    note: str = ""
    status: str = "open"  # open | done (处置) | superseded (its result corrected)
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None
    # 处置 (art. 18, 19, 23): how a hand-over was closed, by whom, on which day
    outcome: str | None = None  # listed | rectify | case | transfer | none
    case_no: str | None = None  # 立案: the case number, if given
    outcome_note: str | None = None  # remarks: never public
    outcome_on: date | None = None  # the day of the decision (public for listed and case)
    closed_by: str | None = None


class Evidence(SQLModel, table=True):
    """A photo, video or file an inspector sent for a task (art. 14: 监管痕迹可查询).

    The content is stored once by its SHA-256 (``EvidenceBlob``); this row links it to
    the task, with who sent it and when.
    """

    __tablename__ = "evidence"
    __table_args__ = (UniqueConstraint("task_id", "sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id", index=True)
    sha256: str = Field(foreign_key="evidence_blobs.sha256", index=True)
    media_type: str  # image | video | voice | file | location
    file_name: str = ""
    size: int
    added_by: str
    added_at: datetime = Field(default_factory=utcnow)
    # A location (media_type "location"): where the inspector was, as the platform gave
    # it, and when it was sent; the blob holds the same as JSON.
    latitude: float | None = None
    longitude: float | None = None
    label: str | None = None
    located_at: datetime | None = None


class EvidenceBlob(SQLModel, table=True):
    """Content-addressed evidence bytes, shared by every instance through the database."""

    __tablename__ = "evidence_blobs"
    sha256: str = Field(primary_key=True)
    data: bytes = Field(sa_type=LargeBinary)
    size: int
    content_type: str = ""


class PendingInput(SQLModel, table=True):
    """What the bot asked a person to type next (a recusal reason, a return reason,
    the task that photos belong to); their next private message answers it."""

    __tablename__ = "pending_inputs"
    platform: str = Field(primary_key=True)
    user_id: str = Field(primary_key=True)
    kind: str  # recusal_reason | return_reason | unsigned_reason | case | evidence
    task_id: int
    data: dict = Field(default_factory=dict, sa_type=JSON)
    expires_at: datetime


class Deadline(SQLModel, table=True):
    """A date by which someone owes something (art. 20, 25): what it belongs to, who owes
    it, and whether it was counted on a provisional calendar (暂定)."""

    __tablename__ = "deadlines"
    __table_args__ = (UniqueConstraint("kind", "subject"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # inspection | result | approval
    subject: str  # what it belongs to, e.g. task:12
    task_id: int | None = Field(default=None, foreign_key="tasks.id", index=True)
    batch_id: str | None = Field(default=None, foreign_key="batches.id")
    unit_id: str | None = None  # the unit that owes the work (its accountability contacts)
    owed_by: list[str] = Field(default_factory=list, sa_type=JSON)  # inspector:<id> | user:<configured id>
    due: date
    provisional: bool = False
    status: str = Field(default="open", index=True)  # open | met
    updated_at: datetime = Field(default_factory=utcnow)
    snoozed_until: date | None = None  # no reminders before this day (an admin's decision, audited)
    escalation_acknowledged: bool = False  # the lead office and contacts know: no more escalations
    # Kept by the reminder sweep (bot.reminders.sweep): no rung before this day (a tick reads
    # only the deadlines falling due by today); None once met.
    next_rung_on: date | None = Field(default=None, index=True)
    line_on: date | None = None  # art. 20: the 20-day line of a result or approval deadline


class DeadlineMark(SQLModel, table=True):
    """Work changed since the last reminder sweep (``storage.deadline_marks``): what its
    deadlines must be recomputed for — ``task:<id>``, ``batch:<id>``, ``inspector:<id>``
    or ``all``. Appended by the writers, deleted by the sweep that read it."""

    __tablename__ = "deadline_marks"
    id: int | None = Field(default=None, primary_key=True)
    subject: str


class ReminderSweep(SQLModel, table=True):
    """The last reminder sweep (one row): the fingerprint of what every stored deadline
    and rung was computed with (calendar, policy, roles, directory), and a version that a
    sweep claims atomically to write (several instances)."""

    __tablename__ = "reminder_sweeps"
    id: int = Field(primary_key=True)
    fingerprint: str
    version: int


class Reminder(SQLModel, table=True):
    """One rung of the reminder ladder sent to one person: never twice (the unique key
    is what makes several sweeping instances safe)."""

    __tablename__ = "reminders"
    __table_args__ = (UniqueConstraint("deadline_id", "recipient", "step"),)
    id: int | None = Field(default=None, primary_key=True)
    deadline_id: int = Field(foreign_key="deadlines.id", index=True)
    recipient: str  # platform:user
    step: str  # before-3 | due | overdue-2 …
    level: str  # owner | lead | accountability
    sent_at: datetime = Field(default_factory=utcnow)
