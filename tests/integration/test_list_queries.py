"""The console's ticket list costs a constant number of SQL statements per page (issue 12):
field columns, field filters, checklist progress and the "missing data" badge come with the
page, not one query per row. Counted with a ``before_cursor_execute`` listener around one GET
of the list, on SQLite and PostgreSQL, with 5 and with 50 tickets on the page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import DirectoryBlobStore
from core.clock import utcnow
from core.contracts.models import Contract
from core.directory.models import Product, Subcontractor, User
from core.tickets import services as svc
from tests.conftest import migrated_database
from tests.e2e.conftest import console_client, seed_world

COLUMNS = "location,room,serial_number"


def add_tickets(session: Session, n: int) -> None:
    """``n`` tickets with everything a row can show: a key contract, a type with a checklist,
    an assignee, a subcontractor, a product and three field values; every third one on Beta's
    contract without the location it requires on open (as mail opens them)."""
    key = session.scalar(select(Contract).where(Contract.code == "ACME-KEY"))
    beta = session.scalar(select(Contract).where(Contract.code == "BETA-STD"))
    users = {u.email: u for u in session.scalars(select(User))}
    fixit = session.scalar(select(Subcontractor))
    printer = session.scalar(select(Product).where(Product.name == "Printer X200"))
    assert key and beta and fixit and printer
    coordinator = users["coord@support.example"]
    for i in range(n):
        on_beta = i % 3 == 2
        ticket = svc.open_ticket(
            session,
            svc.NewTicket(
                subject=f"Przegląd drukarki {i}",
                requester=users["ewa@beta.example" if on_beta else "anna@acme.example"],
                contract=beta if on_beta else key,
                ticket_type=None if on_beta else "inspection",
                product=None if on_beta else printer,
                custom_fields=None
                if on_beta
                else {"location": "Warszawa", "room": "A1", "serial_number": f"SN-{i}"},
                source="email" if on_beta else "web",
                checked=False,
            ),
        )
        svc.assign(
            session,
            ticket,
            actor=coordinator,
            assignee=users["tech@support.example"],
            subcontractor=None if on_beta else fixit,
        )
    session.flush()


@pytest.fixture
def instance(backend: str, tmp_path: Path) -> Iterator[tuple[Any, sessionmaker[Session]]]:
    from web.app import create_app

    with migrated_database(backend, tmp_path) as factory:
        with factory() as s:
            seed_world(s, DirectoryBlobStore(tmp_path / "blobs"), utcnow())
            s.commit()
        settings = Settings(data_dir=tmp_path, secret_key="test-secret-key")
        yield create_app(settings, session_factory=factory), factory


def statements(factory: sessionmaker[Session], client: Any, url: str) -> tuple[int, str]:
    engine = factory.kw["bind"]
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        page = client.get(url)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert page.status_code == 200
    return len(seen), page.text


def test_the_list_costs_the_same_statements_for_5_and_50_tickets(
    instance: tuple[Any, sessionmaker[Session]],
) -> None:
    app, factory = instance
    with factory() as s:
        add_tickets(s, 50)
        s.commit()
    client, _ = console_client(app, "coord@support.example")
    client.get(f"/tickets?columns={COLUMNS}")  # warm: caches that fill once per process
    url = f"/tickets?state=all&columns={COLUMNS}&per_page="
    few, few_page = statements(factory, client, url + "5")
    many, many_page = statements(factory, client, url + "50")
    rows = re.compile(r'data-testid="ticket-row"')
    assert len(rows.findall(few_page)) == 5
    assert len(rows.findall(many_page)) == 50
    # Every kind of cell is on both pages: field values, progress and the badge.
    for page in (few_page, many_page):
        assert "SN-" in page and 'data-testid="checklist-progress"' in page
        assert 'data-testid="missing-data"' in page
    assert many == few, f"{few} statements for 5 tickets, {many} for 50"
    # Filtering by a field costs no more per row either.
    filtered, _ = statements(factory, client, url + "50&field.location=Warszawa")
    assert filtered <= few + 2
