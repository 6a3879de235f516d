"""Risk weights and the frequency-cap exemption (art. 11, DRAW.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules.risk import RiskWeights, frequency_exempt, weight
from bot.rules.scope import ScopeError


@dataclass(frozen=True)
class Obj:
    complaints: int = 0
    abnormal: bool = False
    serious_violation: bool = False
    key_sector: bool = False


objects = st.builds(Obj, st.integers(0, 10_000), st.booleans(), st.booleans(), st.booleans())
rules = st.builds(RiskWeights, *[st.integers(0, 20)] * 5)


def test_defaults_give_weight_one():
    assert weight(Obj(), RiskWeights()) == 1
    assert weight(Obj(complaints=50, abnormal=True, serious_violation=True, key_sector=True), RiskWeights()) == 1


def test_formula():
    rw = RiskWeights(per_complaint=1, complaints_max=3, abnormal=2, serious_violation=4, key_sector=1)
    assert weight(Obj(complaints=2), rw) == 3
    assert weight(Obj(complaints=9), rw) == 4  # complaints capped at 3
    assert weight(Obj(abnormal=True), rw) == 3
    assert weight(Obj(complaints=1, abnormal=True, key_sector=True), rw) == 5
    assert weight(Obj(complaints=9, abnormal=True, serious_violation=True, key_sector=True), rw) == 10  # 1+3+2+4+1=11
    assert weight(Obj(complaints=7), RiskWeights(per_complaint=1)) == 8  # complaints_max 0: no cap
    assert weight(Obj(complaints=70), RiskWeights(per_complaint=1)) == 10


@pytest.mark.parametrize("field", ["per_complaint", "complaints_max", "abnormal", "serious_violation", "key_sector"])
@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_weights_must_be_non_negative_integers(field, value):
    with pytest.raises(ValueError, match=field):
        RiskWeights(**{field: value})


@given(objects, rules)
def test_weight_is_within_draw_bounds(obj, rw):
    assert 1 <= weight(obj, rw) <= 10
    assert type(weight(obj, rw)) is int


@given(objects, rules, st.integers(0, 100))
def test_weight_is_monotone_in_complaints(obj, rw, more):
    assert weight(replace(obj, complaints=obj.complaints + more), rw) >= weight(obj, rw)


@pytest.mark.parametrize("mark", ["abnormal", "serious_violation", "key_sector"])
@given(obj=objects, rw=rules)
def test_weight_is_monotone_in_each_mark(mark, obj, rw):
    assert weight(replace(obj, **{mark: True}), rw) >= weight(replace(obj, **{mark: False}), rw)


@given(objects, rules, st.sampled_from(["per_complaint", "abnormal", "serious_violation", "key_sector"]),
       st.integers(0, 20))
def test_weight_is_monotone_in_the_rules(obj, rw, field, more):
    assert weight(obj, replace(rw, **{field: getattr(rw, field) + more})) >= weight(obj, rw)


def test_frequency_exempt():
    assert not frequency_exempt(Obj(), ["complaints", "abnormal", "serious_violation", "key_sector"])
    assert frequency_exempt(Obj(abnormal=True), ["经营异常"])
    assert frequency_exempt(Obj(complaints=2), ("complaints", "key_sector"))
    assert not frequency_exempt(Obj(complaints=2), ("严重违法失信",))
    assert not frequency_exempt(Obj(abnormal=True, key_sector=True), [])
    with pytest.raises(ScopeError):
        frequency_exempt(Obj(), ["高风险"])
