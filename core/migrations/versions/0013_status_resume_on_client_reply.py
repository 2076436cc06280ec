"""statuses.resume_on_client_reply: whether a client's reply ends a pause

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 10:00:00

A client's public reply to a ticket in a paused status that waits for them moves it back to an
open status, so the SLA clock runs again (docs/sla.md). NULL means the default rule: a paused
status visible to clients resumes, others do not.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.add_column(sa.Column("resume_on_client_reply", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.drop_column("resume_on_client_reply")
