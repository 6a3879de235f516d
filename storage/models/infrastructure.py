"""Shared state of the running bot: imports, inbound deliveries, outbox, rate slots,
access tokens, audit log."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Text
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
    """A platform delivery, taken once: its key makes a retry hitting any instance a
    duplicate, and the neutral event it carries is the durable work still to do."""

    __tablename__ = "inbound_deliveries"
    __table_args__ = (Index("ix_inbound_due", "status", "next_attempt_at"),)  # what a claim scans
    platform: str = Field(primary_key=True)
    delivery_key: str = Field(primary_key=True)
    received_at: datetime = Field(default_factory=utcnow)  # never queried: no index on the hot insert
    event: dict = Field(default_factory=dict, sa_type=JSON)  # bot.chat.events.Event, as JSON
    status: str = "pending"  # pending | processing | done | failed
    owner: str | None = None  # the instance processing it
    claimed_at: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    done_at: datetime | None = None
    error: str | None = Field(default=None, sa_type=Text)


class OutboxMessage(SQLModel, table=True):
    """An outbound message, written with the state change that caused it.

    A dispatcher claims it (``storage.outbox.claim``), sends it and records the
    platform's answer. ``in_doubt`` says an earlier attempt may have reached the
    platform (it timed out, or its instance died while sending): the platform's own
    idempotency key (card id, duplicate check) then makes the resend harmless.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)  # what the dispatcher scans
    id: int | None = Field(default=None, primary_key=True)
    platform: str
    recipient: str  # user id, group name or reply route, per destination kind
    kind: str  # the message type: text | card | card_update
    payload: dict = Field(default_factory=dict, sa_type=JSON)  # destination + neutral message
    idempotency_key: str = Field(unique=True)  # built by bot.outbox_keys
    subject: str | None = Field(default=None, index=True)  # what it is about, when looked up again (task-card:12)
    rate_key: str | None = Field(default=None, index=True)  # whose platform rate limit it counts against
    status: str = Field(default="pending", index=True)  # pending | sending | sent | failed
    owner: str | None = None
    claimed_at: datetime | None = None
    attempts: int = 0
    in_doubt: bool = False
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    last_error: str | None = Field(default=None, sa_type=Text)
    platform_response: dict | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class SendSlot(SQLModel, table=True):
    """One send counted against a rate limit — a recipient's, or the platform app's
    (``<platform>:app``) — kept an hour; counted by ``(rate_key, at)``."""

    __tablename__ = "send_slots"
    __table_args__ = (Index("ix_send_slots_rate_key_at", "rate_key", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    rate_key: str
    at: datetime = Field(default_factory=utcnow, index=True)


class RateHold(SQLModel, table=True):
    """A rate key whose budget is spent: its messages are not even looked at before
    ``free_at``, the next time a slot of it frees (the "next free slot")."""

    __tablename__ = "rate_holds"
    rate_key: str = Field(primary_key=True)
    free_at: datetime


class SeenSignature(SQLModel, table=True):
    """A DingTalk robot callback's ``timestamp``/``sign`` pair, seen within the accepted
    window (``bot.dingtalk.sign``), with the message it came with: the sign covers only
    the timestamp, so the pair is accepted again only for that message (a retry). Shared
    by every instance; rows past the window are purged (the pair is stale by then)."""

    __tablename__ = "dingtalk_seen_signatures"
    sent_ms: int = Field(primary_key=True, sa_type=BigInteger)  # the timestamp header; leads the key (purge)
    sign: str = Field(primary_key=True)
    msg_id: str = Field(sa_type=Text)


class AccessToken(SQLModel, table=True):
    """A platform access token shared by every instance, refreshed by one at a time."""

    __tablename__ = "access_tokens"
    key: str = Field(primary_key=True)  # platform and app, e.g. wecom:<corp>:<agent>
    token: str | None = Field(default=None, sa_type=Text)
    expires_at: datetime | None = None
    refresher: str | None = None  # the instance fetching a new one
    refresh_started_at: datetime | None = None


class ConsoleMessage(SQLModel, table=True):
    """What the local console shows: a line of a chat, by the bot or typed by a person."""

    __tablename__ = "console_messages"
    id: int | None = Field(default=None, primary_key=True)
    conversation: str = Field(index=True)  # "group", or the user id of a private chat
    author: str  # "bot", or the user id who typed it
    kind: str  # text | card | card_update
    payload: dict = Field(default_factory=dict, sa_type=JSON)
    at: datetime = Field(default_factory=utcnow)


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


class AuditAnchor(SQLModel, table=True):
    """The audit chain's head as it was at ``at``: written daily and at every draw and
    shown on the public index, so outsiders who keep them can detect a rewritten
    history (storage.audit.anchor)."""

    __tablename__ = "audit_anchors"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)  # when the head was read
    seq: int  # the head entry's seq (0: the chain was empty)
    hash: str  # its hash (GENESIS for an empty chain)
    entry_at: datetime | None = None  # its time
    reason: str  # daily | draw
