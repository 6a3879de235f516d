"""results keep their published units

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 13:10:00

The results feed and pages showed the lead inspector's unit as the directory has it now,
so a re-import changed what had been published (issue 17). A result now keeps, from its
approval, the inspecting unit (id and name) and the deciding unit. Results published
before the upgrade get them from the computation the feed made until then: the unit of
the task's first standing inspector (and that unit's name); the deciding unit is the
same unit (whose approvers decide, SPEC §1).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inspecting_unit', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('inspecting_unit_name', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('deciding_unit', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    connection = op.get_bind()
    published = connection.execute(sa.text(
        "SELECT id, task_id FROM results WHERE published_at IS NOT NULL")).all()
    lead_of: dict[int, tuple] = {}
    for result_id, task_id in published:
        if task_id not in lead_of:
            lead_of[task_id] = connection.execute(sa.text(
                "SELECT i.unit_id, u.name FROM assignments a JOIN inspectors i ON i.id = a.inspector_id"
                " LEFT JOIN units u ON u.id = i.unit_id"
                " WHERE a.task_id = :task AND a.status != 'recused' ORDER BY a.position LIMIT 1"),
                {"task": task_id}).first() or (None, None)
        unit_id, name = lead_of[task_id]
        connection.execute(sa.text(
            "UPDATE results SET inspecting_unit = :unit, inspecting_unit_name = :name, deciding_unit = :unit"
            " WHERE id = :id"), {"unit": unit_id, "name": name, "id": result_id})


def downgrade() -> None:
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_column('deciding_unit')
        batch_op.drop_column('inspecting_unit_name')
        batch_op.drop_column('inspecting_unit')
