"""A stratum's filter (分层条件): which objects a directed draw may take (art. 10).

A scope lists, per condition, the values an object may have: industry, region, kind,
jurisdiction unit and risk tags (SPEC §2 step 3). An object passes when, for every
listed condition, its attribute is one of the values (OR within a condition, AND
across conditions); for risk it passes when it has ANY listed tag. An empty scope is
the undirected draw. The same syntax is a plan's ``scope`` column (SPEC §3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.rules.arguments import parse_arguments, split_list
from bot.texts import say

# The object kinds of art. 3; must equal storage.importing.values' MARKET_KINDS +
# NON_MARKET_KINDS (a test checks it). Copied because importing ``storage`` pulls in
# the database layer, and this module is pure.
OBJECT_KINDS = ("有限责任公司", "股份有限公司", "非公司企业法人", "合伙企业", "个人独资企业",
                "农民专业合作社", "分支机构", "个体工商户", "外国(地区)企业", "产品", "项目", "行为")
# Art. 11's risk signals, in the order they are described; English tag → Chinese name.
RISK_NAMES = {"complaints": "投诉举报", "abnormal": "经营异常", "serious_violation": "严重违法失信",
              "key_sector": "重点领域"}
RISK_ALIASES = {"投诉": "complaints", "投诉举报数": "complaints", "经营异常名录": "abnormal",
                "严重违法": "serious_violation"}
# Scope field → the canonical argument key of SPEC §5 (also the JSON key).
KEYS = {"industries": "industry", "regions": "region", "kinds": "kind", "units": "unit", "risks": "risk"}
FILTER_KEYS = frozenset(KEYS.values())
# Full-width ASCII forms, U+3000 and NUL to ASCII, as ``arguments.normalise`` does, but in C.
_FOLD = str.maketrans({**{code: chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)}, 0x3000: " ", 0: " "})


class ScopeError(ValueError):
    """A filter value that cannot be taken; ``str()`` is the reason, in Chinese.

    Attributes:
        key: The canonical argument key at fault (``kind``, ``risk``, …).
        value: The value at fault.
        allowed: The values that would have been taken, if they are a fixed list.
    """

    def __init__(self, problem: str, key: str, value: str, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(say("scope", problem, key=key, value=value, allowed=allowed))
        self.problem, self.key, self.value, self.allowed = problem, key, value, allowed


@dataclass(frozen=True)
class Scope:
    """One stratum's filter; each field sorted and deduplicated, empty for no condition.

    Values are stored with full-width forms folded to ASCII, as chat arguments are
    (SPEC §5); kinds and risk tags are checked and made canonical (English tags).

    Attributes:
        industries: Industries (行业) an object may have.
        regions: Regions (区域).
        kinds: Object kinds of art. 3 (类型).
        units: Jurisdiction unit ids (管辖).
        risks: Risk tags (风险); the object needs any one of them.
    """

    industries: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    risks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, key in KEYS.items():
            raw = getattr(self, name)
            values = (raw,) if isinstance(raw, str) else tuple(raw)
            object.__setattr__(self, name, tuple(sorted({_canonical(key, value) for value in values})))

    @property
    def is_empty(self) -> bool:
        """True for no condition at all (an undirected stratum)."""
        return not any(getattr(self, name) for name in KEYS)

    def to_json(self) -> dict[str, list[str]]:
        """The non-empty conditions under their §5 keys, e.g. ``{"industry": ["餐饮服务"]}``."""
        return {key: list(getattr(self, name)) for name, key in KEYS.items() if getattr(self, name)}

    @classmethod
    def from_json(cls, data: Mapping[str, Iterable[str]] | None) -> Scope:
        """The scope ``to_json`` gave; ``None`` or ``{}`` is the empty scope.

        Raises:
            ScopeError: On an unknown key or a bad kind or risk tag.
        """
        data = data or {}
        for key in data:
            if key not in FILTER_KEYS:
                raise ScopeError("unknown_key", key, str(key), tuple(sorted(FILTER_KEYS)))
        return cls(**{name: tuple(data.get(key, ())) for name, key in KEYS.items()})


def scope_from_arguments(values: Mapping[str, str]) -> Scope:
    """The filter in parsed command arguments (canonical keys); other keys are ignored.

    Args:
        values: ``parse_arguments(...).values``; list values split on ``,``, ``、`` or ``;``.

    Raises:
        ScopeError: On a filter key given without a value, or a bad kind or risk tag.
    """
    conditions = {}
    for name, key in KEYS.items():
        if key in values:
            parts = split_list(values[key])
            if not parts:
                raise ScopeError("empty_value", key, values[key])
            conditions[name] = tuple(parts)
    return Scope(**conditions)


def parse_scope(text: str) -> Scope:
    """A filter in §5 syntax, as in a plan's scope column: ``行业=餐饮服务,食品销售 区域=林荫街道``.

    Raises:
        ArgumentError: On text that is not ``key=value`` filters (keys other than
            行业/区域/类型/管辖/风险 included).
        ScopeError: On a bad value.
    """
    if not text or not text.strip():
        return Scope()
    return scope_from_arguments(parse_arguments(text, FILTER_KEYS).values)


def describe(scope: Scope) -> str | None:
    """Human-readable Chinese, e.g. ``行业：餐饮服务、食品销售；风险：经营异常``; None when empty.

    This is the ``filter`` of the public SSR-1 record (SPEC §6), so it depends on the
    scope alone: conditions in §5 order, values sorted, risk tags in art. 11's order.
    """
    if scope.is_empty:
        return None
    risks = [RISK_NAMES[tag] for tag in RISK_NAMES if tag in scope.risks]
    return say("scope", "describe", industries=scope.industries, regions=scope.regions, kinds=scope.kinds,
               units=scope.units, risks=risks)


def risk_tags(obj: Any) -> frozenset[str]:
    """The art. 11 risk tags an object carries: complaints > 0, abnormal, serious_violation, key_sector."""
    tags = set()
    if (obj.complaints or 0) > 0:
        tags.add("complaints")
    for tag in ("abnormal", "serious_violation", "key_sector"):
        if getattr(obj, tag):
            tags.add(tag)
    return frozenset(tags)


def parse_risk_tag(value: str) -> str:
    """The English tag for a risk tag written in Chinese or English (any letter case).

    Raises:
        ScopeError: If it names no risk tag.
    """
    return _canonical("risk", value)


def matches(scope: Scope, obj: Any) -> bool:
    """Whether ``obj`` passes the filter.

    Args:
        scope: The filter.
        obj: Anything with ``industry``, ``region``, ``kind``, ``unit_id``,
            ``complaints``, ``abnormal``, ``serious_violation`` and ``key_sector``.
    """
    for values, attribute in ((scope.industries, "industry"), (scope.regions, "region"),
                              (scope.kinds, "kind"), (scope.units, "unit_id")):
        if values and (getattr(obj, attribute) or "").translate(_FOLD) not in values:
            return False
    return not scope.risks or not risk_tags(obj).isdisjoint(scope.risks)


def _canonical(key: str, value: str) -> str:
    """One filter value, folded and checked; kinds and risk tags against their lists."""
    text = str(value).translate(_FOLD).strip()
    if not text:
        raise ScopeError("empty_value", key, str(value))
    if key == "kind" and text not in OBJECT_KINDS:
        raise ScopeError("bad_kind", key, str(value), OBJECT_KINDS)
    if key == "risk":
        tag = text.lower() if text.lower() in RISK_NAMES else _RISK_WORDS.get(text)
        if tag is None:
            raise ScopeError("bad_risk", key, str(value), tuple(RISK_NAMES.values()) + tuple(RISK_NAMES))
        return tag
    return text


_RISK_WORDS = {**{name: tag for tag, name in RISK_NAMES.items()}, **RISK_ALIASES}
