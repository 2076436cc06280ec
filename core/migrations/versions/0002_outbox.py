"""outbox for outgoing mail

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 15:00:00

One row per outgoing mail and recipient (``core.outbox.OutboundMail``). Constraints and
indexes are named so that later batch migrations on SQLite can find them again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.orm

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", core.orm.UTCDateTime(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("to_addr", sa.String(length=500), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=500), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", core.orm.UTCDateTime(), nullable=False),
        sa.Column("enqueued_at", core.orm.UTCDateTime(), nullable=True),
        sa.Column("claimed_at", core.orm.UTCDateTime(), nullable=True),
        sa.Column("sent_at", core.orm.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name="fk_outbound_mail_ticket_id_tickets",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", name="uq_outbound_mail_message_id"),
        sa.UniqueConstraint("dedupe_key", name="uq_outbound_mail_dedupe_key"),
    )
    with op.batch_alter_table("outbound_mail", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_mail_state_next_attempt", ["state", "next_attempt_at"], unique=False
        )
        batch_op.create_index("ix_outbound_mail_ticket", ["ticket_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbound_mail", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_mail_ticket")
        batch_op.drop_index("ix_outbound_mail_state_next_attempt")
    op.drop_table("outbound_mail")
