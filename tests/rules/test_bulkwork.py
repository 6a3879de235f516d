"""``without_collections``: the collector paused during the work and resumed after it,
whether the work returns or raises; left paused where the caller had paused it."""

from __future__ import annotations

import gc

import pytest

from bot.batches.bulkwork import without_collections


@without_collections
def _work(fail: bool) -> bool:
    if fail:
        raise ValueError("refused")
    return gc.isenabled()


def test_the_collector_is_paused_during_the_work_and_resumed_after():
    assert gc.isenabled()
    assert _work(False) is False
    assert gc.isenabled()
    with pytest.raises(ValueError):
        _work(True)
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused():
    gc.disable()
    try:
        assert _work(False) is False
        assert not gc.isenabled()
    finally:
        gc.enable()
