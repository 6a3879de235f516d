"""Re-sealing everything sealed at rest under the first of ``[security] keys``.

To rotate: put a new key first in ``[security] keys`` and keep the old ones after it;
run ``shuangsui keys rotate``; then the old keys may go — except that audit entries are
never rewritten (their hash chain covers them), so keep an old key listed for as long
as the recusal reasons recorded in old audit entries must stay readable.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Engine, update
from sqlmodel import col, select

from bot.texts import say
from storage.db import transaction
from storage.models import Assignment, Batch, Conflict, DirectoryChange, Task
from storage.sealing import SealingError, sealer_of


def rotate_keys(engine: Engine) -> Counter:
    """Re-seal sealed values under the first key of ``engine``'s sealer (and seal any
    still plain); counts per kind."""
    sealer = sealer_of(engine)
    if not sealer.keyed:
        raise SealingError(say("sealing", "no_keys"))
    done: Counter = Counter()
    with transaction(engine) as session:
        for batch in session.exec(select(Batch).where(col(Batch.secret_encrypted).is_not(None))):
            assert batch.secret_encrypted is not None  # as selected
            batch.secret_encrypted = sealer.rotate(batch.secret_encrypted)
            session.add(batch)
            done["draw_secrets"] += 1
        # Read opens with any key; writing the same value back seals it under the first.
        for model, column, kind in ((Conflict, col(Conflict.reason), "conflicts"),
                                    (Assignment, col(Assignment.recusal_reason), "recusals"),
                                    (Assignment, col(Assignment.hand_reason), "hand_assignments"),
                                    (Task, col(Task.closed_reason), "closed_tasks")):
            rows = session.execute(select(col(model.id), column).where(column.is_not(None), column != "")).all()
            for row_id, value in rows:
                session.execute(update(model).where(col(model.id) == row_id).values({column: value}))
            done[kind] += len(rows)
        history = session.exec(select(DirectoryChange).where(DirectoryChange.kind == "conflicts")).all()
        for change in history:
            if change.before.get("reason"):
                change.before = {**change.before, "reason": sealer.reseal_text(change.before["reason"])}
                session.add(change)
                done["history"] += 1
    return done
