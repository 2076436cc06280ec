"""the console for an 8-hour day: technicians serving contracts, merged tickets, saved
views, canned replies and macros

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 19:10:00

``contract_technicians``: who serves a contract (their queue is its unassigned tickets).
``tickets.merged_into_id``: the ticket a merged one was joined to. ``saved_views``,
``canned_replies`` and ``macros`` belong to a user or, without one, to the desk, shared with
the roles they name. Nothing existing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.orm import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def _owned(name: str, *columns: sa.Column) -> None:  # type: ignore[type-arg]
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "owner_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("roles", sa.JSON(), nullable=False),
        *columns,
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index(f"ix_{name}_owner_id", name, ["owner_id"])


def upgrade() -> None:
    op.create_table(
        "contract_technicians",
        sa.Column(
            "contract_id",
            sa.Integer(),
            sa.ForeignKey("contracts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
    )
    # Not a batch on SQLite: rebuilding ``tickets`` there would drop the old table, and with
    # foreign keys on that cascades into every table pointing at it. SQLite adds a column
    # with a reference in place (NULL default).
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE tickets ADD COLUMN merged_into_id INTEGER"
            " REFERENCES tickets (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("tickets", sa.Column("merged_into_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_tickets_merged_into_id",
            "tickets",
            "tickets",
            ["merged_into_id"],
            ["id"],
            ondelete="SET NULL",
        )
    _owned(
        "saved_views",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    _owned(
        "canned_replies",
        sa.Column("shortcut", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    _owned(
        "macros",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("reply_public", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(100), nullable=True),
        sa.Column("assignee", sa.String(255), nullable=True),
        sa.Column("custom_fields", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    for name in ("macros", "canned_replies", "saved_views"):
        op.drop_index(f"ix_{name}_owner_id", name)
        op.drop_table(name)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE tickets DROP COLUMN merged_into_id")  # SQLite 3.35+
    else:
        op.drop_constraint("fk_tickets_merged_into_id", "tickets", type_="foreignkey")
        op.drop_column("tickets", "merged_into_id")
    op.drop_table("contract_technicians")
