"""The ticket tallies (migration 0025, ``core.tickets.tallies``) count what ``count(*)`` counts.

PostgreSQL's triggers keep them; a list's total is read from them whenever its conditions use
only the columns they keep. Checked here: after every kind of change (new tickets, a status,
an assignee, a move to another contract, a bulk UPDATE, a DELETE, a rolled-back savepoint,
TRUNCATE) the tallies summed per combination equal the tickets grouped the same way, before
and after compacting; each user's list totals equal ``count(*)`` under the same conditions;
the conditions the tallies cannot answer fall back; compacting keeps the rows of a transaction
still open.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from core.blobs import DirectoryBlobStore
from core.clock import utcnow
from core.contracts.models import Contract, Status
from core.tickets import tallies
from core.tickets.models import Ticket, ticket_tallies
from core.tickets.queries import TicketFilter, _conditions, count_tickets, search_tickets
from tests.e2e.conftest import seed_world

KEYS = [getattr(Ticket, k) for k in tallies.KEYS]


@pytest.fixture(params=["postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """PostgreSQL only: its triggers keep the tallies (no skip on SQLite: CI counts none)."""
    return str(request.param)


@pytest.fixture
def world(session: Session, tmp_path: Path) -> Iterator[Any]:
    yield seed_world(session, DirectoryBlobStore(tmp_path / "blobs"))
    session.flush()


def by_combination_tickets(session: Session) -> dict[tuple[Any, ...], int]:
    session.flush()
    rows = session.execute(select(*KEYS, func.count()).group_by(*KEYS)).all()
    return {tuple(r[:-1]): int(r[-1]) for r in rows}


def by_combination_tallies(session: Session) -> dict[tuple[Any, ...], int]:
    session.flush()
    cols = [ticket_tallies.c[k] for k in tallies.KEYS]
    rows = session.execute(
        select(*cols, func.sum(ticket_tallies.c.n))
        .group_by(*cols)
        .having(func.sum(ticket_tallies.c.n) != 0)
    ).all()
    return {tuple(r[:-1]): int(r[-1]) for r in rows}


def assert_in_step(session: Session) -> None:
    assert by_combination_tallies(session) == by_combination_tickets(session)


def test_the_tallies_follow_every_kind_of_change(world: Any, session: Session) -> None:
    assert_in_step(session)  # the seed's tickets, inserted through the ORM
    tickets = session.scalars(select(Ticket).order_by(Ticket.number)).all()
    assert len(tickets) >= 5
    first, second, third = tickets[:3]

    # A status (and its category), an assignee, a subcontractor.
    progress = session.scalars(
        select(Status).where(Status.name == "In progress", Status.contract_id == first.contract_id)
    ).first()
    assert progress is not None
    first.status, first.status_category = progress, progress.category
    first.assignee_id = world.users["technician2"].id
    second.subcontractor_id = None
    assert_in_step(session)

    # Moved to another client's contract.
    beta = session.scalars(select(Contract).where(Contract.code == "BETA-STD")).one()
    third.contract_id, third.client_id = beta.id, beta.client_id
    assert_in_step(session)

    # An update that changes none of the tallied columns adds no row.
    before = session.scalar(select(func.count()).select_from(ticket_tallies))
    first.subject = "Zmieniony temat"
    now = utcnow()
    first.updated_at = now + timedelta(seconds=1)
    session.flush()
    assert session.scalar(select(func.count()).select_from(ticket_tallies)) == before

    # A bulk UPDATE statement and a DELETE statement.
    session.execute(update(Ticket).values(assignee_id=world.users["technician"].id))
    assert_in_step(session)
    extra = Ticket(
        number=99_999,
        subject="Do usunięcia",
        client_id=first.client_id,
        contract_id=first.contract_id,
        status_id=first.status_id,
        status_category=first.status_category,
        requester_id=first.requester_id,
        custom_fields={},
        source="web",
        created_at=now,
        updated_at=now,
        sla_paused=False,
        ever_breached=False,
    )
    session.add(extra)
    assert_in_step(session)
    session.execute(delete(Ticket).where(Ticket.id == extra.id))
    session.expunge(extra)
    assert_in_step(session)

    # A savepoint rolled back takes its rows with it.
    with session.begin_nested() as nested:
        session.execute(update(Ticket).values(assignee_id=None))
        nested.rollback()
    assert_in_step(session)

    # Compacting keeps the sums and leaves one row per combination.
    rows = session.scalar(select(func.count()).select_from(ticket_tallies))
    assert tallies.compact(session) == rows
    assert_in_step(session)
    assert session.scalar(select(func.count()).select_from(ticket_tallies)) == len(
        by_combination_tickets(session)
    )

    # TRUNCATE empties them.
    session.execute(text("TRUNCATE tickets CASCADE"))
    assert session.scalar(select(func.coalesce(func.sum(ticket_tallies.c.n), 0))) == 0


FILTERS = [
    TicketFilter(state="all"),
    TicketFilter(state="open"),
    TicketFilter(state="closed"),
    TicketFilter(state="all", status="paused"),
    TicketFilter(state="all", status="In progress"),
    TicketFilter(state="all", contract="ACME-KEY"),
    TicketFilter(state="all", client="Beta"),
    TicketFilter(state="open", key=True),
    TicketFilter(state="all", key=False),
    TicketFilter(state="all", assignee="none"),
    TicketFilter(state="all", assignee="me"),
    TicketFilter(state="all", ticket_type="inspection"),
    TicketFilter(state="all", subcontractor="FixIt"),
]


@pytest.mark.parametrize(
    "role", ["admin", "coordinator", "technician", "technician2", "subcontractor", "manager"]
)
def test_each_users_totals_come_from_the_tallies_and_match_count(
    world: Any, session: Session, role: str
) -> None:
    user = world.users[role]
    now = utcnow()
    for f in FILTERS:
        conds = _conditions(f, user, now)
        tallied = tallies.count(session, conds)
        counted = session.scalar(select(func.count()).select_from(Ticket).where(*conds))
        assert tallied == counted, (role, f)
        assert search_tickets(session, user, f, now).total == counted
        assert count_tickets(session, user, f, now) == (counted, False)


def test_what_the_tallies_do_not_keep_is_counted(world: Any, session: Session) -> None:
    now = utcnow()
    coordinator, client = world.users["coordinator"], world.users["client"]
    # Overdue reads the deadlines; a search the text; a requester's scope the requester.
    for user, f in [
        (coordinator, TicketFilter(state="all", overdue=True)),
        (coordinator, TicketFilter(state="all", q="drukarka")),
        (client, TicketFilter(state="all")),
    ]:
        conds = _conditions(f, user, now)
        assert tallies.on_tallies(conds) is None, f
        counted = session.scalar(select(func.count()).select_from(Ticket).where(*conds))
        assert search_tickets(session, user, f, now).total == counted


def test_compacting_keeps_the_rows_of_a_transaction_still_open(
    pg_factory: sessionmaker[Session],
) -> None:
    row = {k: None for k in tallies.KEYS} | {"status_category": "new"}
    with pg_factory() as setup, setup.begin():
        setup.execute(ticket_tallies.insert(), [{**row, "n": 1}, {**row, "n": 1}])
    writer = pg_factory()
    writer.begin()
    writer.execute(ticket_tallies.insert(), [{**row, "n": 1}])  # not committed yet
    with pg_factory() as compactor, compactor.begin():
        assert tallies.compact(compactor) == 2
    writer.commit()
    writer.close()
    with pg_factory() as check:
        sums = check.execute(select(ticket_tallies.c.n).order_by(ticket_tallies.c.n)).scalars()
        assert list(sums) == [1, 2]
        assert check.scalar(select(func.sum(ticket_tallies.c.n))) == 3


def test_recount_mends_tallies_that_drifted(world: Any, session: Session) -> None:
    """Tickets changed with the triggers off (a restore with --disable-triggers) leave the
    tallies wrong; ``recount`` counts them again and says how many combinations were off."""
    tickets = session.scalar(select(func.count()).select_from(Ticket))
    assert tallies.recount(session) == (tickets, 0)
    session.execute(text("SET LOCAL session_replication_role = replica"))  # triggers off
    session.execute(update(Ticket).values(assignee_id=None))
    session.execute(text("SET LOCAL session_replication_role = origin"))
    assert by_combination_tallies(session) != by_combination_tickets(session)
    total, wrong = tallies.recount(session)
    assert total == tickets and wrong > 0
    assert_in_step(session)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_pulpit_db_recount(
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os

    from pulpit.cli import main
    from tests.conftest import migrated_database

    with migrated_database(backend, tmp_path) as factory:
        for name in list(os.environ):
            if name.startswith("PULPIT_") and not name.startswith(
                ("PULPIT_TEST_", "PULPIT_REQUIRE_")
            ):
                monkeypatch.delenv(name)
        bind = factory.kw["bind"]
        monkeypatch.setenv("PULPIT_DATABASE_URL", bind.url.render_as_string(hide_password=False))
        monkeypatch.setenv("PULPIT_DATA_DIR", str(tmp_path / "var"))
        capsys.readouterr()
        assert main(["db", "recount"]) == 0
        out = capsys.readouterr().out
        if backend == "sqlite":
            assert out.startswith("no ticket tallies on this database")
        else:
            assert out == "0 tickets counted into the tallies; they were right\n"
