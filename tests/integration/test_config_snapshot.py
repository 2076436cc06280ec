"""The configuration snapshot (``core.contracts.snapshot``): routing's configuration as plain
values per process, rebuilt when a configuration change writes a new token, and on PostgreSQL
kept current by LISTEN/NOTIFY with no query at all."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.contracts import snapshot
from core.contracts.models import Contract
from core.db import unit_of_work
from core.directory.models import Client, ClientDomain
from core.mail.models import Mailbox
from core.tickets.models import Ticket
from mailgw.server import GatewayHandler
from tests.conftest import migrated_database
from tests.factories import build_world

DOMAIN = "support.example"


def token(session: Session) -> str:
    return str(session.scalar(select(snapshot.VERSION.c.token)))


def test_a_configuration_change_writes_a_new_token(session: Session) -> None:
    world = build_world(session)
    session.flush()
    before = token(session)
    session.add(Mailbox(address="nowa@support.example", contract=world.acme_contract))
    session.flush()
    after = token(session)
    assert after != before
    # A ticket is no configuration: no new token.
    ticket = session.scalars(select(Ticket)).first()
    if ticket is not None:
        ticket.subject = "Inny temat"
        session.flush()
        assert token(session) == after
    # Neither is loading configuration without changing it.
    list(session.scalars(select(Contract)))
    session.flush()
    assert token(session) == after


def test_an_update_statement_on_a_configuration_table_writes_a_new_token(
    session: Session,
) -> None:
    world = build_world(session)
    session.flush()
    before = token(session)
    session.execute(
        update(Contract)
        .where(Contract.id == world.beta_contract.id)
        .values(valid_to=date(2020, 1, 1))
    )
    assert token(session) != before


def test_the_snapshot_holds_routing_facts(session: Session) -> None:
    world = build_world(session)
    session.add(ClientDomain(domain="dzial.acme.example", client=world.beta))
    session.add(Mailbox(address="Acme@Support.Example", contract=world.acme_contract))
    session.flush()
    config = snapshot.current(session)
    assert (
        config.mailbox_contract("acme@support.example") == config.contracts[world.acme_contract.id]
    )
    # The most specific domain wins.
    assert config.client_for_domain("x.dzial.acme.example") == world.beta.id
    assert config.client_for_domain("acme.example") == world.acme.id
    assert config.client_for_domain("nobody.example") is None
    assert (
        config.default_contract(world.acme.id, date(2026, 6, 1))
        == config.contracts[world.acme_contract.id]
    )


@pytest.fixture(params=["sqlite", "postgres"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")
    with migrated_database(request.param, tmp_path) as made:
        yield made


def _world(factory: sessionmaker[Session]) -> dict[str, int]:
    with unit_of_work(factory) as session:
        world = build_world(session)
        session.flush()
        return {"acme": world.acme.id, "acme_contract": world.acme_contract.id}


def test_a_change_committed_elsewhere_is_seen_by_the_next_transaction(
    factory: sessionmaker[Session],
) -> None:
    ids = _world(factory)
    with factory() as reader:
        first = snapshot.current(reader)
        assert "later@support.example" not in first.mailboxes
        # The same transaction keeps its snapshot.
        assert snapshot.current(reader) is first
    with unit_of_work(factory) as writer:
        writer.add(Mailbox(address="later@support.example", contract_id=ids["acme_contract"]))
    with factory() as reader:
        second = snapshot.current(reader)
    assert second.token != first.token
    assert second.mailboxes["later@support.example"] == ids["acme_contract"]
    # Unchanged configuration: the next transaction gets the same values, not a rebuild.
    with factory() as reader:
        assert snapshot.current(reader) is second


def test_an_uncommitted_change_is_its_own_transactions_alone(
    factory: sessionmaker[Session],
) -> None:
    ids = _world(factory)
    with factory() as writer:
        writer.add(Mailbox(address="draft@support.example", contract_id=ids["acme_contract"]))
        # Not flushed yet: reading the snapshot flushes it, and sees it.
        assert "draft@support.example" in snapshot.current(writer).mailboxes
        writer.rollback()
    with factory() as reader:
        assert "draft@support.example" not in snapshot.current(reader).mailboxes


def test_routing_reads_no_configuration_table_once_the_snapshot_is_built(
    factory: sessionmaker[Session],
) -> None:
    """On SQLite (no watch) one read of the token per transaction, and nothing else."""
    ids = _world(factory)
    with factory() as session:
        snapshot.current(session)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with factory() as session:
            client = session.get(Client, ids["acme"])
            statements.clear()
            assert client is not None
            config = snapshot.current(session)
            assert config.default_contract(client.id, date(2026, 6, 1)) is not None
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) == (0 if snapshot.cached(engine) else 1), statements
    assert all("config_version" in s for s in statements)


def _until(check: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not seen in time"
        time.sleep(0.02)


@pytest.fixture
def watched(pg_factory: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    engine = pg_factory.kw["bind"]
    assert snapshot.watch(engine) is not None
    try:
        yield pg_factory
    finally:
        snapshot.unwatch(engine)


def test_on_postgresql_a_watch_keeps_the_snapshot_current_without_a_query(
    watched: sessionmaker[Session],
) -> None:
    ids = _world(watched)
    engine = watched.kw["bind"]
    with unit_of_work(watched) as writer:
        writer.add(Mailbox(address="notify@support.example", contract_id=ids["acme_contract"]))
    with watched() as session:
        committed = token(session)
    _until(lambda: _watch_token(engine) == committed)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    config = snapshot.watched(watched)  # built once for the watched token
    assert config is not None and config.token == committed
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with watched() as session:
            again = snapshot.current(session)
        assert snapshot.watched(watched) is again
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert again is config
    assert "notify@support.example" in again.mailboxes
    assert statements == []


def _watch_token(engine: Any) -> str | None:
    cache = snapshot._cache_for(engine)
    return cache.watch.token if cache.watch is not None else None


def test_on_postgresql_the_gateway_accepts_a_new_mailbox_as_soon_as_it_commits(
    watched: sessionmaker[Session], tmp_path: Path
) -> None:
    """No 5-second wait (mailgw.recipients.CACHE_SECONDS) where the watch runs."""
    from core.blobs import DirectoryBlobStore

    ids = _world(watched)
    handler = GatewayHandler(watched, DirectoryBlobStore(tmp_path / "blobs"), DOMAIN)
    try:
        assert not handler._is_ours("fresh@support.example")
        with unit_of_work(watched) as writer:
            writer.add(Mailbox(address="fresh@support.example", contract_id=ids["acme_contract"]))
        _until(lambda: handler._is_ours("fresh@support.example"))
    finally:
        handler.close()


def test_a_lost_watch_falls_back_to_reading_the_token(
    watched: sessionmaker[Session],
) -> None:
    ids = _world(watched)
    engine = watched.kw["bind"]
    cache = snapshot._cache_for(engine)
    assert cache.watch is not None
    cache.watch._token = None  # as while its connection is down
    assert snapshot.watched(watched) is None
    with unit_of_work(watched) as writer:
        writer.add(Mailbox(address="down@support.example", contract_id=ids["acme_contract"]))
    with watched() as session:
        assert "down@support.example" in snapshot.current(session).mailboxes
