"""The whole life of a batch with every loop of the rules closed (issue 18's "done when"),
on WeCom, DingTalk (HTTP and Stream) and the console: tests/support/lifecycle.py."""

from __future__ import annotations

from tests.support.lifecycle import whole_life


async def test_a_batch_whose_loops_all_close(walk, engine, tmp_path, monkeypatch):
    await whole_life(walk, engine, tmp_path, monkeypatch)
