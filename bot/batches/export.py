"""The SSR-1 record of a drawn batch (SPEC §6): what anyone needs to re-check the draw."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from sqlmodel import Session, col, select

from bot.batches import roster
from bot.batches.records import find_batch, strata_of
from bot.refusal import Refusal
from bot.rules import ssr1
from storage.models import Batch, Task


def record(session: Session, batch: Batch) -> dict:
    """``record.json``: commitment, revealed secret, seed, strata with selections, tasks."""
    tasks = session.exec(select(Task).where(Task.batch_id == batch.id).order_by(col(Task.position)))
    return {
        "algorithm": ssr1.ALGORITHM, "batch_id": batch.id, "commitment": batch.commitment, "secret": batch.secret,
        "beacon": batch.beacon, "seed": batch.seed,
        "roster_digest": batch.roster_digest,  # null for a batch published before rosters (DRAW.md §8)
        "strata": [{"name": s.name, "filter": s.filter_description, "items": s.items, "pool_size": s.pool_size,
                    "pool_digest": s.pool_digest, "ratio_percent": s.ratio_percent, "k": s.k,
                    "pool_file": pool_file(s.name), "selected": [{"id": i, "score": sc} for i, sc in s.selected or []]}
                   for s in strata_of(session, batch.id)],
        "tasks": [{"object_id": t.object_id, "strata": t.strata, "items": t.items} for t in tasks],
    }


def pool_file(stratum_name: str) -> str:
    return f"pool-{stratum_name}.txt"


def export(session: Session, batch_id: str, out: Path, *, internal: bool = False) -> list[Path]:
    """Write record.json and the pool files (and, internally, assignment.json and the
    frozen roster's exact lines, roster.txt) to ``out``."""
    batch = find_batch(session, batch_id)
    if batch.drawn_at is None:  # drawn, in progress, completed — or cancelled after its draw
        raise Refusal("not_drawn", batch=batch_id, status=batch.status)
    out.mkdir(parents=True, exist_ok=True)
    written = [_write_json(out / "record.json", record(session, batch))]
    for stratum in strata_of(session, batch.id):
        path = out / pool_file(stratum.name)
        assert stratum.pool is not None  # frozen at publication
        path.write_bytes(zlib.decompress(stratum.pool))  # exactly the lines hashed into the digest
        written.append(path)
    if internal:
        assert batch.matching_inputs is not None  # stored by the draw
        written.append(_write_json(out / "assignment.json", batch.matching_inputs))
        if batch.roster is not None:  # none before rosters existed
            path = out / roster.FILE
            path.write_bytes(zlib.decompress(batch.roster))  # as stored: the verifier checks it
            written.append(path)
    return written


def _write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path
