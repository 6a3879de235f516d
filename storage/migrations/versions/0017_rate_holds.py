"""rate holds and slots counted by key and time

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 16:40:00

A rate key whose budget is spent is held until its next slot frees (``rate_holds``): the
claim skips its messages instead of rewriting their due times. Slots are counted by
``(rate_key, at)`` — a recipient's, or the platform app's (``<platform>:app``) — so the
index on ``rate_key`` alone gives way to one on both.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0017'
down_revision: Union[str, None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('rate_holds',
    sa.Column('rate_key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('free_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('rate_key')
    )
    with op.batch_alter_table('send_slots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_send_slots_rate_key'))
        batch_op.create_index('ix_send_slots_rate_key_at', ['rate_key', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('send_slots', schema=None) as batch_op:
        batch_op.drop_index('ix_send_slots_rate_key_at')
        batch_op.create_index(batch_op.f('ix_send_slots_rate_key'), ['rate_key'], unique=False)
    op.drop_table('rate_holds')
