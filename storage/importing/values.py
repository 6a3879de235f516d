"""Parsing one cell of a directory file. Each parser returns the stored value or
raises ``BadValue`` with the reason a person reads (SPEC §3 formats)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation

from bot.texts import say


class BadValue(ValueError):
    """A cell that cannot be taken; ``str()`` is the reason, in Chinese."""


TRUE = {"true", "是", "1", "yes", "y"}
FALSE = {"false", "否", "0", "no", "n"}

UNIT_KINDS = {"office": "office", "科室": "office", "station": "station", "市场监管所": "station",
              "brigade": "brigade", "执法大队": "brigade"}
OBJECT_STATUSES = {"active": "active", "存续": "active", "在营": "active", "开业": "active",
                   "deregistered": "deregistered", "注销": "deregistered", "吊销": "deregistered",
                   "撤销": "deregistered"}
MARKET_KINDS = ("有限责任公司", "股份有限公司", "非公司企业法人", "合伙企业", "个人独资企业",
                "农民专业合作社", "分支机构", "个体工商户", "外国(地区)企业")  # art. 3
NON_MARKET_KINDS = ("产品", "项目", "行为")
ITEM_METHODS = {"书面": "书面", "written": "书面", "实地": "实地", "onsite": "实地",
                "网络": "网络", "online": "网络"}
HOLIDAY_KINDS = {"holiday": "holiday", "休": "holiday", "workday": "workday", "班": "workday"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# bot.rules.arguments.normalise as one C call: full-width ASCII forms, U+3000 and NUL to
# ASCII (tests/storage/test_import_fast.py checks every code point against it).
FOLD = str.maketrans({**{code: chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)}, 0x3000: " ", 0: " "})


def identifier(text: str) -> str:
    """An id as DRAW.md defines it: non-empty, no ``|``, no CR/LF, no edge spaces."""
    if text == "":
        raise BadValue(say("import", "empty_id"))
    if "|" in text:
        raise BadValue(say("import", "pipe_in_id", value=text))
    if "\n" in text or "\r" in text:
        raise BadValue(say("import", "newline_in_id", value=text))
    if text != text.strip():
        raise BadValue(say("import", "spaces_around_id", value=text))
    return text


def required_text(text: str) -> str:
    if not text.strip():
        raise BadValue(say("import", "empty_value"))
    return text.strip()


def optional_text(text: str) -> str:
    return text.strip()


def folded_text(text: str) -> str:
    """Free text that filters match (industry, region): full-width forms folded the way
    command arguments are (SPEC §5), so that 行业=食品（含保健食品）销售 finds it."""
    return text.translate(FOLD).strip()


def optional_id(text: str) -> str | None:
    return identifier(text.strip()) if text.strip() else None


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise BadValue(say("import", "bad_boolean", value=text))


def count(text: str) -> int:
    value = text.strip()
    if not value:
        return 0
    if not value.isdecimal() or len(value) > 9:  # isdigit() would take "²"; a column holds < 2³¹
        raise BadValue(say("import", "bad_count", value=text))
    return int(value)


def positive_int(text: str) -> int:
    value = count(text)
    if value < 1:
        raise BadValue(say("import", "bad_count", value=text))
    return value


def day(text: str) -> date:
    value = text.strip()
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise BadValue(say("import", "bad_date", value=text)) from None


def optional_day(text: str) -> date | None:
    return day(text) if text.strip() else None


def percent(text: str) -> str:
    """A ratio in percent as an exact decimal string: ``"5"``, ``"12.5"`` (no ``%``)."""
    value = text.strip().removesuffix("%")
    try:
        number = Decimal(value).normalize() if len(value) <= 20 else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or not 0 < number <= 100 or _places(number) > 6:
        raise BadValue(say("import", "bad_percent", value=text))
    return format(number, "f")


def _places(number: Decimal) -> int:
    """The decimal places of a finite number."""
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # only NaN and infinity have a letter
    return max(0, -exponent)


def id_list(text: str) -> list[str]:
    """``;``-separated ids (also ``；`` and ``,``), duplicates refused."""
    parts = [part.strip() for part in re.split(r"[;；,，]", text) if part.strip()]
    for part in parts:
        identifier(part)
    if len(set(parts)) != len(parts):
        raise BadValue(say("import", "duplicate_in_list", value=text))
    return parts


def word_list(text: str) -> list[str]:
    """``;``-separated words (specialities), sorted, each without ``|``, CR or LF: they
    are written into the frozen roster's lines (DRAW.md §8)."""
    words = sorted({part.strip() for part in re.split(r"[;；,，]", text) if part.strip()})
    for word in words:
        if set(word) & set("|\r\n"):
            raise BadValue(say("import", "bad_word", value=word))
    return words


def choice(table: dict[str, str], message: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        found = table.get(value) or table.get(value.lower())
        if found is None:
            raise BadValue(say("import", message, value=text, allowed=sorted(set(table))))
        return found

    return parse


def object_kind(text: str) -> str:
    value = text.strip().replace("（", "(").replace("）", ")")
    if value in MARKET_KINDS or value in NON_MARKET_KINDS:
        return value
    raise BadValue(say("import", "bad_object_kind", value=text, allowed=MARKET_KINDS + NON_MARKET_KINDS))


def status(text: str) -> str:
    return choice(OBJECT_STATUSES, "bad_status")(text) if text.strip() else "active"
