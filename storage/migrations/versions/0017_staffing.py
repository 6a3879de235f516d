"""staffing that cannot dead-end

Revision ID: 0017_staffing
Revises: 0016
Create Date: 2026-12-05 16:15:22

Issue 18 §2 (art. 12, 14): an assignment made by hand (指派) keeps its reason, sealed like
a declaration; a task keeps the specialist assisting it (协助, not a team member) and,
when closed as not inspected (结束任务), who closed it, when, and why (sealed, never
published). Existing rows need nothing: the new columns are empty.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0017_staffing'
down_revision: Union[str, None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hand_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expert_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('closed_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('closed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key('fk_tasks_expert_id_inspectors', 'inspectors', ['expert_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_constraint('fk_tasks_expert_id_inspectors', type_='foreignkey')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('closed_by')
        batch_op.drop_column('closed_reason')
        batch_op.drop_column('expert_id')

    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('hand_reason')
