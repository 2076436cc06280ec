"""an index on tickets.reaction_due, for the SLA breaches of the last day (/metrics)

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 20:15:00

``/metrics`` counts the reaction breaches of the last 24 hours
(``core.reports.metrics``): a breached clock's ``reaction_breached_at`` is its
``reaction_due``, so the tickets whose reaction was due in that window are the candidates,
found through this index as the resolution ones are through ``ix_tickets_resolution_due``.
It also serves the overdue filter's reaction arm. Building it reads the tickets once.
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_reaction_due", "tickets", ["reaction_due"])


def downgrade() -> None:
    op.drop_index("ix_tickets_reaction_due", "tickets")
