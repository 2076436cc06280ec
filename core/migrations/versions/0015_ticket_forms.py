"""ticket forms: custom field rights, labels, order and dependencies; required fields per
contract; checklists per ticket type and per ticket

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 14:00:00

See core.tickets.fields (custom fields) and core.tickets.checklists (checklists).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.orm import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("custom_fields") as batch:
        batch.add_column(sa.Column("visible_to_subcontractor", sa.Boolean(), nullable=True))
        batch.add_column(
            sa.Column("labels", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch.add_column(sa.Column("help", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("position", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("edit", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("min_value", sa.Float(), nullable=True))
        batch.add_column(sa.Column("max_value", sa.Float(), nullable=True))
        batch.add_column(sa.Column("depends_on", sa.JSON(), nullable=True))
    _number_existing_fields()
    with op.batch_alter_table("contracts") as batch:
        batch.add_column(
            sa.Column("required_fields", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("ticket_types") as batch:
        batch.add_column(sa.Column("checklist", sa.JSON(), nullable=True))
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column("checklist_done", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column("checklist_total", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    op.create_table(
        "ticket_checklist_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("ticket_type", sa.String(100), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column(
            "done_by_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_ticket_checklist_items_ticket", "ticket_checklist_items", ["ticket_id", "position"]
    )


def _number_existing_fields() -> None:
    """Existing fields keep the order they were shown in (by name), ten apart within their
    list, as ``pulpit config apply`` numbers a file's fields: the export then needs no
    ``order`` for them."""
    bind = op.get_bind()
    fields = sa.table(
        "custom_fields",
        sa.column("id", sa.Integer),
        sa.column("contract_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("position", sa.Integer),
    )
    rows = bind.execute(
        sa.select(fields.c.id, fields.c.contract_id).order_by(fields.c.contract_id, fields.c.name)
    ).all()
    index: dict[int | None, int] = {}
    for field_id, contract_id in rows:
        n = index.get(contract_id, 0)
        index[contract_id] = n + 1
        if n:
            bind.execute(fields.update().where(fields.c.id == field_id).values(position=n * 10))


def downgrade() -> None:
    op.drop_index("ix_ticket_checklist_items_ticket", table_name="ticket_checklist_items")
    op.drop_table("ticket_checklist_items")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("checklist_total")
        batch.drop_column("checklist_done")
    with op.batch_alter_table("ticket_types") as batch:
        batch.drop_column("checklist")
    with op.batch_alter_table("contracts") as batch:
        batch.drop_column("required_fields")
    with op.batch_alter_table("custom_fields") as batch:
        for column in (
            "depends_on",
            "max_value",
            "min_value",
            "edit",
            "position",
            "help",
            "labels",
            "visible_to_subcontractor",
        ):
            batch.drop_column(column)
