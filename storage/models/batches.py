"""Batches, strata, their frozen pools and roster (SPEC §2 steps 3–5, DRAW.md §1–2, §8)."""

from datetime import date, datetime

from sqlalchemy import JSON, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.models.common import utcnow


class Batch(SQLModel, table=True):
    """An 抽查批次: draft → published → drawn → in_progress → completed, or cancelled."""

    __tablename__ = "batches"
    id: str = Field(primary_key=True)  # e.g. 2026-DS-001
    name: str
    status: str = Field(default="draft", index=True)
    plan_id: int | None = Field(default=None, foreign_key="annual_plans.id")
    lead_unit_id: str | None = Field(default=None, foreign_key="units.id")
    mode: str = "all"  # all | unit | cross | team
    team_size: int = 2
    slack: int = 1
    due: date | None = None
    beacon_rule: str = ""  # the beacon announced in the plan, or empty
    beacon: str = ""  # the value used at the draw, verbatim
    commitment: str | None = None
    # The roster frozen at publication (DRAW.md §8): exactly the lines hashed into
    # ``roster_digest``, zlib-compressed. Both null for a batch published before rosters
    # existed, which matches on the directory at the draw.
    roster: bytes | None = Field(default=None, sa_type=LargeBinary)
    roster_digest: str | None = None
    secret_encrypted: str | None = Field(default=None, sa_type=Text)
    secret: str | None = None  # revealed at the draw
    seed: str | None = None
    draw_date: date | None = None
    matching_inputs: dict | None = Field(default=None, sa_type=JSON)  # as they stood at the draw
    group_chat: str | None = None  # platform:chat where the batch is discussed
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    published_at: datetime | None = None
    drawn_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


class Stratum(SQLModel, table=True):
    """One ``(name, filter, items, k)`` of a batch (DRAW.md §2)."""

    __tablename__ = "strata"
    __table_args__ = (UniqueConstraint("batch_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", index=True)
    position: int
    name: str
    filter: dict = Field(default_factory=dict, sa_type=JSON)
    filter_description: str | None = None
    items: list[str] = Field(default_factory=list, sa_type=JSON)
    ratio_percent: str | None = None
    count: int | None = None
    k: int | None = None  # planned k, known at publication
    pool_size: int | None = None
    pool_digest: str | None = None
    # The frozen pool: exactly the ``id|w`` lines hashed into ``pool_digest``
    # (DRAW.md §2), zlib-compressed. One value, so the draw reads and checks it in one
    # go and the export writes it out verbatim as pool-<name>.txt.
    pool: bytes | None = Field(default=None, sa_type=LargeBinary)
    # Digests of consecutive runs of pool lines, with each run's first id: when the pool
    # no longer hashes to its digest, these name where it was changed.
    pool_runs: list | None = Field(default=None, sa_type=JSON)
    selected: list | None = Field(default=None, sa_type=JSON)  # [[id, score], …] ascending
