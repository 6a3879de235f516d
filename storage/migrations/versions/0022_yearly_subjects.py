"""messages sent once a year are kept a year

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 02:40:00

The reminders that a year's official calendar is missing and that a plan is behind its
frequency (art. 11) are sent once a year; their outbox rows now carry the subject
``yearly`` (``bot.outbox_keys.YEARLY``) and retention keeps them 366 days, so the row that
says "already sent" outlives the year it is about. Rows queued before the upgrade get the
subject from their key (the key formats of ``bot.outbox_keys`` as of this revision), or a
reminder sent in January would be sent again once retention had dropped its row.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0022'
down_revision: Union[str, None] = '0021'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_YEARLY = 'yearly'
_PREFIXES = ('calendar-missing', 'plan-behind')


def upgrade() -> None:
    for prefix in _PREFIXES:
        op.execute(sa.text("UPDATE outbox SET subject = :subject WHERE idempotency_key LIKE :pattern")
                   .bindparams(subject=_YEARLY, pattern=f"{prefix}:%"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE outbox SET subject = NULL WHERE subject = :subject").bindparams(subject=_YEARLY))
