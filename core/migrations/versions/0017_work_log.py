"""the work log as rows (entries, work types, timers), contract billing settings, the
SLA figures the reports read, and files attached to outgoing mail

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 17:00:00

``work_log_entries``: each ``worklog`` event becomes an entry (its minutes, author and note;
billable, as the API's default was); ``tickets.worked_minutes``/``billable_minutes`` are
their sums. ``tickets.reaction_minutes``/``resolution_minutes``/``paused_minutes`` are
filled by the SLA recompute: every ticket with a contract is marked due for an SLA check, so
the scheduler derives them after the upgrade (a few hundred tickets per tick).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from core.orm import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_types",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "contract_id",
            sa.Integer(),
            sa.ForeignKey("contracts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("rate", sa.Integer(), nullable=True),
        sa.Column("billable", sa.Boolean(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.UniqueConstraint("contract_id", "name"),
    )
    op.create_table(
        "work_log_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("billable", sa.Boolean(), nullable=False),
        sa.Column(
            "work_type_id",
            sa.Integer(),
            sa.ForeignKey("work_types.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("rate", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column(
            "event_id",
            sa.Integer(),
            sa.ForeignKey("ticket_events.id", ondelete="SET NULL"),
            nullable=True,
        ),
    )
    op.create_index("ix_work_log_entries_ticket_id", "work_log_entries", ["ticket_id"])
    op.create_index("ix_work_log_entries_started_at", "work_log_entries", ["started_at"])
    op.create_index("ix_work_log_entries_user_id", "work_log_entries", ["user_id"])
    op.create_table(
        "work_timers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("started_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("outbound_mail") as batch:
        batch.add_column(sa.Column("attachments", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("contracts") as batch:
        batch.add_column(
            sa.Column("worklog_billable", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("hourly_rate", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("currency", sa.String(3), nullable=False, server_default="PLN"))
        batch.add_column(
            sa.Column(
                "worklog_visible_to_client",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column("worked_minutes", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("billable_minutes", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("reaction_minutes", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("resolution_minutes", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("paused_minutes", sa.Integer(), nullable=True))
        batch.create_index("ix_tickets_created_at", ["created_at"])
        batch.create_index("ix_tickets_resolved_at", ["resolved_at"])

    # Each worklog event becomes an entry: the work ended when it was logged.
    conn = op.get_bind()
    events = sa.table(
        "ticket_events",
        sa.column("id", sa.Integer),
        sa.column("ticket_id", sa.Integer),
        sa.column("type", sa.String),
        sa.column("author_id", sa.Integer),
        sa.column("at", UTCDateTime()),
        sa.column("body_text", sa.Text),
        sa.column("data", sa.JSON),
    )
    entries = sa.table(
        "work_log_entries",
        sa.column("ticket_id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("started_at", UTCDateTime()),
        sa.column("minutes", sa.Integer),
        sa.column("description", sa.Text),
        sa.column("billable", sa.Boolean),
        sa.column("created_at", UTCDateTime()),
        sa.column("event_id", sa.Integer),
    )
    rows = conn.execute(
        sa.select(
            events.c.id,
            events.c.ticket_id,
            events.c.author_id,
            events.c.at,
            events.c.body_text,
            events.c.data,
        ).where(events.c.type == "worklog", events.c.author_id.is_not(None))
    ).all()
    batch_rows = []
    for row in rows:
        minutes = int((row.data or {}).get("minutes") or 0)
        if minutes <= 0:
            continue
        batch_rows.append(
            {
                "ticket_id": row.ticket_id,
                "user_id": row.author_id,
                "started_at": row.at - timedelta(minutes=minutes),
                "minutes": minutes,
                "description": row.body_text,
                "billable": True,
                "created_at": row.at,
                "event_id": row.id,
            }
        )
    if batch_rows:
        op.bulk_insert(entries, batch_rows)
    tickets = sa.table(
        "tickets",
        sa.column("id", sa.Integer),
        sa.column("contract_id", sa.Integer),
        sa.column("worked_minutes", sa.Integer),
        sa.column("billable_minutes", sa.Integer),
        sa.column("sla_next_check", UTCDateTime()),
    )
    total = (
        sa.select(sa.func.coalesce(sa.func.sum(entries.c.minutes), 0))
        .where(entries.c.ticket_id == tickets.c.id)
        .scalar_subquery()
    )
    conn.execute(sa.update(tickets).values(worked_minutes=total, billable_minutes=total))
    conn.execute(
        sa.update(tickets)
        .where(tickets.c.contract_id.is_not(None))
        .values(sla_next_check=datetime.now(UTC))
    )


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_resolved_at")
        batch.drop_index("ix_tickets_created_at")
        for name in (
            "paused_minutes",
            "resolution_minutes",
            "reaction_minutes",
            "billable_minutes",
            "worked_minutes",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("contracts") as batch:
        for name in ("worklog_visible_to_client", "currency", "hourly_rate", "worklog_billable"):
            batch.drop_column(name)
    op.drop_column("outbound_mail", "attachments")
    op.drop_table("work_timers")
    op.drop_index("ix_work_log_entries_user_id", "work_log_entries")
    op.drop_index("ix_work_log_entries_started_at", "work_log_entries")
    op.drop_index("ix_work_log_entries_ticket_id", "work_log_entries")
    op.drop_table("work_log_entries")
    op.drop_table("work_types")
