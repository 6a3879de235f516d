"""Stratum filters (SPEC §2 step 3, §5): parsing, OR/AND semantics, description, JSON."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules.arguments import ArgumentError, normalise, parse_arguments
from bot.rules.scope import (
    KEYS,
    OBJECT_KINDS,
    Scope,
    ScopeError,
    describe,
    matches,
    parse_risk_tag,
    parse_scope,
    risk_tags,
    scope_from_arguments,
)
from storage.importing.values import MARKET_KINDS, NON_MARKET_KINDS

NEW = frozenset({"name", "items", "ratio", "industry", "region", "kind", "unit", "risk"})


@dataclass
class Obj:
    industry: str = "餐饮服务"
    region: str = "林荫街道"
    kind: str = "个体工商户"
    unit_id: str = "S01"
    complaints: int = 0
    abnormal: bool = False
    serious_violation: bool = False
    key_sector: bool = False


def test_chinese_and_english_arguments_give_the_same_scope():
    chinese = parse_arguments("名称=餐饮 行业=餐饮服务、食品销售 区域=林荫街道 类型=个体工商户 管辖=S01 "
                              "风险=经营异常;投诉举报", NEW)
    english = parse_arguments("name=餐饮 risk=complaints,Abnormal unit=S01 kind=个体工商户 region=林荫街道 "
                              "industry=食品销售,餐饮服务", NEW)
    scope = scope_from_arguments(chinese.values)
    assert scope == scope_from_arguments(english.values)
    assert scope == Scope(industries=("食品销售", "餐饮服务"), regions=("林荫街道",), kinds=("个体工商户",),
                          units=("S01",), risks=("abnormal", "complaints"))


def test_other_keys_are_ignored_and_no_filter_is_the_empty_scope():
    scope = scope_from_arguments({"name": "x", "items": "A01", "ratio": "5%"})
    assert scope == Scope() and scope.is_empty
    assert not Scope(regions=("林荫街道",)).is_empty


def test_values_are_sorted_and_deduplicated():
    scope = Scope(industries=["b", "a", "b", " a "], risks=("重点领域", "key_sector", "投诉"))
    assert scope.industries == ("a", "b") and scope.risks == ("complaints", "key_sector")
    assert scope_from_arguments({"industry": "b,a、b;a"}).industries == ("a", "b")


def test_full_width_kind_is_accepted():
    assert Scope(kinds=("外国（地区）企业",)).kinds == ("外国(地区)企业",)
    assert parse_scope("类型＝外国（地区）企业").kinds == ("外国(地区)企业",)


@pytest.mark.parametrize("given, key, value", [
    ({"kind": "公司"}, "kind", "公司"),
    ({"kind": "产品,企业"}, "kind", "企业"),
    ({"risk": "高风险"}, "risk", "高风险"),
    ({"risk": "abnormal、complaint"}, "risk", "complaint"),
])
def test_bad_kind_or_risk_names_the_value_and_the_allowed_ones(given, key, value):
    with pytest.raises(ScopeError) as caught:
        scope_from_arguments(given)
    error = caught.value
    assert (error.key, error.value) == (key, value)
    assert f"「{value}」" in str(error)
    if key == "kind":
        assert error.allowed == OBJECT_KINDS and "个体工商户" in str(error) and "行为" in str(error)
    else:
        assert "经营异常" in str(error) and "key_sector" in str(error)


def test_a_filter_key_without_value_is_refused():
    with pytest.raises(ScopeError) as caught:
        parse_scope("行业= 区域=林荫街道")
    assert caught.value.key == "industry" and "行业" in str(caught.value)


def test_kinds_are_those_of_the_directory_import():
    assert OBJECT_KINDS == MARKET_KINDS + NON_MARKET_KINDS


def test_the_fields_are_the_filter_keys_of_section_5():
    assert [field.name for field in fields(Scope)] == list(KEYS)
    assert set(KEYS.values()) == {"industry", "region", "kind", "unit", "risk"}


def test_or_within_a_condition_and_across_conditions():
    scope = Scope(industries=("餐饮服务", "食品销售"), regions=("林荫街道",))
    assert matches(scope, Obj())
    assert matches(scope, Obj(industry="食品销售"))
    assert not matches(scope, Obj(industry="药品零售"))
    assert not matches(scope, Obj(region="青春山街道"))
    assert not matches(scope, Obj(industry="药品零售", region="青春山街道"))
    assert matches(Scope(units=("S01", "S02")), Obj(unit_id="S02"))
    assert not matches(Scope(kinds=("产品",)), Obj())
    assert matches(Scope(), Obj(industry="", region=""))


def test_risk_passes_on_any_listed_tag():
    scope = Scope(risks=("complaints", "abnormal"))
    assert not matches(scope, Obj())
    assert matches(scope, Obj(complaints=1))
    assert matches(scope, Obj(abnormal=True))
    assert not matches(scope, Obj(key_sector=True, serious_violation=True))
    assert not matches(Scope(risks=("abnormal",), regions=("林荫街道",)), Obj(abnormal=True, region="其他"))


def test_risk_tags_of_an_object():
    assert risk_tags(Obj()) == frozenset()
    assert risk_tags(Obj(complaints=3, serious_violation=True)) == {"complaints", "serious_violation"}
    assert risk_tags(Obj(complaints=0, abnormal=True, key_sector=True)) == {"abnormal", "key_sector"}


def test_full_width_in_the_directory_matches_the_normalised_argument():
    scope = parse_scope("行业=食品（含保健食品）销售")  # chat arguments are normalised (SPEC §5)
    assert matches(scope, Obj(industry="食品（含保健食品）销售"))
    assert matches(scope, Obj(industry="食品(含保健食品)销售"))


@pytest.mark.parametrize("tag, canonical", [
    ("投诉举报", "complaints"), ("经营异常", "abnormal"), ("严重违法失信", "serious_violation"),
    ("重点领域", "key_sector"), ("KEY_SECTOR", "key_sector"), ("经营异常名录", "abnormal"),
])
def test_risk_tag_names(tag, canonical):
    assert parse_risk_tag(tag) == canonical


def test_describe():
    scope = parse_scope("风险=经营异常 区域=林荫街道 行业=餐饮服务,食品销售")
    assert describe(scope) == "行业：食品销售、餐饮服务；区域：林荫街道；风险：经营异常"
    assert describe(Scope(units=("S01",), kinds=("产品",))) == "类型：产品；管辖单位：S01"
    assert describe(Scope(risks=("key_sector", "complaints", "abnormal", "serious_violation"))) == (
        "风险：投诉举报、经营异常、严重违法失信、重点领域")
    assert describe(Scope()) is None
    assert describe(parse_scope("")) is None


@given(st.permutations(["餐饮服务", "食品销售", "药品零售"]), st.permutations(["abnormal", "重点领域", "投诉举报"]))
def test_describe_depends_on_the_scope_only(industries, risks):
    scope = Scope(industries=tuple(industries), risks=tuple(risks))
    assert describe(scope) == "行业：药品零售、食品销售、餐饮服务；风险：投诉举报、经营异常、重点领域"


def test_json_round_trip():
    scope = parse_scope("行业=餐饮服务 区域=林荫街道,青春山街道 类型=外国(地区)企业 管辖=S01 风险=严重违法失信")
    data = scope.to_json()
    assert data == {"industry": ["餐饮服务"], "region": ["林荫街道", "青春山街道"], "kind": ["外国(地区)企业"],
                    "unit": ["S01"], "risk": ["serious_violation"]}
    assert Scope.from_json(data) == scope
    assert Scope().to_json() == {} and Scope.from_json({}) == Scope() and Scope.from_json(None) == Scope()
    with pytest.raises(ScopeError) as caught:
        Scope.from_json({"colour": ["red"]})
    assert caught.value.value == "colour"


@given(st.lists(st.sampled_from(OBJECT_KINDS)), st.lists(st.sampled_from(["complaints", "abnormal", "重点领域"])),
       st.lists(st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc")), min_size=1)))
def test_json_round_trip_property(kinds, risks, industries):
    scope = Scope(kinds=tuple(kinds), risks=tuple(risks), industries=tuple(industries))
    assert Scope.from_json(scope.to_json()) == scope


def test_parse_scope_of_a_plan():
    scope = parse_scope("行业=餐饮服务,食品销售 区域=林荫街道")
    assert scope == Scope(industries=("餐饮服务", "食品销售"), regions=("林荫街道",))
    assert parse_scope("  ") == Scope()
    assert parse_scope("风险=重点领域 类型=有限责任公司、股份有限公司").kinds == ("有限责任公司", "股份有限公司")


@pytest.mark.parametrize("text", ["餐饮服务", "名称=餐饮 行业=餐饮服务", "行业=a 行业=b"])
def test_parse_scope_refuses_what_is_not_a_filter(text):
    with pytest.raises(ArgumentError):
        parse_scope(text)


@given(st.text())
def test_folding_agrees_with_argument_normalisation(text):
    # matching folds directory values the way chat arguments are normalised
    from bot.rules.scope import _FOLD
    assert text.translate(_FOLD) == normalise(text)


def test_the_rules_module_is_pure():
    heavy = "{'aiohttp', 'sqlalchemy', 'sqlmodel'}"
    code = f"import sys, bot.rules.scope, bot.rules.risk; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]"
