"""substitutions: a substitute covers for an absent colleague within a window

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.orm

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "substitutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("absent_id", sa.Integer(), nullable=False),
        sa.Column("substitute_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", core.orm.UTCDateTime(), nullable=False),
        sa.Column("ends_at", core.orm.UTCDateTime(), nullable=False),
        sa.Column("ended_at", core.orm.UTCDateTime(), nullable=True),
        sa.Column("created_at", core.orm.UTCDateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["absent_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["substitute_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_substitutions_absent_id", "substitutions", ["absent_id"])
    op.create_index("ix_substitutions_substitute_id", "substitutions", ["substitute_id"])


def downgrade() -> None:
    op.drop_index("ix_substitutions_substitute_id", table_name="substitutions")
    op.drop_index("ix_substitutions_absent_id", table_name="substitutions")
    op.drop_table("substitutions")
