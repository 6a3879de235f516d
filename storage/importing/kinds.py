"""What each directory file holds: its columns (English names and Chinese aliases,
SPEC §3), how each cell parses, which ids it refers to, and which table it fills."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import SQLModel

from bot.rules.arguments import ArgumentError
from bot.rules.scope import ScopeError, parse_scope
from bot.rules.workdays import NEW_YEAR_REACH_DAY
from bot.texts import say
from storage.importing import values as v
from storage.models import AnnualPlan, Conflict, Holiday, InspectionObject, Inspector, Item, Team, Unit


@dataclass(frozen=True)
class Column:
    field: str  # the model's field
    names: tuple[str, ...]  # header names accepted, English first
    parse: Callable[[str], Any]
    in_header: bool = True  # the header must name it (otherwise the column is optional)
    default: Any = None  # the value when the column is absent
    refers_to: str | None = None  # the kind whose ids this cell (or list) names


@dataclass(frozen=True)
class Kind:
    name: str
    model: type[SQLModel]
    key: tuple[str, ...]  # fields that identify a row across imports
    columns: tuple[Column, ...]
    check: Callable[[dict], None] | None = None  # whole-row rule, raises BadValue
    derive: Callable[[dict], dict] = field(default=lambda row: row)  # fields not in the file
    # ``derive`` column by column (the clean-file path, storage/importing/fast.py): the file's
    # columns by field → the derived fields' columns, in the order ``derive`` adds them
    derive_columns: Callable[[dict[str, list]], dict[str, list]] | None = None
    complete: Callable[[list[dict]], None] | None = None  # file-level fill-in after all rows
    derived: tuple[str, ...] = ()  # fields ``derive``/``complete`` set, compared like columns
    per_year: bool = False  # the file is a snapshot of the years it names, not of the kind
    origin: str | None = None  # only rows of this origin are the file's (conflicts: "import")

    def column_named(self, header_name: str) -> Column | None:
        name = header_name.strip()
        for column in self.columns:
            if name in column.names or name.lower() in column.names:
                return column
        return None


def _id(field_: str, *names: str, refers_to: str | None = None) -> Column:
    return Column(field_, names, v.identifier, refers_to=refers_to)


def _team_size(row: dict) -> None:
    if len(row["members"]) < 2:  # art. 14: never fewer than two inspectors
        raise v.BadValue(say("import", "team_too_small"))


def _workday_on_weekend(row: dict) -> None:
    if row["kind"] == "workday" and row["day"].weekday() < 5:
        raise v.BadValue(say("import", "workday_not_weekend", value=row["day"].isoformat()))


def _notice_years(rows: list[dict]) -> None:
    """File each day under the year of the State Council notice that arranges it.

    A notice for year N may arrange the last days of December N−1 (the 2019 notice made
    2018-12-29 a workday); such a day belongs to N when the file also has days of N,
    unless the optional ``year`` column says otherwise.
    """
    years = {row["day"].year for row in rows}
    for row in rows:
        if row["year"] is None:
            day = row["day"]
            late_december = day.month == 12 and day.day >= NEW_YEAR_REACH_DAY
            row["year"] = day.year + 1 if late_december and day.year + 1 in years else day.year


def _plan_dates(row: dict) -> None:
    start, end = row["start"], row["end"]
    if start and end and start > end:
        raise v.BadValue(say("import", "start_after_end"))
    if start and start.year != row["year"]:
        raise v.BadValue(say("import", "plan_outside_year", year=row["year"]))


def _plan_scope(text: str) -> str:
    """A plan's scope: a filter in SPEC §5 syntax, checked as a chat filter is (art. 11), so
    that ``新建抽查 计划=…`` can always read it. Stored as written."""
    scope = text.strip()
    try:
        parse_scope(scope)
    except ArgumentError as exc:
        raise v.BadValue(say("plans", "bad_scope_syntax", problem=exc.problem, subject=exc.subject)) from None
    except ScopeError as exc:
        raise v.BadValue(say("plans", "bad_scope_value", reason=str(exc))) from None
    return scope


PLAN_KINDS = {"不定向": "不定向", "undirected": "不定向", "定向": "定向", "directed": "定向",
              "联合": "联合", "joint": "联合"}  # 抽查类型: joint = with other departments


def _plan_kind(text: str) -> str:
    value = text.strip()
    found = PLAN_KINDS.get(value) or PLAN_KINDS.get(value.lower())
    if found is None:
        raise v.BadValue(say("plans", "bad_plan_kind", value=text))
    return found


def _year(text: str) -> int:
    year = v.count(text)
    if not 2000 <= year <= 2100:
        raise v.BadValue(say("import", "bad_year", value=text))
    return year


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("units", Unit, ("id",), (
            _id("id", "id", "编号"),
            Column("name", ("name", "名称"), v.required_text),
            Column("kind", ("kind", "类型"), v.choice(v.UNIT_KINDS, "bad_unit_kind")),
        )),
        Kind("objects", InspectionObject, ("id",), (
            _id("id", "id", "编号", "统一社会信用代码"),
            Column("name", ("name", "名称"), v.required_text),
            Column("kind", ("kind", "类型"), v.object_kind),
            Column("industry", ("industry", "行业"), v.folded_text),
            Column("region", ("region", "区域"), v.folded_text),
            _id("unit_id", "unit", "管辖单位", refers_to="units"),
            Column("address", ("address", "地址"), v.optional_text, False, ""),
            Column("status", ("status", "状态"), v.status, False, "active"),
            Column("complaints", ("complaints", "投诉举报数"), v.count, False, 0),
            Column("abnormal", ("abnormal", "经营异常"), v.boolean, False, False),
            Column("serious_violation", ("serious_violation", "严重违法失信"), v.boolean, False, False),
            Column("key_sector", ("key_sector", "重点领域"), v.boolean, False, False),
        ), derive=lambda row: {**row, "market": row["kind"] not in v.NON_MARKET_KINDS}, derived=("market",),
            derive_columns=lambda columns: {"market": [kind not in v.NON_MARKET_KINDS for kind in columns["kind"]]}),
        Kind("inspectors", Inspector, ("id",), (
            _id("id", "id", "编号"),
            Column("name", ("name", "姓名", "名称"), v.required_text),
            _id("unit_id", "unit", "所属单位", refers_to="units"),
            Column("certificate_no", ("certificate_no", "执法证号"), v.optional_text),
            Column("certificate_expiry", ("certificate_expiry", "执法证有效期"), v.optional_day),
            Column("specialties", ("specialties", "业务专长"), v.word_list),
            Column("active", ("active", "在岗"), v.boolean),
            Column("wecom_userid", ("wecom_userid", "企业微信账号"), v.optional_id, False),
            Column("dingtalk_userid", ("dingtalk_userid", "钉钉账号"), v.optional_id, False),
        )),
        Kind("teams", Team, ("id",), (
            _id("id", "id", "编号"),
            Column("members", ("members", "成员"), v.id_list, refers_to="inspectors"),
        ), check=_team_size),
        Kind("items", Item, ("code",), (
            _id("code", "code", "事项编码"),
            Column("name", ("name", "名称"), v.required_text),
            Column("legal_basis", ("legal_basis", "法律依据"), v.optional_text),
            Column("specialty", ("specialty", "所需专长"), v.optional_text),
            Column("method", ("method", "检查方式"), v.choice(v.ITEM_METHODS, "bad_method")),
        )),
        Kind("conflicts", Conflict, ("inspector_id", "object_id"), (
            _id("inspector_id", "inspector_id", "检查人员编号", refers_to="inspectors"),
            _id("object_id", "object_id", "检查对象编号", refers_to="objects"),
            Column("reason", ("reason", "原因"), v.optional_text),
        ), origin="import"),
        Kind("holidays", Holiday, ("day",), (
            Column("day", ("date", "日期"), v.day),
            Column("kind", ("kind", "类型"), v.choice(v.HOLIDAY_KINDS, "bad_holiday_kind")),
            Column("year", ("year", "年度"), _year, False, None),
        ), check=_workday_on_weekend, complete=_notice_years, derived=("year",), per_year=True),
        Kind("plans", AnnualPlan, ("year", "office_id", "name"), (
            Column("year", ("year", "年度"), _year),
            _id("office_id", "office", "科室", "牵头科室", refers_to="units"),
            Column("name", ("name", "名称", "计划名称"), v.required_text),
            Column("items", ("items", "事项", "抽查事项"), v.id_list, refers_to="items"),
            Column("ratio_percent", ("ratio", "比例", "抽查比例"), v.percent),
            Column("frequency", ("frequency", "频次"), v.positive_int),
            Column("scope", ("scope", "范围", "抽查范围"), _plan_scope),
            Column("start", ("start", "开始", "开始日期"), v.optional_day),
            Column("end", ("end", "结束", "结束日期"), v.optional_day),
            Column("kind", ("kind", "类型", "抽查类型"), _plan_kind, False, ""),
        ), check=_plan_dates, per_year=True),
    )
}
