"""Standard-error output for long command-line work: progress bars and summary charts.

Standard output is the contract of SPEC §3, so nothing here ever writes to it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm

BAR = "█"
PARTS = " ▏▎▍▌▋▊▉"


def progress(rows: Iterable, *, total: int | None = None, desc: str = "", unit: str = "行") -> Iterable:
    """A progress bar on standard error, shown only to a person at a terminal."""
    return tqdm(rows, total=total, desc=desc, file=sys.stderr, disable=None, leave=False,
                unit=unit, dynamic_ncols=True, mininterval=0.3)


def bar_chart(values: list[tuple[str, int]], width: int = 40) -> str:
    """A horizontal bar chart in block characters, one labelled line per value."""
    if not values:
        return ""
    biggest = max(value for _, value in values) or 1
    label_width = max(_display_width(label) for label, _ in values)
    lines = []
    for label, value in values:
        eighths = round(value / biggest * width * 8)
        bar = BAR * (eighths // 8) + (PARTS[eighths % 8] if eighths % 8 else "")
        pad = " " * (label_width - _display_width(label))
        lines.append(f"{label}{pad} │{bar} {value}")
    return "\n".join(lines)


def _display_width(text: str) -> int:
    """Columns a string takes in a terminal (CJK characters take two)."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def err(text: str = "") -> None:
    print(text, file=sys.stderr, flush=True)
