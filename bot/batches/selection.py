"""Object selection over a frozen pool (DRAW.md §4), on every core for big pools.

Scores depend only on the seed and each member, so the pool can be cut into chunks
scored in separate processes, each keeping its own k best; the merged result is the
same as one pass. Workers are forked and inherit the pool's bytes, so nothing big is
pickled; small pools are scored in-process (a fork costs more than it saves).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from bot.rules import ssr1
from storage.pools import members_of

PARALLEL_FROM = 200_000  # members; below this one process is faster
_pool_data: bytes = b""  # inherited by forked workers


def select_from_pool(data: bytes, size: int, stratum_seed: str, k: int, *,
                     workers: int | None = None) -> list[ssr1.Scored]:
    """The ``min(k, size)`` members of the frozen ``data`` with the smallest scores."""
    workers = workers or os.cpu_count() or 1
    if size < PARALLEL_FROM or workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return ssr1.select(stratum_seed, members_of(data), k)
    global _pool_data
    _pool_data = data
    bounds = _chunk_bounds(data, workers)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as executor:
            parts = executor.map(_select_chunk, [(start, end, stratum_seed, k) for start, end in bounds])
            return ssr1.merge_selections(list(parts), k)
    finally:
        _pool_data = b""


def _chunk_bounds(data: bytes, parts: int) -> list[tuple[int, int]]:
    """Byte ranges cut at line ends."""
    bounds, start = [], 0
    for i in range(1, parts + 1):
        end = len(data) if i == parts else data.find(b"\n", len(data) * i // parts) + 1 or len(data)
        if end > start:
            bounds.append((start, end))
        start = end
    return bounds


def _select_chunk(task: tuple[int, int, str, int]) -> list[ssr1.Scored]:
    start, end, stratum_seed, k = task
    return ssr1.select(stratum_seed, members_of(_pool_data[start:end]), k)
