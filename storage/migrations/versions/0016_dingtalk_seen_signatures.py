"""dingtalk seen signatures

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 12:56:26

A DingTalk robot callback signs only its timestamp: each ``timestamp``/``sign`` pair seen
within the window is kept with the message it came with, so that the pair is accepted
again only for that message (a retry). Rows past the window are purged as pairs are
claimed (``storage.signatures``).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0016'
down_revision: Union[str, None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('dingtalk_seen_signatures',
    sa.Column('sent_ms', sa.BigInteger(), nullable=False),
    sa.Column('sign', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('msg_id', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('sent_ms', 'sign')
    )


def downgrade() -> None:
    op.drop_table('dingtalk_seen_signatures')
