"""annual plans carry their kind

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 16:40:00

A plan states its type (抽查类型, art. 11): 不定向, 定向 or 联合 (joint with other
departments); plans imported before say nothing ("").
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0021'
down_revision: Union[str, None] = '0020'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch copy: SQLite would drop and recreate annual_plans,
    # which batches and adjustments refer to (the foreign keys would refuse it).
    op.add_column('annual_plans', sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                            server_default=''))


def downgrade() -> None:
    op.drop_column('annual_plans', 'kind')
