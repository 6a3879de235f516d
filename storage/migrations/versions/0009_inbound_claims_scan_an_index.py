"""inbound claims scan an index

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 14:10:00

A claim looks for pending deliveries that are due; the table keeps every delivery done
(the dedupe keys), so it needs (status, next_attempt_at), which also serves lookups by
status alone.
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_deliveries_status'))
        batch_op.create_index('ix_inbound_due', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbound_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_due')
        batch_op.create_index(batch_op.f('ix_inbound_deliveries_status'), ['status'], unique=False)
