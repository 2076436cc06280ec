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
from sqlalchemy import Connection, Engine, text

from core.db import alembic_config, make_engine, upgrade
from core.tables import Base
from core.tickets.search import schema_extra
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
        # The search's generated columns, GIN indexes and FTS5 tables live beside its model.
        found = [d for d in compare_metadata(context, Base.metadata) if not schema_extra(d)]
        if engine.dialect.name == "sqlite":
            found = [d for d in found if not _column_reference(conn, d)]
    return found


# Columns SQLite got by ALTER TABLE ADD COLUMN ... REFERENCES (0019: rebuilding ``tickets``
# would cascade into every table pointing at it). SQLAlchemy reflects such a column-level
# reference without its ON DELETE, so Alembic sees it removed and added again; PRAGMA
# foreign_key_list says what SQLite enforces.
COLUMN_REFERENCES = {("tickets", "merged_into_id"): "SET NULL"}


def _column_reference(conn: Connection, difference: object) -> bool:
    if not isinstance(difference, tuple) or difference[0] not in ("add_fk", "remove_fk"):
        return False
    constraint = difference[1]
    table = constraint.parent.name if constraint.parent is not None else constraint.table.name
    columns = [c.name for c in constraint.columns]
    if len(columns) != 1 or (table, columns[0]) not in COLUMN_REFERENCES:
        return False
    rows = conn.exec_driver_sql(f"PRAGMA foreign_key_list({table})").mappings()
    enforced = {r["from"]: r["on_delete"] for r in rows}
    assert enforced.get(columns[0]) == COLUMN_REFERENCES[(table, columns[0])]
    return True


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


def test_existing_work_logs_become_entries(fresh_engine: Engine) -> None:
    """0017 turns each worklog event into an entry (ending when it was logged, billable as the
    API's default was) and sums them on the ticket."""
    cfg = alembic_config(fresh_engine.url.render_as_string(hide_password=False))
    with fresh_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0016")
        conn.execute(
            text("INSERT INTO users (id, email, role, language, active, manager, created_at)"
                 " VALUES (1, 'tech@desk.example', 'technician', 'pl', true, false,"
                 " '2026-01-01 00:00:00')")
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO statuses (id, name, category, position, visible_to_client,"
                 " client_can_set, visible_to_subcontractor)"
                 " VALUES (1, 'Nowe', 'new', 0, true, false, true)")
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO tickets (id, number, subject, status_id, status_category,"
                 " requester_id, custom_fields, source, created_at, updated_at, sla_paused,"
                 " ever_breached, checklist_done, checklist_total)"
                 " VALUES (1, 1001, 'Drukarka', 1, 'new', 1, '{}', 'web',"
                 " '2026-03-02 08:00:00', '2026-03-02 08:00:00', false, false, 0, 0)")
        )  # fmt: skip
        for event_id, minutes in ((1, 45), (2, 30)):
            conn.execute(
                text("INSERT INTO ticket_events (id, ticket_id, type, at, author_id, public,"
                     " body_text, data) VALUES (:id, 1, 'worklog', '2026-03-02 10:00:00', 1,"
                     " false, 'wymiana bębna', :data)"),
                {"id": event_id, "data": f'{{"minutes": {minutes}}}'},
            )  # fmt: skip
    upgrade(fresh_engine)
    with fresh_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT minutes, description, billable, event_id, user_id"
                 " FROM work_log_entries ORDER BY event_id")
        ).all()  # fmt: skip
        assert [tuple(r) for r in rows] == [
            (45, "wymiana bębna", True, 1, 1),
            (30, "wymiana bębna", True, 2, 1),
        ]
        totals = conn.execute(text("SELECT worked_minutes, billable_minutes FROM tickets")).one()
        assert tuple(totals) == (75, 75)
