"""config_version: the token of the last configuration change, for the configuration snapshot

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 04:00:00

One row (``id`` 1). Every flush that changes a configuration table writes a new random token
here in the same transaction, and on PostgreSQL notifies ``pulpit_config`` with it at commit
(``core.contracts.snapshot``): a process keeps the routing configuration as plain values and
rebuilds them only when the token changes. The row is created here, with a token of its own,
so no process ever has to create it under concurrency.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import core.orm

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("changed_at", core.orm.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(
        table,
        [{"id": 1, "token": secrets.token_hex(16), "changed_at": datetime.now(UTC)}],
    )


def downgrade() -> None:
    op.drop_table("config_version")
