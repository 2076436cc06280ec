"""The Alembic migrations and the models describe the same schema, on SQLite and PostgreSQL.

Tests build their schema with the migrations, never with ``create_all``, so a column added to
a model without a migration would pass every other test on a freshly migrated database and
fail in production; this catches it. Also: every migration downgrades and upgrades again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

from core.db import alembic_config, make_engine, upgrade
from core.tables import Base
from tests.conftest import drop_postgres_database, fresh_postgres_database, service_url

# SQLite's reflection cannot read expression indexes (ix_outbound_mail_recipient_created), so
# Alembic skips comparing them there; PostgreSQL compares them.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index"),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based"),
]


@pytest.fixture
def fresh_engine(backend: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An empty database of its own (the downgrade must not touch the shared one)."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield engine
        engine.dispose()
        return
    url, admin = fresh_postgres_database(service_url("postgres"))
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_postgres_database(admin, url)


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": False}
        )
        return list(compare_metadata(context, Base.metadata))


def test_the_migrated_schema_is_the_models_schema(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    assert _differences(fresh_engine) == []


def test_every_migration_downgrades_and_upgrades_again(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    cfg = alembic_config(fresh_engine.url.render_as_string(hide_password=False))
    with fresh_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    with fresh_engine.connect() as conn:
        tables = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'table'")
            if fresh_engine.dialect.name == "sqlite"
            else text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        assert set(tables) <= {"alembic_version"}
    upgrade(fresh_engine)
    assert _differences(fresh_engine) == []


def test_existing_custom_fields_keep_their_order_ten_apart(fresh_engine: Engine) -> None:
    """0015 numbers the fields that exist by name, as they were shown, within each list."""
    cfg = alembic_config(fresh_engine.url.render_as_string(hide_password=False))
    with fresh_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0014")
        for name in ("serial", "colour", "model"):
            conn.execute(
                text("INSERT INTO custom_fields (name, type, options, required, visible_to_client)"
                     " VALUES (:n, 'text', '[]', false, true)"),
                {"n": name},
            )  # fmt: skip
    upgrade(fresh_engine)
    with fresh_engine.connect() as conn:
        rows = conn.execute(text("SELECT name, position FROM custom_fields ORDER BY position"))
        assert [tuple(r) for r in rows] == [("colour", 0), ("model", 10), ("serial", 20)]
