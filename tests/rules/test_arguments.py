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


def test_a_value_runs_to_the_next_known_key_only():
    """SPEC §5: ``说明=标签 x=1`` keeps `` x=1`` in the note; a known key ends the value even
    when this command does not take it (then it is refused by name)."""
    keys = {"task", "note", "category"}
    assert parse_arguments("任务=3 说明=标签 x=1", keys).values == {"task": "3", "note": "标签 x=1"}
    assert parse_arguments("说明=a=b 颜色=红 类别=1", keys).values == {"note": "a=b 颜色=红", "category": "1"}
    assert parse_arguments("名称=a 颜色=红", NEW).values == {"name": "a 颜色=红"}
    with pytest.raises(ArgumentError) as caught:
        parse_arguments("说明=标签 批次=1", keys)
    assert (caught.value.problem, caught.value.subject) == ("unknown_key", "批次")


def test_full_width_is_normalised_except_the_beacon_value():
    args = parse_arguments("名称＝抽查　数量＝１２ 事项＝A01，A02", NEW)
    assert args.values == {"name": "抽查", "count": "12", "items": "A01,A02"}
    beacon = parse_arguments("批次=2026-DS-001 信标值=０３，１５ 「x」", {"batch", "beacon_value"})
    assert beacon.values["beacon_value"] == "０３，１５ 「x」"


@pytest.mark.parametrize("text, problem, subject", [
    ("颜色=红 名称=a", "unknown_key", "颜色"),  # an unknown key opening the arguments is still named
    ("x=1", "unknown_key", "x"),
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
