"""blob_chunks: attachment and raw-mail content in the database, for several hosts

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-30 23:00:00

With ``PULPIT_BLOB_URL=database:`` (PostgreSQL only) the content the ``blobs`` rows describe
is kept here instead of in files under the data directory, so every host that shares the
database sees every attachment (``core.blobs.DatabaseBlobStore``; docs/settings.md, "Where
attachments are kept"). Each content is split into chunks of about 1 MiB (``seq`` 0, 1, ...),
so no single value and no single read grows with the attachment. No foreign key to ``blobs``: the gateway stores the
content before the row that refers to it exists.

The table is created on SQLite too, although nothing uses it there: one schema on both
backends keeps the models and the migrated schema the same (tests/integration/test_migrations.py
compares them) and costs an empty table. Nothing is copied here: ``pulpit blobs migrate --to
database`` copies the existing files, resumably, while the desk runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_chunks",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "seq"),
    )


def downgrade() -> None:
    op.drop_table("blob_chunks")
