"""Risk raises the chance and frequency of inspection (art. 11).

Art. 11: objects with many complaints, on the abnormal-operation list, with serious
violations, or in key sectors "应当增加抽查比例和频次". The draw does the first through
an object's weight (DRAW.md §2: w tickets, 1 ≤ w ≤ 10); the second by exempting
such objects from the frequency cap that otherwise protects against 执法扰民.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from bot.rules.scope import parse_risk_tag, risk_tags
from bot.rules.ssr1 import MAX_WEIGHT, MIN_WEIGHT
from bot.texts import say


@dataclass(frozen=True)
class RiskWeights:
    """Extra tickets per risk signal; the defaults give every object weight 1.

    Attributes:
        per_complaint: Extra weight per complaint (投诉举报).
        complaints_max: Cap on the complaints' extra weight; 0 means no cap.
        abnormal: Extra weight when on the abnormal-operation list (经营异常名录).
        serious_violation: Extra weight for a serious violation record (严重违法失信).
        key_sector: Extra weight in a key sector (重点领域).
    """

    per_complaint: int = 0
    complaints_max: int = 0
    abnormal: int = 0
    serious_violation: int = 0
    key_sector: int = 0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int or value < 0:
                raise ValueError(say("scope", "bad_weight", name=field.name, value=value))


def weight(obj: Any, rules: RiskWeights) -> int:
    """An object's weight in every pool of a batch (DRAW.md §2), raised by risk (art. 11).

    ``w = clamp(1 + C + A + S + K, 1, 10)`` where ``C = complaints × per_complaint``,
    capped at ``complaints_max`` when that is not 0, and ``A``, ``S``, ``K`` are
    ``rules.abnormal``, ``rules.serious_violation``, ``rules.key_sector`` when the
    object has that mark (else 0). Non-decreasing in every risk attribute.

    Args:
        obj: Anything with ``complaints``, ``abnormal``, ``serious_violation``, ``key_sector``.
        rules: The bureau's risk weights.
    """
    extra = max(obj.complaints or 0, 0) * rules.per_complaint
    if rules.complaints_max:
        extra = min(extra, rules.complaints_max)
    for mark in ("abnormal", "serious_violation", "key_sector"):
        if getattr(obj, mark):
            extra += getattr(rules, mark)
    return max(MIN_WEIGHT, min(MAX_WEIGHT, 1 + extra))


def frequency_exempt(obj: Any, exempt_tags: Iterable[str]) -> bool:
    """Whether the frequency cap must not keep ``obj`` out of a pool.

    Art. 11 asks for *more* frequent checks of risky objects, so an object carrying
    any of ``exempt_tags`` (risk tags in Chinese or English, see ``bot.rules.scope``)
    is never excluded for having been inspected often.

    Raises:
        ScopeError: On an unknown risk tag.
    """
    wanted = {parse_risk_tag(tag) for tag in exempt_tags}
    return not risk_tags(obj).isdisjoint(wanted)
