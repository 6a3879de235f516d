"""reminders are incremental

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 02:39:36

A reminder tick reads only what changed or fell due since the last one
(``bot.reminders.sweep``): each deadline keeps the day of its next rung (indexed) and its
art. 20 line; ``deadline_marks`` holds the work changed since the last sweep
(``storage.deadline_marks``); ``reminder_sweeps`` the one row a sweep claims, with the
fingerprint of the calendar and settings its deadlines were computed with. Existing
deadlines start without a next rung day and there is no sweep row yet: the first sweep
after the upgrade recomputes everything.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0023'
down_revision: Union[str, None] = '0022'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('deadline_marks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('reminder_sweeps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deadlines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_rung_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('line_on', sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f('ix_deadlines_next_rung_on'), ['next_rung_on'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('deadlines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deadlines_next_rung_on'))
        batch_op.drop_column('line_on')
        batch_op.drop_column('next_rung_on')
    op.drop_table('reminder_sweeps')
    op.drop_table('deadline_marks')
