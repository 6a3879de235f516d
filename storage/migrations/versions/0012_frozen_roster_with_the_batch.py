"""frozen roster with the batch

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 12:50:00

DRAW.md §8: the inspectors, teams and conflicts that matching reads are frozen at
publication, and their digest is published with the commitment. Batches published
before keep both columns null and match on the directory at the draw, as before.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('roster', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('roster_digest', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('roster_digest')
        batch_op.drop_column('roster')
