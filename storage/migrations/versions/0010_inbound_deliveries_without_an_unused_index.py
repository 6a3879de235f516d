"""inbound deliveries without an unused index

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 16:40:00

No query reads inbound deliveries by ``received_at``, and every callback's acknowledgement
inserts a row: the index cost each of them a B-tree insert for nothing.
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_deliveries_received_at'))


def downgrade() -> None:
    with op.batch_alter_table('inbound_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_deliveries_received_at'), ['received_at'], unique=False)
