"""Published results for the national disclosure system (国家企业信用信息公示系统) and
the bureau's website: CSV (UTF-8 with BOM, so Excel opens it) or XLSX, one row per
published result, in the column layout of ``COLUMNS`` (README, "Public disclosure").
A cell that would start a formula is neutralised (``neutral``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook

from bot.public.disclosure import PublishedResult
from bot.texts import say

#: The documented layout: key (the header row), in this order.
COLUMNS = ("credit_code", "name", "batch_id", "batch_name", "items", "category", "category_name",
           "inspected_on", "published_on", "unit")


#: What a spreadsheet may take for a formula at the start of a cell (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutral(value: str) -> str:
    """A cell no spreadsheet runs: one starting like a formula gets a leading ``'`` (an
    object named ``=HYPERLINK(…)`` is shown as text); every other value is kept as it is."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def rows(results: Sequence[PublishedResult]) -> list[list[str]]:
    names = {code: say("public", "category_name", code=code) for code in range(1, 9)}
    return [[neutral(cell) for cell in (
        r.object_id, r.object_name, r.batch_id, r.batch_name, ";".join(r.items), str(r.category),
        names[r.category], r.inspected_on.isoformat() if r.inspected_on else "", r.published_on.isoformat(),
        r.unit)] for r in results]


def to_csv(results: Sequence[PublishedResult]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows(results))
    return out.getvalue().encode("utf-8-sig")


def to_xlsx(results: Sequence[PublishedResult]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(say("public", "feed_sheet"))
    sheet.append(list(COLUMNS))
    for row in rows(results):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
