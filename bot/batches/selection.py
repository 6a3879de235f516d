"""Object selection over a frozen pool (DRAW.md §4), at the speed of its hashes.

This is ``ssr1.select`` specialised to the frozen pool's bytes: it hashes each line
without decoding it and keeps raw digests (ordered exactly as their hex is), so a
weight-1 member costs about one SHA-256 — the hash floor — and memory holds only the
candidates.

The weight-1 members (nearly every member of a real pool) are hashed a few thousand at
a time by ``map`` over the standard library's own methods, with no Python frame per
member: each a copy of the hash state of ``stratum_seed|`` (its first block compressed
once), updated with its line. Only a digest under a threshold is kept: the threshold is
set so that ``k`` plus a margin of members are expected under it (scores are uniform);
if fewer than ``k`` fall under it — many standard deviations away, but possible — the
selection is made again by the plain loop, which keeps every candidate it may need. So
the threshold decides how much is kept, never what is selected.

Scores are order-independent, so a pool of ``FORK_MIN_LINES`` members or more is
scored on two cores where there are two: a forked child takes the second half of the
weight-1 lines, this process the first, and the child sends back only what it kept
under the threshold (``_under_forked``). The kept candidates are exactly those of the
one-process path, so the selection is too (tests/rules/test_selection_forked.py).
``ssr1.merge_selections`` is there for a sharded deployment.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
from collections import deque
from collections.abc import Callable
from itertools import compress, repeat
from operator import not_
from typing import TYPE_CHECKING

from bot.bulkwork import spare_core
from bot.rules import ssr1

if TYPE_CHECKING:
    from _hashlib import HASH  # what hashlib's constructors return

_DIGEST = 32
_CHUNK = 4096  # members hashed per round of ``map``: a few hundred kB of hash states
FORK_MIN_LINES = 100_000  # below this, forking costs more than half the scoring saves


def select_lines(stratum_seed: str, data: bytes, k: int, *, spare: int | None = None) -> list[ssr1.Scored]:
    """``ssr1.select`` over ``id|w`` lines given as bytes (DRAW.md §4, same result).

    A weight-1 member's one ticket hashes ``id|0``: that is its line with the final
    ``1`` made ``0``, so one ``replace`` over the whole pool turns every such line into
    its own message. Candidates are kept as digest + ``id|0``; two members could only
    tie on a digest by a SHA-256 collision, so the suffix never decides an order.
    ``spare``: how many members beyond ``k`` the threshold expects to keep (default
    ``8√k + 64``; tests make it small to reach the plain loop).
    """
    if k <= 0:
        return []
    text = data.replace(b"|1\n", b"|0\n")
    lines = text.split(b"\n")
    if lines[-1] == b"":  # the final newline's
        lines.pop()
    if b"\n\n" in text or text[:1] == b"\n":
        lines = [line for line in lines if line]  # the loop skips empty lines
    if not lines:
        return []
    n = len(lines)
    want = k + (8 * math.isqrt(k) + 64 if spare is None else spare)
    threshold = ((want << 256) // n).to_bytes(_DIGEST, "big") if want < n else b"\xff" * _DIGEST
    base = hashlib.sha256(f"{stratum_seed}|".encode())
    if text.count(b"|0\n") + text.endswith(b"|0") == n:
        light, heavy = lines, []
    else:
        flags = list(map(bytes.endswith, lines, repeat(b"|0")))
        light, heavy = list(compress(lines, flags)), list(compress(lines, map(not_, flags)))
    del lines
    kept = _under_forked(base, light, threshold) if _fork_pays(len(light)) else _under(base, light, threshold)
    copy = base.copy
    for line in heavy:  # weights 2–10: a frame each, few of them
        member, _, w = line.rpartition(b"|")
        digest = min(_ticket(copy, member, j) for j in range(ssr1.check_weight(int(w))))
        if digest <= threshold:
            kept.append(digest + member + b"|0")
    if len(kept) < min(k, n):
        return _select_loop(copy, text, k)
    kept.sort()
    return [ssr1.Scored(x[:_DIGEST].hex(), x[_DIGEST:-2].decode()) for x in kept[:k]]


def _under(base: HASH, lines: list[bytes], threshold: bytes) -> list[bytes]:
    """digest + line of every line whose digest (``base`` updated with it) is at most
    ``threshold``; ``map`` over the hash methods, a chunk at a time."""
    copy, update, digest = type(base).copy, type(base).update, type(base).digest
    keep = threshold.__ge__
    kept: list[bytes] = []
    for start in range(0, len(lines), _CHUNK):
        chunk = lines[start:start + _CHUNK]
        states = list(map(copy, repeat(base, len(chunk))))
        deque(map(update, states, chunk), 0)
        digests = list(map(digest, states))
        flags = list(map(keep, digests))
        kept += map(bytes.__add__, compress(digests, flags), compress(chunk, flags))
    return kept


def _fork_pays(lines: int) -> bool:
    """Whether to score part of the pool in a forked process (see ``_under_forked``):
    a large pool, and a core to spare (``bulkwork.spare_core``)."""
    return lines >= FORK_MIN_LINES and hasattr(os, "fork") and _spare_core()


def _spare_core() -> bool:
    return spare_core()


def _under_forked(base: HASH, lines: list[bytes], threshold: bytes) -> list[bytes]:
    """``_under`` on two cores: a forked child scores the second half of ``lines`` while
    this process scores the first, and sends back its kept candidates (a few
    thousandths of the pool) through a pipe. The same list as ``_under``, in the same
    order: each half keeps exactly what ``_under`` keeps of it, the threshold being the
    whole pool's. Falls back to ``_under`` where the child cannot be made or fails.

    The child inherits the pool and the hash state; it runs nothing but ``_under``,
    pickles its list (its own, trusted) and leaves by ``os._exit``: no exit handlers,
    no database connection touched (SQLite and PostgreSQL handles are only closed)."""
    half = len(lines) // 2
    try:
        read, write = os.pipe()
    except OSError:
        return _under(base, lines, threshold)
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return _under(base, lines, threshold)
    if pid == 0:  # the child
        status = 1
        try:
            os.close(read)
            with os.fdopen(write, "wb") as out:
                out.write(pickle.dumps(_under(base, lines[half:], threshold), pickle.HIGHEST_PROTOCOL))
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    try:
        first = _under(base, lines[:half], threshold)
        with os.fdopen(read, "rb") as got:
            sent = got.read()
    finally:
        _, status = os.waitpid(pid, 0)
    if status != 0:
        return first + _under(base, lines[half:], threshold)
    second: list[bytes] = pickle.loads(sent)  # noqa: S301 (our own child's list, through our own pipe)
    return first + second


def _select_loop(copy: Callable[[], HASH], text: bytes, k: int) -> list[ssr1.Scored]:
    """The same selection, one line at a time, keeping the 2k best candidates as it goes
    (``text``: the pool with every weight-1 line already ending in ``|0``)."""
    best: list[bytes] = []
    worst = b"\xff" * (_DIGEST + 1)
    for line in text.split(b"\n"):
        if line[-2:] == b"|0":
            h = copy()
            h.update(line)
            digest = h.digest()
        elif line:
            member, _, w = line.rpartition(b"|")
            digest = min(_ticket(copy, member, j) for j in range(ssr1.check_weight(int(w))))
            line = member + b"|0"
        else:
            continue
        if digest <= worst:
            best.append(digest + line)
            if len(best) >= 2 * k:
                best.sort()
                del best[k:]
                worst = best[-1][:_DIGEST]
    best.sort()
    return [ssr1.Scored(x[:_DIGEST].hex(), x[_DIGEST:-2].decode()) for x in best[:k]]


def _ticket(copy: Callable[[], HASH], member: bytes, j: int) -> bytes:
    h = copy()
    h.update(member + b"|" + str(j).encode())
    return h.digest()
