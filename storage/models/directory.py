"""The directories of art. 9: units, objects, inspectors, teams, items, conflicts, holidays.

Every directory row that came from an import carries ``listed``: whether it is in the
latest full snapshot of its kind. A row missing from a later snapshot is delisted,
never deleted (art. 9: 动态管理), so old batches keep pointing at what they drew.
"""

import hashlib
import re
from datetime import date, datetime

from sqlalchemy import JSON, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from storage.models.common import utcnow
from storage.sealing import SealedText

_SAFE_NAME = re.compile(r"[0-9A-Za-z_\-\u3400-\u9fff]{1,80}")


def page_key(object_id: str) -> str:
    """The file name (without ``.html``) of an object's public page: its id where that is
    safe as a file name, else a digest of it (stored as ``objects.page_key``, so a page is
    found by an index, never by hashing every id)."""
    if _SAFE_NAME.fullmatch(object_id):
        return object_id
    return "o-" + hashlib.sha256(object_id.encode()).hexdigest()[:16]


def _page_key_default(context: object) -> str:
    return page_key(context.get_current_parameters()["id"])  # type: ignore[attr-defined]


class Listed(SQLModel):
    listed: bool = Field(default=True, index=True)
    first_import_id: int | None = Field(default=None, foreign_key="import_runs.id")
    last_import_id: int | None = Field(default=None, foreign_key="import_runs.id")
    updated_at: datetime = Field(default_factory=utcnow)
    delisted_at: datetime | None = None


class Unit(Listed, table=True):
    """A 科室 (office), 市场监管所 (station) or 执法大队 (brigade)."""

    __tablename__ = "units"
    id: str = Field(primary_key=True)
    name: str
    kind: str  # office | station | brigade


class InspectionObject(Listed, table=True):
    """A market entity of art. 3, or a non-market object (product, project, behaviour)."""

    __tablename__ = "objects"
    id: str = Field(primary_key=True)
    name: str
    kind: str = Field(index=True)  # the Chinese name of art. 3, or 产品 / 项目 / 行为
    market: bool = True
    industry: str = Field(default="", index=True)
    region: str = Field(default="", index=True)
    unit_id: str = Field(foreign_key="units.id", index=True)  # jurisdiction (管辖单位)
    address: str = ""
    status: str = Field(default="active", index=True)  # active | deregistered
    complaints: int = 0
    abnormal: bool = False
    serious_violation: bool = False
    key_sector: bool = False
    # The public page's name (bot.public): set from the id on insert (ids are not changed).
    page_key: str | None = Field(default=None, index=True, sa_column_kwargs={"default": _page_key_default})


class Inspector(Listed, table=True):
    """A person of the inspector directory (执法检查人员名录库)."""

    __tablename__ = "inspectors"
    # Who is talking: WeCom user ids match whatever their case (bot.chat.identity).
    __table_args__ = (Index("ix_inspectors_wecom_lower", text("lower(wecom_userid)")),)
    id: str = Field(primary_key=True)
    name: str
    unit_id: str = Field(foreign_key="units.id", index=True)
    certificate_no: str = ""
    certificate_expiry: date | None = None  # valid through this day (SPEC §3)
    specialties: list[str] = Field(default_factory=list, sa_type=JSON)
    active: bool = True  # 在岗
    wecom_userid: str | None = Field(default=None, index=True)
    dingtalk_userid: str | None = Field(default=None, index=True)


class Team(Listed, table=True):
    """A predefined team (编组) for 编组随机."""

    __tablename__ = "teams"
    id: str = Field(primary_key=True)
    members: list[str] = Field(default_factory=list, sa_type=JSON)  # inspector ids


class Item(Listed, table=True):
    """An entry of the item list (抽查事项清单, art. 8)."""

    __tablename__ = "items"
    code: str = Field(primary_key=True)
    name: str
    legal_basis: str = ""
    specialty: str = ""  # required speciality, or empty
    method: str = ""  # 书面 | 实地 | 网络


class Conflict(Listed, table=True):
    """A declared conflict of interest between an inspector and an object (art. 12).

    ``origin`` is ``import`` for the declarations file, ``recusal`` for what the bot
    recorded when an inspector recused; imports never touch the latter.
    """

    __tablename__ = "conflicts"
    __table_args__ = (UniqueConstraint("inspector_id", "object_id", "origin"),)
    id: int | None = Field(default=None, primary_key=True)
    inspector_id: str = Field(foreign_key="inspectors.id", index=True)
    object_id: str = Field(foreign_key="objects.id", index=True)
    reason: str = Field(default="", sa_type=SealedText)  # the declaration: sealed at rest (storage.sealing)
    origin: str = "import"  # import | recusal
    declared_at: datetime = Field(default_factory=utcnow)


class Holiday(SQLModel, table=True):
    """A day of the State Council's holiday arrangement, imported for a year.

    A year with any imported row is official for that year: its rows replace the
    bundled calendar's. Re-importing a year replaces that year's rows.
    """

    __tablename__ = "holidays"
    day: date = Field(primary_key=True)
    kind: str  # holiday (休) | workday (班)
    year: int = Field(index=True)
    import_id: int | None = Field(default=None, foreign_key="import_runs.id")
    imported_at: datetime = Field(default_factory=utcnow)
