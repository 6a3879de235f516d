"""Work that makes hundreds of thousands of small objects at once (a draw, freezing a
pool, an import): run with the cyclic garbage collector paused, for as long as the work
lasts. A ground-floor module (it imports nothing of ours), so storage uses it too.

Why pause it rather than something narrower. The work's rows, tuples, lists and
dataclasses hold no cycles and outlive the work only as stored rows, yet CPython counts
every container allocated: each 700 a young collection, and each time the survivors grow
the heap by a quarter a full collection over every object of the process, the work's own
included. Measured on a 1,000,000-object draw (5%: 48,133 tasks, 96,266 assignments):
9 full collections taking 1.37 s and 1,833 young ones 0.36 s, in a draw of 3.9 s of CPU
with the collector on. ``gc.freeze()`` after start-up would take only the objects of
start-up out of those full collections, not the work's own, which are most of what they
walk; raising ``gc.set_threshold`` is as process-wide as pausing, and still walks them.

What it costs the rest of the process (``serve``: the event loop and its threads share
it). Python has one collector per process, so the pause holds there too for the work's
few seconds: garbage without cycles is still freed at once by reference counting; garbage
in cycles made meanwhile waits, and the first collection after the pause takes it. The
pause is counted: works running at once (two threads, or one within another) pause it
once, and it resumes when the last of them ends, and only if it was on when the first
began — a collector paused by someone else stays paused.
"""

from __future__ import annotations

import functools
import gc
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")

_lock = threading.Lock()
_running = 0  # works under way with the collector paused
_resume = False  # whether the collector was on when the first of them began


def without_collections(work: Callable[_P, _R]) -> Callable[_P, _R]:
    """``work`` with the cyclic garbage collector paused while it runs (see the module)."""
    @functools.wraps(work)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with collections_paused():
            return work(*args, **kwargs)
    return paused


@contextmanager
def collections_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for the ``with`` block (see the module)."""
    _pause()
    try:
        yield
    finally:
        _unpause()


def _pause() -> None:
    global _running, _resume
    with _lock:
        if _running == 0:
            _resume = gc.isenabled()
            gc.disable()
        _running += 1


def _unpause() -> None:
    global _running
    with _lock:
        _running -= 1
        if _running == 0 and _resume:
            gc.enable()


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def spare_core() -> bool:
    """Whether a second core is likely free now, so that work split across two (a forked
    child, a thread that runs without Python's lock) ends sooner: two cores or more, and
    the one-minute load average leaves at least one idle. On a machine already busier
    than its cores, splitting only adds hand-overs between threads and processes that
    each wait for a core (measured: a 200,000-object draw took longer split than not at
    a load of 5 on 2 cores), so the work then stays on one core — with the same result."""
    n = cores()
    if n < 2:
        return False
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average here: assume the cores are free
        return True
    return load <= n - 1
