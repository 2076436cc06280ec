"""custom roles, and the audit log's object of a configuration change

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 15:00:00

``roles``: custom roles (a base role plus granted and denied actions); ``users.custom_role_id``
names a user's. ``audit_log.object_type``/``object_key``: which configured object an entry
changed, so its history can be listed per object.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "roles",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("base", sa.String(16), nullable=False),
        sa.Column("grant", sa.JSON(), nullable=False),
        sa.Column("deny", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("custom_role_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_users_custom_role_id_roles",
            "roles",
            ["custom_role_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("object_type", sa.String(32), nullable=True))
        batch.add_column(sa.Column("object_key", sa.String(255), nullable=True))
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_key", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_object", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("object_key")
        batch.drop_column("object_type")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("fk_users_custom_role_id_roles", type_="foreignkey")
        batch.drop_column("custom_role_id")
    op.drop_table("roles")
