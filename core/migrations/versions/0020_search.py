"""full-text search: a search document per ticket

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 20:00:00

``ticket_search`` holds each ticket's search document (core.tickets.search). PostgreSQL adds
two generated ``tsvector`` columns with GIN indexes over ``pulpit_unaccent()``, an IMMUTABLE
wrapper of the ``unaccent`` extension (created here; it is trusted since PostgreSQL 13). Where
the extension cannot be created (not installed, or no right to), ``pulpit_unaccent`` folds the
Latin letters with diacritics with ``translate()`` instead, and a warning says so: searching
still ignores Polish diacritics, ``unaccent`` covers more alphabets. SQLite gets an FTS5 table
(external content, kept by triggers) with ``remove_diacritics 2``. Existing tickets' documents
are built here, in batches of 2,000.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

PARTS = ("subject", "meta_public", "meta_private", "body_public", "body_private")

# Latin letters with diacritics and what they fold to, for an instance without ``unaccent``.
_FROM = "ąćęłńóśźżĄĆĘŁŃÓŚŹŻáàâäãåčďéèêëěíìîïľĺňñôöõřŕšťúùûüůýÿžÁÀÂÄÃÅČĎÉÈÊËĚÍÌÎÏĽĹŇÑÔÖÕŘŔŠŤÚÙÛÜŮÝŸŽ"
_TO = "acelnoszzACELNOSZZaaaaaacdeeeeeiiiillnnooorrstuuuuuyyzAAAAAACDEEEEEIIIILLNNOOORRSTUUUUUYYZ"
assert len(_FROM) == len(_TO)


def _tsv(*parts: tuple[str, str]) -> str:
    return " || ".join(
        f"setweight(to_tsvector('simple'::regconfig, pulpit_unaccent(coalesce({column}, ''))), "
        f"'{weight}')"
        for column, weight in parts
    )


def _postgres() -> None:
    bind = op.get_bind()
    have_unaccent = False
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public")
        have_unaccent = True
    except sa.exc.DBAPIError as exc:
        log.warning(
            "the unaccent extension could not be created (%s); search folds Latin letters "
            "with diacritics by translate() instead. Install postgresql-contrib and run "
            "'CREATE EXTENSION unaccent' as a superuser, then 'pulpit db upgrade' again after "
            "downgrading to 0019, for the full unaccent rules.",
            str(exc.orig).strip().splitlines()[0] if exc.orig else exc,
        )
    if have_unaccent:
        body = "SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1))"
    else:
        body = f"SELECT lower(translate($1, '{_FROM}', '{_TO}'))"
    bind.exec_driver_sql(
        "CREATE OR REPLACE FUNCTION pulpit_unaccent(text) RETURNS text "
        f"LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $f${body}$f$"
    )
    public = _tsv(("subject", "A"), ("meta_public", "B"), ("body_public", "D"))
    everything = _tsv(
        ("subject", "A"),
        ("meta_public", "B"),
        ("meta_private", "B"),
        ("body_public", "D"),
        ("body_private", "D"),
    )
    bind.exec_driver_sql(
        f"ALTER TABLE ticket_search ADD COLUMN tsv_public tsvector "
        f"GENERATED ALWAYS AS ({public}) STORED"
    )
    bind.exec_driver_sql(
        f"ALTER TABLE ticket_search ADD COLUMN tsv_all tsvector "
        f"GENERATED ALWAYS AS ({everything}) STORED"
    )
    op.create_index(
        "ix_ticket_search_tsv_public", "ticket_search", ["tsv_public"], postgresql_using="gin"
    )
    op.create_index(
        "ix_ticket_search_tsv_all", "ticket_search", ["tsv_all"], postgresql_using="gin"
    )


def _sqlite() -> None:
    columns = ", ".join(PARTS)
    new = ", ".join(f"new.{c}" for c in PARTS)
    old = ", ".join(f"old.{c}" for c in PARTS)
    op.execute(
        f"CREATE VIRTUAL TABLE ticket_search_fts USING fts5({columns}, content='ticket_search', "
        "content_rowid='ticket_id', tokenize='unicode61 remove_diacritics 2')"
    )
    op.execute(
        "CREATE TRIGGER ticket_search_ai AFTER INSERT ON ticket_search BEGIN "  # noqa: S608
        f"INSERT INTO ticket_search_fts(rowid, {columns}) VALUES (new.ticket_id, {new}); END"
    )
    op.execute(
        "CREATE TRIGGER ticket_search_ad AFTER DELETE ON ticket_search BEGIN "  # noqa: S608
        f"INSERT INTO ticket_search_fts(ticket_search_fts, rowid, {columns}) "
        f"VALUES ('delete', old.ticket_id, {old}); END"
    )
    op.execute(
        "CREATE TRIGGER ticket_search_au AFTER UPDATE ON ticket_search BEGIN "  # noqa: S608
        f"INSERT INTO ticket_search_fts(ticket_search_fts, rowid, {columns}) "
        f"VALUES ('delete', old.ticket_id, {old}); "
        f"INSERT INTO ticket_search_fts(rowid, {columns}) VALUES (new.ticket_id, {new}); END"
    )


def upgrade() -> None:
    op.create_table(
        "ticket_search",
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        *(sa.Column(name, sa.Text(), nullable=False) for name in PARTS),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres()
    else:
        _sqlite()
    # Existing tickets: built by the same code that keeps them current.
    from core.tickets.search import rebuild_all

    session = Session(bind=op.get_bind())
    written = rebuild_all(session)
    session.flush()
    session.close()
    if written:
        log.info("search documents built for %d tickets", written)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_table("ticket_search")
        op.execute("DROP FUNCTION IF EXISTS pulpit_unaccent(text)")
    else:
        for trigger in ("ticket_search_ai", "ticket_search_ad", "ticket_search_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS ticket_search_fts")
        op.drop_table("ticket_search")
