"""Summaries for supervisors and lead offices: progress, overdue work by unit and person,
recusals, result categories; a chart where a CJK font is installed, text only where not;
sent once per period whichever instances send it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

import bot.reports.summary as summary_module
from bot.batches import commands
from bot.reports.chart import cjk_font, progress_chart
from bot.reports.summary import period_of, send_summaries
from bot.settings import Settings
from storage.db import transaction
from storage.models import EvidenceBlob, OutboxMessage
from storage.sealing import new_key
from tests.support.batch_district import seed_district

ROLES = {"admins": ["console:admin"], "supervisors": ["console:boss"], "units": {"U-XY": {"leads": ["lead-xy"]}}}
NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


@pytest.fixture
def district(engine, tmp_path):
    seed_district(engine, tmp_path)
    settings = Settings(console={"enabled": True}, roles=ROLES, security={"keys": [new_key()]},
                        bureau={"default_lead": "U-XY"})
    with transaction(engine) as session:
        batch = commands.run(session, settings, "admin", "new",
                             "名称=周报演示 事项=A01 数量=4 方式=交叉随机 截止=2026-12-31", NOW).batch_id
    for action in ("publish", "draw"):
        with transaction(engine) as session:
            commands.run(session, settings, "admin", action, f"批次={batch}", NOW)
    return engine, settings, batch


def queued(engine, prefix="summary:") -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key.like(f"{prefix}%"))))


def test_the_summary_goes_to_supervisors_lead_offices_and_the_group_once(district):
    engine, settings, batch = district
    with transaction(engine) as session:
        sent = send_summaries(session, settings, "weekly", NOW)
    assert {(d.kind, d.address) for d in sent} == {("user", "boss"), ("user", "lead-xy"), ("group", "default")}
    texts = [m for m in queued(engine) if m.kind == "text"]
    assert len(texts) == 3 and all(batch in m.payload["message"]["text"] for m in texts)
    assert "周报" in texts[0].payload["message"]["text"] and "待确认" in texts[0].payload["message"]["text"]
    before = len(queued(engine))
    with transaction(engine) as session:  # another instance, the same period
        send_summaries(session, settings, "weekly", NOW)
    assert len(queued(engine)) == before
    assert period_of("weekly", NOW, "Asia/Shanghai") == "2026-W48"
    assert period_of("daily", NOW, "Asia/Shanghai") == "2026-11-27"


def test_without_a_cjk_font_the_summary_is_text_only(district, monkeypatch):
    engine, settings, _ = district
    monkeypatch.setattr(summary_module, "progress_chart", lambda title, batches: None)
    with transaction(engine) as session:
        send_summaries(session, settings, "daily", NOW)
    kinds = {m.kind for m in queued(engine)}
    assert kinds == {"text"}  # never a chart of boxes


@pytest.mark.skipif(cjk_font() is None, reason="no CJK font installed (fonts-wqy-zenhei or fonts-noto-cjk)")
def test_with_a_cjk_font_a_chart_goes_with_the_text(district):
    engine, settings, _ = district
    with transaction(engine) as session:
        send_summaries(session, settings, "daily", NOW)
    images = [m for m in queued(engine) if m.kind == "image"]
    assert len(images) == 3
    with Session(engine) as session:
        blob = session.get(EvidenceBlob, images[0].payload["message"]["sha256"])
    assert blob.data.startswith(b"\x89PNG") and blob.content_type == "image/png"


@pytest.mark.skipif(cjk_font() is None, reason="no CJK font installed")
def test_the_chart_renders_chinese_labels():
    png = progress_chart("抽查进度", [("食品抽查", [("待确认", 3), ("已公示", 5)])])
    assert png.startswith(b"\x89PNG") and len(png) > 2000


@pytest.mark.skipif(cjk_font() is None, reason="no CJK font installed")
def test_charts_drawn_side_by_side_in_threads_leave_matplotlib_state_alone():
    """Charts are drawn from worker threads: each figure carries its own font, no
    pyplot figure or process-wide setting is touched, and no label falls back to a
    font without Chinese characters (matplotlib warns of each missing glyph)."""
    import sys
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    import matplotlib

    before = matplotlib.rcParams.copy()  # copy() does not resolve the backend (which imports pyplot)
    batches = [(f"批次{n}", [("待确认", n), ("已公示", 5 - n)]) for n in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ThreadPoolExecutor(4) as pool:
            pngs = list(pool.map(lambda n: progress_chart(f"抽查进度{n}", batches[:n + 1]), range(8)))
    assert all(png.startswith(b"\x89PNG") for png in pngs)
    assert matplotlib.rcParams.copy() == before
    assert "matplotlib.pyplot" not in sys.modules


def test_no_font_no_chart(monkeypatch):
    import bot.reports.chart as chart

    monkeypatch.setattr(chart, "cjk_font", lambda: None)
    assert chart.progress_chart("抽查进度", [("食品抽查", [("待确认", 3)])]) is None
