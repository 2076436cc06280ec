"""partial indexes on the open tickets, for the lists at a million tickets

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30 20:30:00

The lists show the open tickets (a few percent of them after a few years), so these indexes
hold only those (``status_category <> 'closed'``):

- ``ix_tickets_open_number`` (number, including the columns the lists filter by on
  PostgreSQL): the default list, newest first, walks it backwards and stops at the page; the
  page's numbers (``core.tickets.queries``' deferred join) and the counts, overdue and a
  technician's scope included, are index-only scans of it.
- ``ix_tickets_open_client`` (client_id, number): a client manager's list and count.
- ``ix_tickets_open_deadline`` (PostgreSQL only): the nearest-deadline sort (``core.tickets.queries.deadline_order``)
  on the very expressions of its ORDER BY, so PostgreSQL reads the first page off it instead of
  sorting every open ticket (``core.tickets.models.nearest_deadline`` / ``clock_group``).

bench/list_tickets.py --million measures them (README, "A million tickets"). Building them reads
the tickets once (a few seconds per million rows) and blocks writes to the tickets meanwhile.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

OPEN = sa.text("status_category <> 'closed'")
# The columns the lists filter the open tickets by (PostgreSQL: included in the index).
COVERED = [
    "status_category",
    "client_id",
    "contract_id",
    "assignee_id",
    "requester_id",
    "subcontractor_id",
    "first_response_at",
    "reaction_due",
    "resolution_due",
]
# core.tickets.models.nearest_deadline() and clock_group(nearest_deadline(), resolved_at),
# as SQLAlchemy renders them: PostgreSQL matches an index expression by its parsed form.
DUE = (
    "CASE WHEN (first_response_at IS NULL AND reaction_due IS NOT NULL) THEN coalesce(CASE WHEN "
    "(resolution_due < reaction_due) THEN resolution_due ELSE reaction_due END, reaction_due) "
    "ELSE resolution_due END"
)
RUNNING = f"status_category != 'closed' AND {DUE} IS NOT NULL AND resolved_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_tickets_open_number",
        "tickets",
        ["number"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
        postgresql_include=COVERED,
    )
    op.create_index(
        "ix_tickets_open_client",
        "tickets",
        ["client_id", "number"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite cannot match an expression index to a query with bound parameters
    group = (
        f"CASE WHEN ({RUNNING} AND sla_paused IS false) THEN 0 WHEN ({RUNNING}) THEN 1 ELSE 2 END"
    )
    op.create_index(
        "ix_tickets_open_deadline",
        "tickets",
        [sa.text(f"({group})"), sa.text(f"({DUE})"), sa.text("number DESC")],
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tickets_open_deadline", "tickets")
    for name in ("ix_tickets_open_client", "ix_tickets_open_number"):
        op.drop_index(name, "tickets")
