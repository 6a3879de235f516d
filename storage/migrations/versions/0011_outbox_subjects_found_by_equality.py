"""outbox subjects found by equality

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 11:56:34

Cards were found again with ``idempotency_key LIKE 'task-card:12:%'``, a scan of a table
that only grows. A row now names what it is about in ``subject`` (``task-card:12``),
indexed and queried by equality. Rows queued before the upgrade get their subject from
their key, so a card sent before it is still greyed out after it (the key formats of
``bot.outbox_keys`` as of this revision).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0011'
down_revision: Union[str, None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# key prefix → the subject is the prefix and the key's next field (the card's thing)
_BY_THING = ('task-card', 'result-card', 'approval-card')
_REMINDERS = 'reminders'  # every reminder digest has this one subject


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_subject'), ['subject'], unique=False)
    postgresql = op.get_bind().dialect.name == 'postgresql'
    for prefix in _BY_THING:
        if postgresql:
            thing = "split_part(idempotency_key, ':', 2)"
        else:
            rest = f"substr(idempotency_key, {len(prefix) + 2})"
            thing = f"substr({rest}, 1, instr({rest}, ':') - 1)"
        op.execute(sa.text(f"UPDATE outbox SET subject = :prefix || ':' || {thing} "
                           f"WHERE idempotency_key LIKE :pattern").bindparams(prefix=prefix, pattern=f"{prefix}:%:%"))
    op.execute(sa.text("UPDATE outbox SET subject = :subject WHERE idempotency_key LIKE :pattern")
               .bindparams(subject=_REMINDERS, pattern=f"{_REMINDERS}:%"))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_subject'))
        batch_op.drop_column('subject')
