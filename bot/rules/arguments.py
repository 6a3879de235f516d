"""``key=value`` arguments of chat commands and of ``shuangsui batch`` (SPEC §5).

Keys are Chinese or English and order-free. A value runs to the next known ``key=``
(a key of SPEC §5, whether or not this command takes it), or is quoted with "…", “…" or
「…」 so that it may hold spaces: ``说明=标签 x=1`` is the note ``标签 x=1``. A ``word=``
that opens the arguments is a key all the same, and an unknown one is an error naming it. Full-width punctuation,
digits and the ideographic space are normalised first — except inside the value of
信标值 (beacon_value), which is used verbatim (DRAW.md §3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEYS = {
    "名称": "name", "事项": "items", "比例": "ratio", "数量": "count", "方式": "mode", "人数": "size",
    "截止": "due", "行业": "industry", "区域": "region", "类型": "kind", "管辖": "unit", "风险": "risk",
    "批次": "batch", "信标": "beacon", "信标值": "beacon_value", "原因": "reason", "任务": "task",
    "日期": "date", "类别": "category", "说明": "note", "签字": "signed", "情形": "case", "牵头": "lead",
    "计划": "plan", "机关": "agency", "司法": "judicial", "结论": "outcome", "案号": "case_no",
    "人员": "inspector", "状态": "status", "期限": "deadline", "至": "until", "见证": "witness",
}
ENGLISH = frozenset(KEYS.values())
VERBATIM = "beacon_value"
QUOTES = {'"': '"', "“": "”", "「": "」"}
# A key is a run of letters/digits/underscore right before "=", at the start or after white space.
_KEY = re.compile(r"(?:(?<=\s)|^)([^\s=\"“「]+)=")


class ArgumentError(ValueError):
    """A bad argument; ``problem`` says which kind, ``subject`` the key or value at fault."""

    def __init__(self, problem: str, subject: str, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(f"{problem}: {subject}")
        self.problem, self.subject, self.allowed = problem, subject, allowed


@dataclass(frozen=True)
class Arguments:
    values: dict[str, str]  # canonical English key → value

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)


def normalise(text: str) -> str:
    """Full-width ASCII forms and U+3000 to their ASCII equivalents (a NUL to a space), one
    char for one."""
    return "".join(_half_width(ch) for ch in text)


def _half_width(ch: str) -> str:
    code = ord(ch)
    if 0xFF01 <= code <= 0xFF5E:
        return chr(code - 0xFEE0)
    if code == 0x3000 or code == 0:  # a NUL is never meant, and no database column takes it
        return " "
    return ch


def canonical_key(key: str) -> str | None:
    return KEYS.get(key) or (key.lower() if key.lower() in ENGLISH else None)


def parse_arguments(text: str, allowed: frozenset[str] | set[str]) -> Arguments:
    """Parse ``text`` into canonical keys; ``allowed`` are the keys this command takes."""
    plain = normalise(text)  # same length as text: indices match
    found = _keys(plain)
    if found and plain[: found[0].start()].strip():
        raise ArgumentError("no_key", plain[: found[0].start()].strip(), tuple(sorted(allowed)))
    if not found and plain.strip():
        raise ArgumentError("no_key", plain.strip(), tuple(sorted(allowed)))
    values: dict[str, str] = {}
    for index, match in enumerate(found):
        key = canonical_key(match.group(1))
        if key is None or key not in allowed:
            raise ArgumentError("unknown_key", match.group(1), tuple(sorted(allowed)))
        if key in values:
            raise ArgumentError("repeated_key", match.group(1))
        end = found[index + 1].start() if index + 1 < len(found) else len(plain)
        source = text if key == VERBATIM else plain
        values[key] = _unquote(source[match.end():end].strip(), match.group(1))
    return Arguments(values)


def _keys(plain: str) -> list[re.Match]:
    """Every known ``key=`` outside quoted values, in order, and a ``word=`` that opens the
    text even if unknown (so that the error names it). Any other ``word=`` is part of a value."""
    found: list[re.Match] = []
    position = 0
    while (match := _KEY.search(plain, position)) is not None:
        position = match.end()
        opening = not found and not plain[: match.start()].strip()
        if canonical_key(match.group(1)) is None and not opening:
            continue
        found.append(match)
        if position < len(plain) and plain[position] in QUOTES:
            closing = plain.find(QUOTES[plain[position]], position + 1)
            position = len(plain) if closing < 0 else closing + 1
    return found


def _unquote(value: str, key: str) -> str:
    if value and value[0] in QUOTES:
        closing = QUOTES[value[0]]
        if len(value) < 2 or not value.endswith(closing):
            raise ArgumentError("unclosed_quote", key)
        return value[1:-1]
    return value


def split_list(value: str) -> list[str]:
    """``A01,A02`` — also with 、 or ; — as a list without blanks."""
    return [part.strip() for part in re.split(r"[,、;]", normalise(value)) if part.strip()]
