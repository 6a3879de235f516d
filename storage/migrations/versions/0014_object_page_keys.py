"""object page keys

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 13:05:00

``/public/objects/o-<hex>.html`` was found by hashing every object id per request. The
page's name is now stored in ``objects.page_key`` (indexed; set on insert by the model's
default) and looked up by equality; existing rows are backfilled here with the same
function as of this revision (storage.models.directory.page_key).
"""
import hashlib
import re
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0014'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_SAFE_NAME = re.compile(r"[0-9A-Za-z_\-\u3400-\u9fff]{1,80}")


def _page_key(object_id: str) -> str:
    if _SAFE_NAME.fullmatch(object_id):
        return object_id
    return "o-" + hashlib.sha256(object_id.encode()).hexdigest()[:16]


def upgrade() -> None:
    with op.batch_alter_table('objects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('page_key', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.create_index(batch_op.f('ix_objects_page_key'), ['page_key'], unique=False)
    bind = op.get_bind()
    ids = [row[0] for row in bind.execute(sa.text("SELECT id FROM objects WHERE page_key IS NULL"))]
    update = sa.text("UPDATE objects SET page_key = :key WHERE id = :id")
    for start in range(0, len(ids), 1000):
        bind.execute(update, [{"key": _page_key(i), "id": i} for i in ids[start:start + 1000]])


def downgrade() -> None:
    with op.batch_alter_table('objects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_objects_page_key'))
        batch_op.drop_column('page_key')
