"""witness on results and locations as evidence

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 16:14:49

A result keeps its witness (见证, art. 14: 必要时可以邀请有关人员做见证记录), and a
location an inspector sends for a task is evidence like a photo (监管痕迹可查询): its
coordinates, label and the time it was sent are kept on the evidence row (issue 19,
items 6 and 7).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0019'
down_revision: Union[str, None] = '0018'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.add_column(sa.Column('latitude', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('longitude', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('label', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('located_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))

    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('witness', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_column('witness')

    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_column('located_at')
        batch_op.drop_column('label')
        batch_op.drop_column('longitude')
        batch_op.drop_column('latitude')
