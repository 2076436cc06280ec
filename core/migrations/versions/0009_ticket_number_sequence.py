"""PostgreSQL: ticket numbers from a sequence instead of the counters row

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 17:00:00

The ``counters`` row was bumped with an UPDATE whose row lock is held until the opening
transaction commits, so on PostgreSQL every ticket creation waited for the one before it (seen
as ``UPDATE waiting`` under the ingest benchmark). A sequence hands out numbers without a lock;
the price is a gap when a transaction that took a number rolls back, as in Jira's keys.
SQLite keeps the counter: its writers are serialised anyway.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SEQUENCE ticket_number_seq")
    # nextval() answers one more than this: the counter's last number or the highest ticket.
    op.execute(
        "SELECT setval('ticket_number_seq', GREATEST("
        "COALESCE((SELECT value FROM counters WHERE name = 'ticket'), 1000), "
        "COALESCE((SELECT MAX(number) FROM tickets), 0)))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "UPDATE counters SET value = GREATEST(value, "
        "COALESCE((SELECT MAX(number) FROM tickets), 0)) WHERE name = 'ticket'"
    )
    op.execute("DROP SEQUENCE ticket_number_seq")
