"""Shared state of the running bot: imports, inbound dedupe, outbox, audit log."""

from datetime import datetime

from sqlalchemy import JSON, Text
from sqlmodel import Field, SQLModel

from storage.models.common import utcnow


class ImportRun(SQLModel, table=True):
    """One applied directory import: what file, by whom, what it changed."""

    __tablename__ = "import_runs"
    id: int | None = Field(default=None, primary_key=True)
    kind: str
    file_name: str
    file_sha256: str
    partial: bool = False
    actor: str
    counts: dict = Field(default_factory=dict, sa_type=JSON)
    at: datetime = Field(default_factory=utcnow)


class DirectoryChange(SQLModel, table=True):
    """The prior state of a row that an import changed (art. 9: history is kept)."""

    __tablename__ = "directory_changes"
    id: int | None = Field(default=None, primary_key=True)
    import_id: int = Field(foreign_key="import_runs.id", index=True)
    kind: str
    key: str = Field(index=True)
    action: str  # updated | delisted | relisted
    before: dict = Field(default_factory=dict, sa_type=JSON)


class InboundDelivery(SQLModel, table=True):
    """A platform delivery already taken: a retry hitting any instance is a duplicate."""

    __tablename__ = "inbound_deliveries"
    platform: str = Field(primary_key=True)
    delivery_key: str = Field(primary_key=True)
    received_at: datetime = Field(default_factory=utcnow, index=True)


class OutboxMessage(SQLModel, table=True):
    """An outbound message, written with the state change that caused it."""

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    platform: str
    recipient: str  # user id, chat id or webhook, per platform
    kind: str  # text | card | card_update | group
    payload: dict = Field(default_factory=dict, sa_type=JSON)
    idempotency_key: str = Field(unique=True)
    status: str = Field(default="pending", index=True)  # pending | sending | sent | failed
    owner: str | None = None
    claimed_at: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    last_error: str | None = Field(default=None, sa_type=Text)
    platform_response: dict | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """One link of the append-only, hash-chained audit log."""

    __tablename__ = "audit_log"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(default_factory=utcnow)
    actor: str
    action: str = Field(index=True)
    subject: str = ""
    detail: dict = Field(default_factory=dict, sa_type=JSON)
    prev_hash: str
    hash: str = Field(unique=True)
