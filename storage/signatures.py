"""Seen DingTalk robot signatures (``SeenSignature``): a ``timestamp``/``sign`` pair is
claimed by the first message it comes with, atomically on every instance."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from storage.models import SeenSignature, table_of

_TABLE = table_of(SeenSignature)


def claim(session: Session, sent_ms: int, sign: str, msg_id: str, *, stale_before_ms: int) -> bool:
    """Whether the pair may carry ``msg_id``: it is new (now claimed for it), or it was
    claimed for this same message (a platform retry). A new claim forgets the pairs
    sent before ``stale_before_ms``: they are refused as stale anyway."""
    connection = session.connection()
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    claimed = connection.execute(insert(_TABLE).values(sent_ms=sent_ms, sign=sign, msg_id=msg_id)
                                 .on_conflict_do_nothing().returning(_TABLE.c.sent_ms)).first()
    if claimed is not None:
        connection.execute(delete(_TABLE).where(_TABLE.c.sent_ms < stale_before_ms))
        return True
    # Taken: by a transaction that has committed (a concurrent claimer's INSERT waited for it).
    owner = connection.execute(select(_TABLE.c.msg_id).where(_TABLE.c.sent_ms == sent_ms,
                                                             _TABLE.c.sign == sign)).scalar_one_or_none()
    return owner == msg_id
