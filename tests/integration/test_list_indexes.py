"""The ticket lists' queries are served by the partial indexes of migration 0022 on PostgreSQL
(issue 16, a million tickets): the default list newest first and its count by
``ix_tickets_open_number``, a client manager's by ``ix_tickets_open_client``, the
nearest-deadline sort by ``ix_tickets_open_deadline``, whose expressions must stay the very
ORDER BY of ``core.tickets.queries.deadline_order`` (written out in ``core.tickets.models``).

A test database holds a handful of tickets, where a sequential scan and a sort are cheapest,
so the plans are read with those turned off (``SET LOCAL``): what is checked is that the index
*can* serve the query, which is what a changed expression would break. (Counting from the index
alone, an index-only scan, needs a vacuumed table: the bench shows it.) bench/list_tickets.py
--million measures the times."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from core.blobs import DirectoryBlobStore
from core.clock import utcnow
from core.tickets.queries import TicketFilter, search_tickets
from tests.e2e.conftest import seed_world


@pytest.fixture(params=["postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """PostgreSQL only: the partial and expression indexes are its (not a skip on SQLite, so
    CI's run counts no skipped test)."""
    return str(request.param)


@pytest.fixture
def world(session: Session, tmp_path: Path) -> Iterator[Any]:
    yield seed_world(session, DirectoryBlobStore(tmp_path / "blobs"))
    session.flush()


def plans(session: Session, user: Any, f: TicketFilter) -> list[str]:
    """EXPLAIN of each statement ``search_tickets`` sends (count, page, then the loads)."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        seen.append((statement, params))

    bind = session.connection()
    session.execute(text("SET LOCAL enable_seqscan = off"))
    session.execute(text("SET LOCAL enable_sort = off"))
    session.execute(text("SET LOCAL enable_bitmapscan = off"))
    event.listen(bind, "before_cursor_execute", record)
    try:
        search_tickets(session, user, f, utcnow())
    finally:
        event.remove(bind, "before_cursor_execute", record)
    return [
        "\n".join(row[0] for row in bind.exec_driver_sql(f"EXPLAIN {stmt}", params).all())
        for stmt, params in seen[:2]
    ]


def test_the_nearest_deadline_sort_reads_the_deadline_index(world: Any, session: Session) -> None:
    count, page = plans(
        session, world.users["coordinator"], TicketFilter(state="open", sort="deadline")
    )
    # The page's numbers come off the index in order (the Limit right above it): only the
    # page's rows are sorted again, never every open ticket.
    lines = [line.strip() for line in page.splitlines()]
    limit = next(i for i, line in enumerate(lines) if line.startswith("->  Limit"))
    assert "Index Scan using ix_tickets_open_deadline" in lines[limit + 1], page
    # Which index counts a handful of rows is the planner's whim (it depends on the table's
    # statistics, which the tests before this one leave): the count is not asserted.


def test_the_default_list_walks_the_open_numbers_backwards(world: Any, session: Session) -> None:
    count, page = plans(session, world.users["coordinator"], TicketFilter(state="open"))
    # Walked backwards, no sort (NULLS LAST would need one); on a handful of tickets the
    # planner may walk the number's unique index instead of the open ones'.
    assert "Scan Backward using" in page and "Sort" not in page, page


def test_a_client_managers_list_and_count(world: Any, session: Session) -> None:
    count, page = plans(session, world.users["manager"], TicketFilter(state="open"))
    # In number order without a sort: the open tickets' (client, number) index, or on a
    # handful of tickets the number's own index walked backwards.
    assert "Sort" not in page, page
    assert "ix_tickets_open_" in page or "Scan Backward using" in page, page


def test_every_states_nearest_deadline_page_reads_the_open_tickets_first(
    world: Any, session: Session
) -> None:
    """Over every state, a page that running and paused clocks fill comes from the open
    tickets' deadline index (148 ms at a million tickets when every ticket was sorted)."""
    count, page = plans(
        session, world.users["coordinator"], TicketFilter(state="all", sort="deadline", per_page=2)
    )
    assert "ix_tickets_open_deadline" in page, page


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_states_nearest_deadline_pages_are_those_of_the_full_sort(
    world: Any, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.tickets import queries

    user = world.users["coordinator"]
    now = utcnow()
    total = search_tickets(session, user, TicketFilter(state="all"), now).total
    running = [
        t
        for t in search_tickets(
            session, user, TicketFilter(state="open", sort="deadline", per_page=200), now
        ).items
        if t.status_category != "closed"
    ]
    assert total > len(running) > 2  # a page of running clocks, and closed tickets after them

    def numbers(per_page: int, page: int) -> list[int]:
        f = TicketFilter(state="all", sort="deadline", per_page=per_page, page=page)
        return [t.number for t in search_tickets(session, user, f, now).items]

    cases = [(1, 1), (2, 1), (2, 2), (3, 2), (len(running), 1), (len(running) + 1, 1), (5, 3)]
    shortcut = {case: numbers(*case) for case in cases}
    monkeypatch.setattr(queries, "_running_clocks_page", lambda *args: None)
    assert {case: numbers(*case) for case in cases} == shortcut
