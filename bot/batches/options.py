"""Reading a batch command's arguments (SPEC §5) into checked values, or a Refusal."""

from __future__ import annotations

from datetime import date

from sqlalchemy import true
from sqlmodel import Session, col, select

from bot.refusal import Refusal
from bot.rules import ssr1
from bot.rules.arguments import Arguments, split_list
from bot.rules.scope import Scope, ScopeError, scope_from_arguments
from storage.models import Item, Unit

MODES = {"大随机": "all", "小随机": "unit", "交叉随机": "cross", "编组随机": "team",
         "all": "all", "unit": "unit", "cross": "cross", "team": "team"}


def required(args: Arguments, key: str) -> str:
    value = args.get(key)
    if not value:
        raise Refusal("missing_argument", key=key)
    return value


def mode(args: Arguments) -> str:
    value = required(args, "mode")
    if value not in MODES:
        raise Refusal("bad_mode", value=value)
    return MODES[value]


def team_size(args: Arguments, default: int) -> int:
    value = args.get("size")
    if value is None:
        return default
    if not value.isdecimal() or int(value) < 2:  # art. 14: never fewer than two
        raise Refusal("bad_size", value=value)
    return int(value)


def due(args: Arguments, today: date) -> date:
    value = required(args, "due")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise Refusal("bad_date", key="due", value=value) from None
    if day < today:
        raise Refusal("due_in_past", value=value)
    return day


def quota(args: Arguments, inherited_ratio: str | None = None) -> tuple[str | None, int | None]:
    """``(ratio_percent, None)`` or ``(None, count)``: exactly one of 比例 and 数量."""
    ratio, count = args.get("ratio"), args.get("count")
    if ratio and count:
        raise Refusal("ratio_and_count")
    if count:
        if not count.isdecimal() or int(count) < 1:
            raise Refusal("bad_count", value=count)
        return None, int(count)
    ratio = ratio or inherited_ratio
    if not ratio:
        raise Refusal("missing_quota")
    try:
        return ssr1.ratio_text(ratio), None
    except ValueError:
        raise Refusal("bad_ratio", value=ratio) from None


def items(session: Session, value: str) -> list[str]:
    codes = split_list(value)
    if not codes:
        raise Refusal("missing_argument", key="items")
    known = set(session.exec(select(Item.code).where(col(Item.code).in_(codes), Item.listed == true())))
    if unknown := [code for code in codes if code not in known]:
        raise Refusal("unknown_items", codes=unknown)
    if len(set(codes)) != len(codes):
        raise Refusal("repeated_items", value=value)
    return codes


def unit(session: Session, unit_id: str, key: str) -> str:
    found = session.get(Unit, unit_id)
    if found is None or not found.listed:
        raise Refusal("unknown_unit", key=key, value=unit_id)
    return unit_id


def scope(args: Arguments, inherited: Scope | None = None) -> Scope:
    try:
        own = scope_from_arguments(args.values)
    except ScopeError as exc:
        raise Refusal("bad_scope", reason=str(exc)) from None
    return own if not own.is_empty or inherited is None else inherited
