"""follow-up outcomes

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 16:25:00

A follow-up handed to the receiving unit (art. 18) is closed with its outcome (处置):
listed in the abnormal-operations list, ordered to rectify, case filed (with its case
number), transferred, or nothing to do — with the day, the remarks and who closed it.
Existing follow-ups stay open, with no outcome.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0018'
down_revision: Union[str, None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('case_no', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('outcome_note', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('outcome_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('closed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.drop_column('closed_by')
        batch_op.drop_column('outcome_on')
        batch_op.drop_column('outcome_note')
        batch_op.drop_column('case_no')
        batch_op.drop_column('outcome')
