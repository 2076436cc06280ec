"""How fast is the ticket list a coordinator watches all day?

Seeds N tickets into a fresh database (SQLite by default, or ``--database-url`` for
PostgreSQL), then times the list queries every door uses (core.tickets.queries.search_tickets) and the
API endpoint through the ASGI app: first page sorted by the nearest deadline, the overdue
filter, a text search and a client manager's scoped view. Prints a markdown table.

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

from sqlalchemy.orm import Session  # noqa: E402

from core.clock import utcnow  # noqa: E402
from core.db import make_engine, make_session_factory, upgrade  # noqa: E402
from core.tickets import services as svc  # noqa: E402
from core.tickets.queries import TicketFilter, search_tickets  # noqa: E402
from tests.factories import build_world  # noqa: E402


def seed(session: Session, n: int) -> dict[str, object]:
    world = build_world(session)
    users = world.users
    rnd = random.Random(7)
    now = utcnow()
    requesters = [users["client"], users["client2"], users["manager"], users["beta"]]
    for i in range(n):
        req = rnd.choice(requesters)
        contract = world.acme_contract if req.client_id == world.acme.id else world.beta_contract
        t = svc.open_ticket(
            session,
            svc.NewTicket(
                subject=f"Drukarka {i} nie drukuje" if i % 3 else f"Przegląd {i}",
                requester=req,
                contract=contract,
                at=now - timedelta(minutes=rnd.randint(0, 60 * 24 * 60)),
            ),
        )
        if i % 4 == 0:
            svc.change_status(session, t, "Resolved", actor=users["coordinator"])
        if i % 1000 == 999:
            session.flush()
            session.expunge_all()
    session.commit()
    return {"coordinator": users["coordinator"].id, "manager": users["manager"].id}


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
    parser.add_argument("--tickets", type=int, default=20000)
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
        ids = seed(s, args.tickets)
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

    backend = engine.dialect.name
    print(f"tickets: {args.tickets}, database: {backend}, seeded in {seed_s:.1f}s")
    print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    print()
    print("| query | median ms | p95 ms |")
    print("|---|---:|---:|")
    for label, p50, p95 in rows:
        print(f"| {label} | {p50:.1f} | {p95:.1f} |")
    print(f"\npeak Python memory for one page of the list: {peak / 1024 / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
