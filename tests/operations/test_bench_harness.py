"""The benches' shared harness (bench/harness.py): tables in fixed columns, and the
scratch directory removed after unless kept."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from harness import Column, Table, quantile, scratch  # noqa: E402

TABLE = Table(Column("run", 8, left=True), Column("req/s", 8, ",.0f"), Column("p99", 7),
              Column("CPU", 6, ".0%", trail=1))


def test_a_row_is_aligned_under_its_header(capsys):
    TABLE.header()
    TABLE.row("bot", 1234.4, "56.1", 0.5)
    header, row = capsys.readouterr().out.splitlines()
    assert header == "run        req/s    p99   CPU"
    assert row == "bot        1,234   56.1  50%"  # the last value keeps no blanks after it
    assert len(row) == len(header) - 1


def test_a_short_row_ends_early_and_a_wide_label_is_padded_by_display_width():
    assert TABLE.line("bot", "") == "bot     " + " " * 8
    assert TABLE.line("确认", 3.0) == "确认    " + "       3"
    assert TABLE.line("x", 1.0, "a string wider than its column") == "x              1a string wider than its column"


def test_quantile_by_nearest_rank():
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0
    assert quantile([], 0.5) != quantile([], 0.5)  # NaN


def test_the_scratch_directory_goes_unless_kept(capsys):
    with scratch("shuangsui-test-", keep=False) as gone:
        (gone / "f").write_text("x")
    with scratch("shuangsui-test-", keep=True) as kept:
        pass
    assert not gone.exists() and kept.is_dir()
    assert capsys.readouterr().err == f"# kept {kept}\n"
    kept.rmdir()
