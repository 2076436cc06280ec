"""outbound_mail: an index on (lower(to_addr), created_at) for loop protection

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 18:00:00

Every automatic mail to a client counts the mails that went to that address in the last
minutes; without the index that was a scan of the whole outbox, slower with each mail sent.
An expression index: PostgreSQL and SQLite (3.9+) both have them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outbound_mail_recipient_created",
        "outbound_mail",
        [sa.text("lower(to_addr)"), "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_mail_recipient_created", table_name="outbound_mail")
