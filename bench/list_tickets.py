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

``--million`` (issue 16) measures a service company's database after three years instead:
1,000,000 tickets on PostgreSQL (the database, whose name must start with ``bench``, is
dropped and created; ``--reuse`` times it as it is), over 50 clients with a Zipf-like spread
(the biggest has a quarter of the tickets), ~80 contracts (office hours or 24/7, SLA targets
per type, one in six key), 20 technicians serving three or four contracts each, the clients'
people as requesters. The browser tests' world is the base (its coordinator, technician and
Acme's manager are the users timed). Older than six weeks a ticket is closed (one in a
thousand forgotten open); newer ones close as they age; of the rest 30 % new, 50 % open, 20 %
paused, and one in six running ones past a deadline. The SLA columns are filled as
core.sla.clocks stores them. Rows go in with COPY (bench/reports.py's ``write``). Then, p50
and p95 of 30 runs: the lists through ``search_tickets`` as a coordinator, a technician and a
client manager (the console's default, page 2, the last page, overdue, the nearest deadline
first, every state), the count, ``GET /api/v1/tickets`` through the ASGI app; each once
without and once with migration 0022's indexes (dropped and created again in the run); then
the bulk status change of 1,000 tickets and the idle RSS of ``pulpit serve`` against the
database (``/proc/<pid>/status`` VmRSS, five seconds after ``/api/v1/health`` answered).

    .venv/bin/python bench/list_tickets.py                      # 2,000 tickets on SQLite
    .venv/bin/python bench/list_tickets.py --tickets 20000
    .venv/bin/python bench/list_tickets.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench
    .venv/bin/python bench/list_tickets.py --million --database-url postgresql+psycopg://postgres@127.0.0.1/bench_list

The bulk change alone, on a smaller database built the same way (120,000 tickets have the
1,000 new ones it changes; built in under a minute):

    .venv/bin/python bench/list_tickets.py --million --tickets 120000 --only-bulk --database-url postgresql+psycopg://postgres@127.0.0.1/bench_bulk
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
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, func, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core.blobs import DirectoryBlobStore  # noqa: E402
from core.clock import utcnow  # noqa: E402
from core.contracts.models import Contract  # noqa: E402
from core.db import make_engine, make_session_factory, upgrade  # noqa: E402
from core.sla.clocks import overdue_clause as sla_overdue  # noqa: E402
from core.tickets import services as svc  # noqa: E402
from core.tickets.models import Ticket  # noqa: E402
from core.tickets.queries import TicketFilter, search_tickets  # noqa: E402
from tests.e2e.conftest import console_client, seed_world  # noqa: E402

COLUMNS = "location,room,serial_number"
LOCATIONS = {"Warszawa": ["A1", "A2"], "Poznań": ["B1"]}


def seed(session: Session, n: int, blobs: Path) -> dict[str, object]:
    world = seed_world(session, DirectoryBlobStore(blobs))
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
    parser.add_argument(
        "--million",
        action="store_true",
        help="issue 16: 1,000,000 tickets on PostgreSQL (the database is dropped and created)",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="with --million: time the database as it is"
    )
    parser.add_argument(
        "--skip-before", action="store_true", help="with --million: skip the run without indexes"
    )
    parser.add_argument(
        "--only-bulk",
        action="store_true",
        help="with --million: time only the bulk status change (five runs, no lists, no RSS)",
    )
    args = parser.parse_args()
    if args.million:
        if args.tickets == 2000:
            args.tickets = 1_000_000
        million(args)
        return

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


# ---------------------------------------------------------------------------------------------
# A million tickets (issue 16): ``--million --database-url postgresql+psycopg://.../bench_list``
# ---------------------------------------------------------------------------------------------

MILLION_TARGET_MS = 50.0
BULK_TARGET_S = 2.0
RSS_TARGET_MB = 150.0
N_CLIENTS = 50
N_STAFF = 20
YEARS = 3


def build_million(url: str, n: int, now: datetime) -> dict[str, Any]:
    """A fresh database of ``n`` tickets over 50 clients (Zipf-like: the biggest client has
    about a fifth of all tickets), ~80 contracts (two calendars, SLA targets per type, one in
    six key), 20 technicians and the clients' own people, 3 years of history."""
    from reports import TICKET_COLUMNS, fresh_database, write

    from core.contracts.models import TicketType
    from core.directory.models import Client, User
    from core.sla.models import Calendar
    from tests.e2e.conftest import _statuses

    url = fresh_database(url)
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    rnd = random.Random(16)
    with factory() as s:
        base = seed_world(
            s, DirectoryBlobStore(Path(tempfile.mkdtemp(prefix="pulpit-bench-blobs-")))
        )
        s.flush()
        office = Calendar(
            name="office",
            timezone="Europe/Warsaw",
            hours={d: ["08:00-16:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        )
        always = s.scalar(select(Calendar).where(Calendar.name == "always"))
        s.add(office)
        staff = [base.users["technician"], base.users["technician2"]]
        for i in range(N_STAFF - len(staff)):
            staff.append(User(email=f"tech{i:02d}@support.example", role="technician",
                              name=f"Technik {i:02d}"))  # fmt: skip
        s.add_all(staff)
        acme = s.scalar(select(Client).where(Client.name == "Acme"))
        beta = s.scalar(select(Client).where(Client.name == "Beta"))
        assert acme is not None and beta is not None
        clients: list[Client] = [acme, beta]
        for i in range(3, N_CLIENTS + 1):
            clients.append(Client(name=f"Klient {i:02d}"))
        s.add_all(clients)
        s.flush()
        for rank, client in enumerate(clients[2:], start=3):
            # Bigger clients have more people and more contracts.
            people = max(3, 60 // rank)
            for j in range(people):
                s.add(User(email=f"u{j}@klient{rank:02d}.example", role="client",
                           name=f"Osoba {j} ({client.name})", client_id=client.id,
                           manager=j == 0))  # fmt: skip
            for k in range(1 if rank > 30 else 2):
                key = (rank + k) % 6 == 0
                s.add(Contract(
                    code=f"K{rank:02d}-{'KEY' if key else 'STD'}{k}", name=f"{client.name} {k}",
                    client_id=client.id, key=key, calendar=always if key else office,
                    ticket_types=[
                        TicketType(name="failure", default=True, reaction="1h" if key else "4h",
                                   resolution="8h" if key else "3d"),
                        TicketType(name="request", reaction="8h", resolution="5d"),
                    ],
                    statuses=_statuses(extra=key),
                ))  # fmt: skip
        s.flush()
        contracts = list(s.scalars(select(Contract).order_by(Contract.id)))
        for c in contracts:
            c.technicians = rnd.sample(staff, 3)
            if c.code in ("ACME-KEY",) or rnd.random() < 0.2:
                if staff[0] not in c.technicians:
                    c.technicians.append(staff[0])
        s.commit()
        rank_of = {cl.id: r for r, cl in enumerate(clients, start=1)}
        by_client: dict[int, list[Contract]] = {}
        for c in contracts:
            by_client.setdefault(c.client_id, []).append(c)
        w: dict[str, Any] = {
            "clients": [cl.id for cl in clients],
            "weights": [1 / rank_of[cl.id] ** 1.05 for cl in clients],
            "contracts": {
                cid: [(c.id, c.key, [u.id for u in c.technicians]) for c in cs]
                for cid, cs in by_client.items()
            },  # fmt: skip
            "types": {c.id: [t.id for t in c.ticket_types] for c in contracts},
            "statuses": {
                c.id: {st.category: st.id for st in reversed(c.statuses)} for c in contracts
            },
            "requesters": {
                cl.id: [u for u in s.scalars(select(User.id).where(User.client_id == cl.id))]
                for cl in clients
            },
            "next": int(s.scalar(text("SELECT coalesce(max(number), 0) FROM tickets")) or 0) + 1,
        }
    t0 = time.perf_counter()
    count = write(engine, "tickets", TICKET_COLUMNS, million_rows(w, n, now, rnd))
    with engine.begin() as conn:
        conn.execute(text("UPDATE counters SET value = :v WHERE name = 'ticket'"),
                     {"v": w["next"] + n})  # fmt: skip
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return {"tickets": count, "seconds": time.perf_counter() - t0}


def million_rows(
    w: dict[str, Any], n: int, now: datetime, rnd: random.Random
) -> Iterable[tuple[Any, ...]]:
    """Tickets as core.sla.clocks stores them. Older than six weeks: closed (but one in a
    thousand forgotten); newer: closing as they age. Of the rest: new 30 %, open 50 %, paused
    20 %; one in six running ones past a deadline."""
    span = YEARS * 365 * 24 * 60
    minute = timedelta(minutes=1)
    clients, weights = w["clients"], w["weights"]
    picks = rnd.choices(clients, weights=weights, k=n)
    for i in range(n):
        client_id = picks[i]
        contract_id, key, techs = rnd.choice(w["contracts"][client_id])
        # More tickets lately: the business grew.
        age = int(span * rnd.random() ** 1.4) + 1
        created = now - age * minute
        days = age / 1440
        closed = rnd.random() < (0.999 if days > 42 else 0.35 + 0.6 * days / 42)
        category = "closed" if closed else rnd.choices(("new", "open", "paused"), (3, 5, 2))[0]
        reaction = 60 if key else 240
        resolution = 480 if key else 3 * 1440
        reaction_due = created + reaction * minute
        resolution_due = created + resolution * minute
        late = rnd.random() < (0.08 if closed else 1 / 6)
        first = None
        resolved = None
        reaction_min = resolution_min = None
        if category == "new":
            if not late:
                reaction_due = max(reaction_due, now + rnd.randint(5, 240) * minute)
                resolution_due = max(resolution_due, reaction_due + resolution * minute)
        else:
            reaction_min = rnd.randint(3, reaction * (2 if late else 1))
            first = created + reaction_min * minute
            if closed:
                resolution_min = rnd.randint(reaction_min, resolution * (2 if late else 1))
                resolved = created + resolution_min * minute
            elif not late:
                resolution_due = max(resolution_due, now + rnd.randint(30, 5 * 1440) * minute)
        reaction_breached = (
            reaction_due if (first or now) > reaction_due and category != "paused" else None
        )
        resolution_breached = (
            resolution_due if (resolved or now) > resolution_due and category != "paused" else None
        )
        assigned = closed or rnd.random() < (0.4 if category == "new" else 0.9)
        yield (
            w["next"] + i, f"Zgłoszenie {i}: drukarka nie drukuje", client_id, contract_id,
            rnd.choice(w["types"][contract_id]), w["statuses"][contract_id][category], category,
            rnd.choice(w["requesters"][client_id]), rnd.choice(techs) if assigned else None,
            "{}", rnd.choice(("email", "email", "web", "api")), created, resolved or first or created,
            reaction_due, resolution_due, first, resolved, reaction_breached, resolution_breached,
            category == "paused", bool(reaction_breached or resolution_breached), 0, 0, 0, 0,
            reaction_min, resolution_min, rnd.randint(0, 600) if rnd.random() < 0.2 else 0,
        )  # fmt: skip


def _percentiles(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm caches
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95 + 0.5) - 1)]


def time_lists(factory: Any, app: Any, repeat: int) -> list[tuple[str, float, float]]:
    """The lists each door asks for, p50/p95 in ms."""
    from litestar.testing import TestClient

    from core.access.accounts import create_api_token
    from core.directory.models import User

    rows: list[tuple[str, float, float]] = []
    with factory() as s:
        coord = s.scalar(select(User).where(User.email == "coord@support.example"))
        tech = s.scalar(select(User).where(User.email == "tech@support.example"))
        manager = s.scalar(select(User).where(User.email == "barbara@acme.example"))
        assert coord and tech and manager
        now = utcnow()
        open_total = search_tickets(s, coord, TicketFilter(state="open"), now).total
        last = max(1, -(-open_total // 50))
        cases: list[tuple[str, User, TicketFilter]] = [
            ("coordinator: default list (open, newest first)", coord, TicketFilter(state="open")),
            ("coordinator: open, page 2", coord, TicketFilter(state="open", page=2)),
            (f"coordinator: open, last page ({last})", coord, TicketFilter(state="open", page=last)),
            ("coordinator: overdue", coord, TicketFilter(state="open", overdue=True)),
            ("coordinator: open, nearest deadline first", coord,
             TicketFilter(state="open", sort="deadline")),
            ("coordinator: all, nearest deadline first", coord, TicketFilter(sort="deadline")),
            ("coordinator: all states, newest first", coord, TicketFilter()),
            ("technician: default list (own + queue)", tech, TicketFilter(state="open")),
            ("technician: nearest deadline first", tech,
             TicketFilter(state="open", sort="deadline")),
            ("client manager (Acme): default list", manager, TicketFilter(state="open")),
            ("client manager (Acme): all states, newest first", manager, TicketFilter()),
            ("client manager (Acme): nearest deadline first", manager,
             TicketFilter(state="open", sort="deadline")),
        ]  # fmt: skip
        for label, user, f in cases:
            p50, p95 = _percentiles(lambda u=user, f=f: search_tickets(s, u, f, now), repeat)
            rows.append((f"core, {label}", p50, p95))
            s.rollback()
        from core.tickets.queries import count_tickets

        p50, p95 = _percentiles(
            lambda: count_tickets(s, coord, TicketFilter(state="open"), now), repeat
        )
        rows.append(("core, coordinator: count of open tickets (saved view badge)", p50, p95))
        token = create_api_token(s, coord)
        s.commit()
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {token}"}
        for label, query in (
            ("API GET /api/v1/tickets (default: all, newest, 50)", ""),
            ("API GET /api/v1/tickets?state=open&sort=deadline", "?state=open&sort=deadline"),
            ("API GET /api/v1/tickets?overdue=true", "?overdue=true"),
        ):
            assert client.get(f"/api/v1/tickets{query}", headers=h).status_code == 200
            p50, p95 = _percentiles(
                lambda q=query: client.get(f"/api/v1/tickets{q}", headers=h), repeat
            )
            rows.append((label, p50, p95))
    return rows


def time_bulk(factory: Any) -> tuple[float, int]:
    """core.tickets.services.bulk_change_status of the 1,000 newest new tickets to "In
    progress" (as the console's bulk action: the events, the SLA recomputed, the requesters'
    notifications), flushed, then rolled back (the database stays as built). Seconds, tickets."""
    from core.directory.models import User
    from core.tickets.services import bulk_change_status

    with factory() as s:
        coord = s.scalar(select(User).where(User.email == "coord@support.example"))
        assert coord
        numbers = list(
            s.scalars(
                select(Ticket.number)
                .where(Ticket.status_category == "new")
                .order_by(Ticket.number.desc())
                .limit(1000)
            )
        )
        s.rollback()
        start = time.perf_counter()
        changed = bulk_change_status(s, numbers, "In progress", actor=coord)
        s.flush()
        took = time.perf_counter() - start
        s.rollback()
    return took, len(changed)


def idle_rss(url: str) -> float:
    """VmRSS (MiB) of ``pulpit serve`` against the database, idle 5 s after /api/v1/health."""
    import socket
    import subprocess
    import urllib.request

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    http, smtp = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="pulpit-bench-serve-")
    log = open(Path(data) / "serve.log", "wb")  # noqa: SIM115
    env = {
        **os.environ,
        "PULPIT_DATABASE_URL": url,
        "PULPIT_DATA_DIR": data,
        "PULPIT_HTTP_PORT": str(http),
        "PULPIT_SMTP_PORT": str(smtp),
        "PULPIT_SECRET_KEY": "bench-secret-key-bench-secret-key",
        "PULPIT_PUBLIC_URL": f"http://127.0.0.1:{http}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulpit", "serve"],
        env=env,
        cwd=str(Path(__file__).resolve().parents[1]),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/v1/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None:
                    tail = (Path(data) / "serve.log").read_text(errors="replace")[-2000:]
                    raise SystemExit(f"pulpit serve exited before answering:\n{tail}") from None
                time.sleep(0.3)
        else:
            raise SystemExit("pulpit serve did not answer /api/v1/health within 60 s")
        time.sleep(5)
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")
    finally:
        log.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def list_indexes() -> list[Any]:
    """The indexes this benchmark compares: the ones migration 0022 added."""
    from core.orm import Base

    return [ix for ix in Base.metadata.tables["tickets"].indexes if ix.name in LIST_INDEXES]


LIST_INDEXES = ("ix_tickets_open_number", "ix_tickets_open_client", "ix_tickets_open_deadline")


def million(args: argparse.Namespace) -> None:
    url = args.database_url
    if not url or not url.startswith("postgresql"):
        raise SystemExit("--million needs --database-url postgresql+psycopg://.../bench_...")
    now = utcnow()
    built: dict[str, Any] = {"tickets": 0, "seconds": 0.0}
    if not args.reuse:
        print(f"building {args.tickets:,} tickets ...", flush=True)
        built = build_million(url, args.tickets, now)
    else:
        upgrade(url)  # a database built before the latest migrations gets them
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM tickets")).scalar_one())
        mix: dict[str, int] = dict(
            conn.execute(  # type: ignore[arg-type]
                text("SELECT status_category, count(*) FROM tickets GROUP BY 1")
            ).all()
        )
        overdue = conn.execute(
            select(func.count()).select_from(Ticket).where(sla_overdue(now))
        ).scalar_one()
        biggest = conn.execute(
            text("SELECT max(c) FROM (SELECT count(*) AS c FROM tickets GROUP BY client_id) x")
        ).scalar_one()
        pg = conn.execute(text("SHOW server_version")).scalar_one()
    print(f"{n:,} tickets ready; timing", flush=True)

    from config.settings import Settings
    from web.app import create_app

    app = create_app(
        Settings(data_dir=Path(tempfile.mkdtemp(prefix="pulpit-bench-")), secret_key="bench"),
        session_factory=factory,
    )
    runs: list[tuple[str, list[tuple[str, float, float]]]] = []
    indexes = list_indexes()
    if args.only_bulk:
        import logging

        logging.disable(logging.WARNING)
        bulk = sorted(time_bulk(factory) for _ in range(5))
        ok = "met" if bulk[2][0] <= BULK_TARGET_S else "MISSED"
        print(
            f"PostgreSQL {pg}, {n:,} tickets; bulk status change of {bulk[2][1]:,} tickets:"
            f" median {bulk[2][0]:.2f} s of five ({', '.join(f'{b[0]:.2f}' for b in bulk)};"
            f" target 2 s: {ok})"
        )
        return
    if indexes and not args.skip_before:
        with engine.begin() as conn:
            for ix in indexes:
                ix.drop(conn, checkfirst=True)
            conn.execute(text("ANALYZE tickets"))
        runs.append(("without 0022's indexes", time_lists(factory, app, args.repeat)))
        with engine.begin() as conn:
            for ix in indexes:
                ix.create(conn, checkfirst=True)
            conn.execute(text("ANALYZE tickets"))
    runs.append(("as migrated" if indexes else "as is", time_lists(factory, app, args.repeat)))
    import logging

    logging.disable(logging.WARNING)  # the notifications' loop protection, once per ticket
    bulk = sorted(time_bulk(factory) for _ in range(3))
    bulk_s, bulk_n = bulk[1]  # the median of three
    rss = idle_rss(url)

    print()
    print(f"PostgreSQL {pg}, {n:,} tickets over {N_CLIENTS} clients (biggest: {biggest:,}),"
          f" {YEARS} years" + (f", generated in {built['seconds']:.0f} s" if built["tickets"] else ""))  # fmt: skip
    print("states: " + ", ".join(f"{k} {v:,}" for k, v in sorted(mix.items())) +
          f"; overdue now {overdue:,}")  # fmt: skip
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{args.repeat} runs each, ms; target p95 <= {MILLION_TARGET_MS:.0f} ms\n")
    header = " | ".join(f"{label} p50 | {label} p95" for label, _ in runs)
    print(f"| list | {header} |")
    print("|---|" + "---:|" * (2 * len(runs)))
    for i, (label, _, _) in enumerate(runs[0][1]):
        cells = " | ".join(f"{r[i][1]:.1f} | {r[i][2]:.1f}" for _, r in runs)
        print(f"| {label} | {cells} |")
    ok = "met" if bulk_s <= BULK_TARGET_S else "MISSED"
    runs_s = ", ".join(f"{b[0]:.2f}" for b in bulk)
    print(
        f"\nbulk status change of {bulk_n:,} tickets (new -> In progress, notifications included):"
        f" median {bulk_s:.2f} s of three ({runs_s}; target 2 s: {ok})"
    )
    ok = "met" if rss <= RSS_TARGET_MB else "MISSED"
    print(f"pulpit serve idle RSS: {rss:.0f} MiB (target 150 MB: {ok})")


if __name__ == "__main__":
    main()
