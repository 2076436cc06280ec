"""How fast is the ticket list a coordinator watches all day?

Seeds N tickets into a fresh database (SQLite by default, or ``--database-url`` for
PostgreSQL) over the browser tests' world (``tests.e2e.conftest.seed_world``: custom fields
location/room/serial_number, an inspection type with a three-item checklist, a contract that
requires the location on open). Every ticket gets values for the three fields (Beta's every
third without the location it requires, as mail opens them) and inspections their checklist,
some of it ticked. Then it times:

- the list queries every door uses (core.tickets.queries.search_tickets): first page sorted by
  the nearest deadline, the overdue filter, a text search and a client manager's scoped view;
- the API endpoint through the ASGI app;
- the console's list page itself (``GET /tickets`` in-process, logged in as the coordinator)
  with three field columns and checklist progress, counting the SQL statements of one page
  (a ``before_cursor_execute`` listener) at 10, 50 and 200 tickets per page: the count must
  not grow with the page (no query per row).

Prints markdown tables.

    .venv/bin/python bench/list_tickets.py                      # 2,000 tickets on SQLite
    .venv/bin/python bench/list_tickets.py --tickets 20000
    .venv/bin/python bench/list_tickets.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core.blobs import BlobStore  # noqa: E402
from core.clock import utcnow  # noqa: E402
from core.contracts.models import Contract  # noqa: E402
from core.db import make_engine, make_session_factory, upgrade  # noqa: E402
from core.tickets import services as svc  # noqa: E402
from core.tickets.queries import TicketFilter, search_tickets  # noqa: E402
from tests.e2e.conftest import console_client, seed_world  # noqa: E402

COLUMNS = "location,room,serial_number"
LOCATIONS = {"Warszawa": ["A1", "A2"], "Poznań": ["B1"]}


def seed(session: Session, n: int, blobs: Path) -> dict[str, object]:
    world = seed_world(session, BlobStore(blobs))
    users = world.users
    key = session.scalar(select(Contract).where(Contract.code == "ACME-KEY"))
    beta = session.scalar(select(Contract).where(Contract.code == "BETA-STD"))
    assert key is not None and beta is not None
    rnd = random.Random(7)
    now = utcnow()
    acme_people = [users["client"], users["client2"], users["manager"]]
    coordinator = users["coordinator"]
    for i in range(n):
        on_beta = i % 4 == 3
        location = rnd.choice(list(LOCATIONS))
        values: dict[str, object] = {"location": location, "room": rnd.choice(LOCATIONS[location])}
        if on_beta and i % 3 == 0:
            values = {}  # opened by mail without the location Beta requires: "missing data"
        elif not on_beta:
            values["serial_number"] = f"SN-{i:06d}"
        inspection = not on_beta and i % 3 == 0
        closing = i % 4 == 0 and not inspection
        if closing and not on_beta:
            values["resolution_code"] = "fixed"  # required on close on ACME-KEY
        t = svc.open_ticket(
            session,
            svc.NewTicket(
                subject=f"Przegląd drukarki {i}" if inspection else f"Drukarka {i} nie drukuje",
                requester=users["beta"] if on_beta else rnd.choice(acme_people),
                contract=beta if on_beta else key,
                ticket_type="inspection" if inspection else None,
                custom_fields=values or None,
                source="email" if on_beta else "web",
                checked=False,
                at=now - timedelta(minutes=rnd.randint(0, 60 * 24 * 60)),
            ),
        )
        if inspection:
            for item in t.checklist[: i % 4]:
                item.done = True
            t.checklist_done = sum(1 for item in t.checklist if item.done)
        if closing:
            svc.change_status(session, t, "Resolved", actor=coordinator)
        if i % 1000 == 999:
            session.flush()
            session.expunge_all()
            key, beta = session.merge(key), session.merge(beta)
            users = {k: session.merge(u) for k, u in users.items()}
            acme_people = [users["client"], users["client2"], users["manager"]]
            coordinator = users["coordinator"]
    session.commit()
    return {
        "coordinator": users["coordinator"].id,
        "manager": users["manager"].id,
        "coordinator_email": users["coordinator"].email,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm caches
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="pulpit-bench-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    start = time.perf_counter()
    with factory() as s:
        ids = seed(s, args.tickets, Path(tmp) / "blobs")
    seed_s = time.perf_counter() - start

    from core.directory.models import User

    rows = []
    with factory() as s:
        coord = s.get(User, ids["coordinator"])
        manager = s.get(User, ids["manager"])
        assert coord and manager
        now = utcnow()
        cases = {
            "open tickets, nearest deadline first": TicketFilter(state="open", sort="deadline"),
            "overdue filter": TicketFilter(overdue=True, sort="deadline"),
            "text search 'drukarka 12'": TicketFilter(q="drukarka 12"),
            "newest first (default)": TicketFilter(),
        }
        for label, f in cases.items():
            p50, p95 = timed(lambda f=f: search_tickets(s, coord, f, now), args.repeat)
            rows.append((f"core, coordinator: {label}", p50, p95))
        p50, p95 = timed(
            lambda: search_tickets(s, manager, TicketFilter(state="open"), now), args.repeat
        )
        rows.append(("core, client manager: open tickets", p50, p95))
        # Memory is measured apart from the timings: tracemalloc slows Python several times.
        tracemalloc.start()
        search_tickets(s, coord, TicketFilter(state="open", sort="deadline"), now)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

    from litestar.testing import TestClient

    from config.settings import Settings
    from core.access.accounts import create_api_token
    from web.app import create_app

    with factory() as s:
        token = create_api_token(s, s.get(User, ids["coordinator"]))  # type: ignore[arg-type]
        s.commit()
    app = create_app(Settings(data_dir=Path(tmp), secret_key="bench"), session_factory=factory)
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {token}"}
        p50, p95 = timed(
            lambda: client.get("/api/v1/tickets?state=open&sort=deadline&per_page=50", headers=h),
            args.repeat,
        )
        rows.append(("API GET /api/v1/tickets (50 per page)", p50, p95))

    # The console's list page, as the coordinator's browser asks for it.
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *rest: object) -> None:
        statements.append(statement)

    console, _ = console_client(app, str(ids["coordinator_email"]))
    pages = []
    for per_page in (10, 50, 200):
        url = f"/tickets?state=all&columns={COLUMNS}&per_page={per_page}"
        page = console.get(url)
        assert page.status_code == 200, page.status_code
        assert page.text.count('data-testid="ticket-row"') == per_page
        assert 'data-testid="checklist-progress"' in page.text
        event.listen(engine, "before_cursor_execute", count)
        statements.clear()
        console.get(url)
        event.remove(engine, "before_cursor_execute", count)
        n_statements = len(statements)
        p50, p95 = timed(lambda url=url: console.get(url), args.repeat)
        pages.append((per_page, n_statements, p50, p95))
    filtered_url = f"/tickets?columns={COLUMNS}&field.location=Warszawa"
    p50, p95 = timed(lambda: console.get(filtered_url), args.repeat)
    rows.append(("console GET /tickets?field.location=Warszawa (3 columns, 50)", p50, p95))

    backend = engine.dialect.name
    print(f"tickets: {args.tickets}, database: {backend}, seeded in {seed_s:.1f}s")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    print()
    print("| query | median ms | p95 ms |")
    print("|---|---:|---:|")
    for label, p50, p95 in rows:
        print(f"| {label} | {p50:.1f} | {p95:.1f} |")
    print(f"\npeak Python memory for one page of the list: {peak / 1024 / 1024:.1f} MiB")
    print()
    print(f"console GET /tickets, coordinator, 3 field columns ({COLUMNS}), checklist progress:")
    print()
    print("| tickets per page | SQL statements per page | median ms | p95 ms |")
    print("|---:|---:|---:|---:|")
    for per_page, n_statements, p50, p95 in pages:
        print(f"| {per_page} | {n_statements} | {p50:.1f} | {p95:.1f} |")
    counts = {n for _, n, _, _ in pages}
    print(
        "\nstatements per page are "
        + ("constant" if len(counts) == 1 else f"NOT constant: {sorted(counts)}")
    )


if __name__ == "__main__":
    main()
