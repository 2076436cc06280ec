"""users.totp_last_step: the time step of the last accepted authenticator code

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 20:00:00

RFC 6238 section 5.2: a code that was accepted once must not be accepted again, or a code
seen over a shoulder or in a proxy log logs in a second time within its 90 seconds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("totp_last_step")
