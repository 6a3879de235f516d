"""audit anchors

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 13:00:00

The audit chain's head, recorded daily and at every draw and shown on the public index
(storage.audit.anchor): outsiders who keep these can detect a rewritten history.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0013'
down_revision: Union[str, None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('audit_anchors',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('seq', sa.Integer(), nullable=False),
                    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                    sa.Column('entry_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
                    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))


def downgrade() -> None:
    op.drop_table('audit_anchors')
