"""staffing that cannot dead-end

Revision ID: 0020
Revises: 0019
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


revision: str = '0020'
down_revision: Union[str, None] = '0019'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


# Plain ADD/DROP COLUMN, not batch mode: on SQLite a batch rebuilds the table, and
# ``tasks`` is referenced by other tables' foreign keys, so its DROP would fail.


def upgrade() -> None:
    op.add_column('assignments', sa.Column('hand_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('tasks', sa.Column('expert_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('tasks', sa.Column('closed_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('tasks', sa.Column('closed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('tasks', sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    for column in ('closed_at', 'closed_by', 'closed_reason', 'expert_id'):
        op.drop_column('tasks', column)
    op.drop_column('assignments', 'hand_reason')
