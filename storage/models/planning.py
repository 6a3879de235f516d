"""Annual plans (年度抽查工作计划, art. 11)."""

from datetime import date, datetime

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.models.common import utcnow
from storage.models.directory import Listed


class AnnualPlan(Listed, table=True):
    """One office's plan of one year: items, ratio and frequency, scope, timing."""

    __tablename__ = "annual_plans"
    __table_args__ = (UniqueConstraint("year", "office_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    year: int = Field(index=True)
    office_id: str = Field(foreign_key="units.id")
    name: str
    items: list[str] = Field(default_factory=list, sa_type=JSON)
    ratio_percent: str = ""  # exact decimal as written, e.g. "5" or "12.5"
    frequency: int = 1  # times per year
    scope: str = ""  # a filter in SPEC §5 syntax
    kind: str = ""  # 抽查类型: 不定向 / 定向 / 联合 (joint with other departments); "" = not stated
    start: date | None = None
    end: date | None = None
    reported_on: date | None = None  # to 信用监管室, by the end of January
    filed_on: date | None = None  # to the city bureau, by the end of February


class PlanAdjustment(SQLModel, table=True):
    """A change to a filed plan; it must be re-filed within 10 working days (art. 11)."""

    __tablename__ = "plan_adjustments"
    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="annual_plans.id", index=True)
    adjusted_on: date
    reason: str
    actor: str
    changes: dict = Field(default_factory=dict, sa_type=JSON)
    refiled_on: date | None = None
    recorded_at: datetime = Field(default_factory=utcnow)
