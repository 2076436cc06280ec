"""ticket_tallies: ticket counts kept by PostgreSQL triggers, for the list's totals at scale

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-01 06:00:00

Counting every ticket for a list's "1-50 of 1,000,009" read the whole table: 45-100 ms at a
million tickets. ``ticket_tallies`` holds how many tickets have each combination of the
columns the list's filters and scopes use (client, contract, type, status, its category,
assignee, subcontractor), as deltas: on PostgreSQL an INSERT or DELETE statement on
``tickets`` appends one row per combination it touched (statement triggers with transition
tables, so a COPY or a batch of tickets costs one INSERT), an UPDATE that changes one of those
columns appends -1 for the old combination and +1 for the new (a row trigger whose WHEN skips
every other update), and TRUNCATE empties it. Appending never waits on another transaction;
``core.tickets.tallies.compact`` (the scheduler, every minute) folds the rows into one per
combination. The rows already there are counted here. SQLite gets the table and no triggers:
its lists count with ``count(*)``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

KEYS = (
    "client_id",
    "contract_id",
    "ticket_type_id",
    "status_id",
    "status_category",
    "assignee_id",
    "subcontractor_id",
)
_COLS = ", ".join(KEYS)


def upgrade() -> None:
    op.create_table(
        "ticket_tallies",
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("contract_id", sa.Integer(), nullable=True),
        sa.Column("ticket_type_id", sa.Integer(), nullable=True),
        sa.Column("status_id", sa.Integer(), nullable=True),
        sa.Column("status_category", sa.String(16), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("subcontractor_id", sa.Integer(), nullable=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    old = ", ".join(f"OLD.{k}" for k in KEYS)
    new = ", ".join(f"NEW.{k}" for k in KEYS)
    for statement in (
        f"""
        CREATE FUNCTION pulpit_tally_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO ticket_tallies ({_COLS}, n)
            SELECT {_COLS}, count(*) FROM tally_new GROUP BY {_COLS};
            RETURN NULL;
        END $$
        """,  # noqa: S608
        f"""
        CREATE FUNCTION pulpit_tally_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO ticket_tallies ({_COLS}, n)
            SELECT {_COLS}, -count(*) FROM tally_old GROUP BY {_COLS};
            RETURN NULL;
        END $$
        """,  # noqa: S608
        f"""
        CREATE FUNCTION pulpit_tally_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO ticket_tallies ({_COLS}, n) VALUES ({old}, -1), ({new}, 1);
            RETURN NULL;
        END $$
        """,  # noqa: S608
        """
        CREATE FUNCTION pulpit_tally_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM ticket_tallies;
            RETURN NULL;
        END $$
        """,
        """
        CREATE TRIGGER tickets_tally_inserted AFTER INSERT ON tickets
        REFERENCING NEW TABLE AS tally_new
        FOR EACH STATEMENT EXECUTE FUNCTION pulpit_tally_inserted()
        """,
        """
        CREATE TRIGGER tickets_tally_deleted AFTER DELETE ON tickets
        REFERENCING OLD TABLE AS tally_old
        FOR EACH STATEMENT EXECUTE FUNCTION pulpit_tally_deleted()
        """,
        f"""
        CREATE TRIGGER tickets_tally_updated AFTER UPDATE OF {_COLS} ON tickets
        FOR EACH ROW WHEN (({old}) IS DISTINCT FROM ({new}))
        EXECUTE FUNCTION pulpit_tally_updated()
        """,  # noqa: S608
        """
        CREATE TRIGGER tickets_tally_truncated AFTER TRUNCATE ON tickets
        FOR EACH STATEMENT EXECUTE FUNCTION pulpit_tally_truncated()
        """,
        f"""
        INSERT INTO ticket_tallies ({_COLS}, n)
        SELECT {_COLS}, count(*) FROM tickets GROUP BY {_COLS}
        """,  # noqa: S608
    ):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger in ("inserted", "deleted", "updated", "truncated"):
            op.execute(f"DROP TRIGGER IF EXISTS tickets_tally_{trigger} ON tickets")
            op.execute(f"DROP FUNCTION IF EXISTS pulpit_tally_{trigger}()")
    op.drop_table("ticket_tallies")
