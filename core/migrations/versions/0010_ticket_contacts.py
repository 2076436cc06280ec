"""ticket_contacts: contacts copied on a ticket ("request participants", core.ticket_contacts)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.orm

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table only: nothing existing is rewritten, so it runs the same on SQLite and
    # PostgreSQL. The primary key is the unique (ticket, user) pair.
    op.create_table(
        "ticket_contacts",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("added_at", core.orm.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("ticket_id", "user_id"),
    )
    # The portal's scope asks "which tickets is this contact copied on?" by user.
    op.create_index("ix_ticket_contacts_user", "ticket_contacts", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_contacts_user", table_name="ticket_contacts")
    op.drop_table("ticket_contacts")
