"""Work that makes hundreds of thousands of small objects at once (a draw, freezing a
pool): run with the cyclic garbage collector paused."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")


def without_collections(work: Callable[_P, _R]) -> Callable[_P, _R]:
    """``work`` with the cyclic garbage collector paused. Its rows, tuples and strings hold
    no cycles, yet every few hundred of them allocated trigger a collection, and the older
    generations' collections walk the whole heap (measured: a quarter of a large draw).
    Garbage made meanwhile, by any thread, is collected once the collector resumes."""
    @functools.wraps(work)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not gc.isenabled():
            return work(*args, **kwargs)
        gc.disable()
        try:
            return work(*args, **kwargs)
        finally:
            gc.enable()
    return paused
