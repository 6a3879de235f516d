"""``without_collections``: the collector paused during the work and resumed after it,
whether the work returns or raises; left paused where the caller had paused it."""

from __future__ import annotations

import gc

import pytest

from bot.bulkwork import without_collections


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


def test_works_at_once_pause_it_once_and_the_last_one_resumes_it():
    """Two works on two threads: the first begins, the second begins, the first ends —
    the collector stays paused for the second, and resumes when the second ends (a
    plain pause would resume it under the second's feet)."""
    import threading

    begun = {name: threading.Event() for name in ("first", "second")}
    end = {name: threading.Event() for name in ("first", "second")}
    at_end = {}

    @without_collections
    def work(name: str) -> None:
        begun[name].set()
        assert end[name].wait(10)
        at_end[name] = gc.isenabled()

    threads = {name: threading.Thread(target=work, args=(name,)) for name in ("first", "second")}
    threads["first"].start()
    assert begun["first"].wait(10)
    threads["second"].start()
    assert begun["second"].wait(10)
    end["first"].set()
    threads["first"].join(10)
    assert not gc.isenabled()  # the second still runs
    end["second"].set()
    threads["second"].join(10)
    assert at_end == {"first": False, "second": False}
    assert gc.isenabled()


def test_a_work_within_a_work_resumes_at_the_outer_end():
    @without_collections
    def outer() -> tuple[bool, bool]:
        inner = _work(False)
        return inner, gc.isenabled()

    assert outer() == (False, False)
    assert gc.isenabled()


def test_a_core_is_spared_only_when_the_load_leaves_one_idle(monkeypatch):
    import os

    from bot import bulkwork

    monkeypatch.setattr(bulkwork, "cores", lambda: 2)
    for load, spare in ((0.2, True), (1.0, True), (1.3, False), (5.0, False)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert bulkwork.spare_core() is spare
    monkeypatch.setattr(bulkwork, "cores", lambda: 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert bulkwork.spare_core() is False
