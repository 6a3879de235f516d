"""Argument parsing of SPEC §5: keys in two languages, order, quotes, normalisation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules.arguments import ArgumentError, normalise, parse_arguments, split_list

NEW = frozenset({"name", "items", "ratio", "count", "mode", "size", "due", "industry", "region", "lead"})


def test_chinese_and_english_keys_in_any_order():
    chinese = parse_arguments("名称=2026年食品抽查 事项=A01,A02 比例=5% 方式=交叉随机 人数=2 截止=2026-12-31", NEW)
    english = parse_arguments("due=2026-12-31 size=2 mode=交叉随机 ratio=5% items=A01,A02 name=2026年食品抽查", NEW)
    assert chinese == english
    assert chinese.values["name"] == "2026年食品抽查" and split_list(chinese.values["items"]) == ["A01", "A02"]


def test_values_run_to_the_next_key_or_are_quoted():
    args = parse_arguments("名称=城区 餐饮 抽查 行业=餐饮服务", NEW)
    assert args.values == {"name": "城区 餐饮 抽查", "industry": "餐饮服务"}
    for quoted in ('"a b=c"', "“a b=c”", "「a b=c」"):
        assert parse_arguments(f"名称={quoted} 数量=3", NEW).values == {"name": "a b=c", "count": "3"}


def test_full_width_is_normalised_except_the_beacon_value():
    args = parse_arguments("名称＝抽查　数量＝１２ 事项＝A01，A02", NEW)
    assert args.values == {"name": "抽查", "count": "12", "items": "A01,A02"}
    beacon = parse_arguments("批次=2026-DS-001 信标值=０３，１５ 「x」", {"batch", "beacon_value"})
    assert beacon.values["beacon_value"] == "０３，１５ 「x」"


@pytest.mark.parametrize("text, problem, subject", [
    ("名称=a 颜色=红", "unknown_key", "颜色"),
    ("名称=a 批次=1", "unknown_key", "批次"),  # a known key this command does not take
    ("名称=a name=b", "repeated_key", "name"),
    ("抽查 名称=a", "no_key", "抽查"),
    ("名称=\"a b", "unclosed_quote", "名称"),
])
def test_errors_name_the_key(text, problem, subject):
    with pytest.raises(ArgumentError) as caught:
        parse_arguments(text, NEW)
    assert (caught.value.problem, caught.value.subject) == (problem, subject)


@given(st.text())
def test_normalise_keeps_length_and_never_crashes(text):
    assert len(normalise(text)) == len(text)
    try:
        parse_arguments(text, NEW)
    except ArgumentError:
        pass
