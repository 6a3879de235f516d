"""indexes already covered by a unique constraint are dropped

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 04:30:00

``tasks.batch_id`` is the leading column of the unique (batch_id, object_id) and
``assignments.task_id`` of the unique (task_id, inspector_id): both databases look rows
up by those indexes, so the single-column ones only cost every insert (a draw stores
tens of thousands of tasks and twice as many assignments; issue 20 item 4).
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0024'
down_revision: Union[str, None] = '0023'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignments_task_id'))
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tasks_batch_id'))


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_batch_id'), ['batch_id'], unique=False)
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignments_task_id'), ['task_id'], unique=False)
