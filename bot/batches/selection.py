"""Object selection over a frozen pool (DRAW.md §4), at the speed of its hashes.

This is ``ssr1.select`` specialised to the frozen pool's bytes: it hashes each line
without decoding it and keeps raw digests (ordered exactly as their hex is), so a
weight-1 member costs about one SHA-256 — the hash floor — and memory holds only the
2k best candidates.

Scores are order-independent, so chunks could be scored in separate processes and
merged; measured on this project's 2-vCPU machines, forked workers were slower than
one process (1.35 s against 1.08 s for 1,000,000 members), so the draw stays
in-process. ``ssr1.merge_selections`` is there for a sharded deployment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.rules import ssr1

if TYPE_CHECKING:
    from _hashlib import HASH  # what hashlib's constructors return

_DIGEST = 32


def select_lines(stratum_seed: str, data: bytes, k: int) -> list[ssr1.Scored]:
    """``ssr1.select`` over ``id|w`` lines given as bytes (DRAW.md §4, same result).

    A weight-1 member's one ticket hashes ``id|0``: that is its line with the final
    ``1`` made ``0``, so one ``replace`` over the whole pool turns every such line into
    its own message. Candidates are kept as digest + ``id|0``; two members could only
    tie on a digest by a SHA-256 collision, so the suffix never decides an order.
    """
    if k <= 0:
        return []
    copy = hashlib.sha256(f"{stratum_seed}|".encode()).copy
    best: list[bytes] = []
    worst = b"\xff" * (_DIGEST + 1)
    for line in data.replace(b"|1\n", b"|0\n").split(b"\n"):
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
