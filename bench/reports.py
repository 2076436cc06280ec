"""How fast are the reports on a year of a busy service company?

Builds a database of N tickets (default 200,000) and M work log entries (default 1,000,000)
over the browser tests' world (two clients, two contracts with SLA targets, staff and a
subcontractor), spread over the last year, with the SLA figures the reports read stored as
core.sla.clocks.recompute stores them (met, breached, minutes, pauses) and entries with and
without rates. Rows are written with PostgreSQL's COPY (SQLite: executemany), not through the
services: generating, not measuring, is the slow part there.

Then it times every report for the whole year, each group, on the database (median of three
runs), and the XLSX export of the largest ones, and prints markdown tables.

    .venv/bin/python bench/reports.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench_reports
    .venv/bin/python bench/reports.py --tickets 20000 --entries 100000      # SQLite, smaller

The PostgreSQL database is dropped and created again (its name must start with ``bench``).
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
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core.blobs import DirectoryBlobStore  # noqa: E402
from core.contracts.models import Contract, Status, TicketType  # noqa: E402
from core.db import make_engine, make_session_factory, upgrade  # noqa: E402
from core.directory.models import User  # noqa: E402
from core.orm import Base  # noqa: E402
from core.reports.base import Period, Scope  # noqa: E402
from tests.e2e.conftest import seed_world  # noqa: E402

MINUTE = timedelta(minutes=1)


def fresh_database(url: str) -> str:
    """A new empty database at ``url`` (PostgreSQL: dropped and created; SQLite: a temp file)."""
    if url.startswith("sqlite") or not url:
        path = Path(tempfile.mkdtemp(prefix="pulpit-bench-")) / "reports.db"
        return f"sqlite:///{path}"
    parsed = make_url(url)
    name = parsed.database or ""
    if not name.startswith("bench"):
        raise SystemExit("the PostgreSQL database's name must start with 'bench' (it is dropped)")
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url


def world(session: Session) -> dict[str, Any]:
    seed_world(session, DirectoryBlobStore(Path(tempfile.mkdtemp(prefix="pulpit-bench-blobs-"))))
    session.flush()
    # Rates on one contract, so statements have amounts; the other has none.
    key = session.scalar(select(Contract).where(Contract.code == "ACME-KEY"))
    assert key is not None
    key.hourly_rate = 15000
    session.commit()
    contracts = list(session.scalars(select(Contract)))
    types = {
        c.id: [
            t.id for t in session.scalars(select(TicketType).where(TicketType.contract_id == c.id))
        ]
        for c in contracts
    }
    statuses = {
        c.id: {
            s.category: s.id
            for s in session.scalars(select(Status).where(Status.contract_id == c.id))
        }
        for c in contracts
    }
    staff = [
        u.id
        for u in session.scalars(
            select(User).where(User.role.in_(("technician", "coordinator", "subcontractor")))
        )
    ]
    requesters = {
        c.client_id: [
            u.id for u in session.scalars(select(User).where(User.client_id == c.client_id))
        ]
        for c in contracts
    }
    start = session.scalar(text("SELECT coalesce(max(number), 0) FROM tickets")) or 0
    return {
        "contracts": [(c.id, c.client_id) for c in contracts],
        "types": types,
        "statuses": statuses,
        "staff": staff,
        "requesters": requesters,
        "next_number": int(start) + 1,
        "rate": {key.id: 15000},
    }


TICKET_COLUMNS = (
    "number", "subject", "client_id", "contract_id", "ticket_type_id", "status_id",
    "status_category", "requester_id", "assignee_id", "custom_fields", "source", "created_at",
    "updated_at", "reaction_due", "resolution_due", "first_response_at", "resolved_at",
    "reaction_breached_at", "resolution_breached_at", "sla_paused", "ever_breached",
    "checklist_done", "checklist_total", "worked_minutes", "billable_minutes",
    "reaction_minutes", "resolution_minutes", "paused_minutes",
)  # fmt: skip
ENTRY_COLUMNS = (
    "ticket_id", "user_id", "started_at", "minutes", "description", "billable", "rate",
    "created_at",
)  # fmt: skip


def tickets(
    w: dict[str, Any], n: int, now: datetime, rnd: random.Random
) -> Iterable[tuple[Any, ...]]:
    for i in range(n):
        contract_id, client_id = rnd.choice(w["contracts"])
        created = now - timedelta(minutes=rnd.randint(60, 365 * 24 * 60))
        closed = rnd.random() < 0.85
        paused = rnd.randint(0, 600) if rnd.random() < 0.2 else 0
        reaction = rnd.randint(5, 240)
        resolution = reaction + rnd.randint(30, 3000)
        reaction_late = reaction > 120
        resolution_late = resolution > 2400
        category = "closed" if closed else rnd.choice(("new", "open", "paused"))
        status = w["statuses"][contract_id].get(category) or next(
            iter(w["statuses"][contract_id].values())
        )
        responded = created + reaction * MINUTE if category != "new" else None
        resolved = created + (resolution + paused) * MINUTE if closed else None
        yield (
            w["next_number"] + i, f"Zgłoszenie {i}", client_id, contract_id,
            rnd.choice(w["types"][contract_id]), status, category,
            rnd.choice(w["requesters"][client_id]), rnd.choice([*w["staff"], None]), "{}", "email",
            created, resolved or created, created + 120 * MINUTE, created + 2400 * MINUTE,
            responded, resolved,
            created + 120 * MINUTE if reaction_late and responded else None,
            created + 2400 * MINUTE if resolution_late and resolved else None,
            category == "paused", reaction_late or resolution_late, 0, 0, 0, 0,
            reaction if responded else None, resolution if resolved else None, paused,
        )  # fmt: skip


def write(
    engine: Engine, table: str, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]]
) -> int:
    count = 0
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
                    count += 1
            raw.commit()
        finally:
            raw.close()
        return count
    table_ = Base.metadata.tables[table]
    with engine.begin() as conn:
        batch: list[dict[str, Any]] = []
        for row in rows:
            values = dict(zip(columns, row, strict=True))
            if isinstance(values.get("custom_fields"), str):
                values["custom_fields"] = {}
            batch.append(values)
            count += 1
            if len(batch) == 5000:
                conn.execute(table_.insert(), batch)
                batch.clear()
        if batch:
            conn.execute(table_.insert(), batch)
    return count


def entries(
    engine: Engine, w: dict[str, Any], m: int, rnd: random.Random
) -> Iterable[tuple[Any, ...]]:
    found = _generated_tickets(engine, w)
    return _entries(found, w, m, rnd)


def _generated_tickets(engine: Engine, w: dict[str, Any]) -> list[Any]:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT id, contract_id, created_at FROM tickets WHERE number >= :n"),
            {"n": w["next_number"]},
        ).all()
    return list(found)


def _entries(
    found: list[Any], w: dict[str, Any], m: int, rnd: random.Random
) -> Iterable[tuple[Any, ...]]:
    for _ in range(m):
        ticket_id, contract_id, created = rnd.choice(found)
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        started = created + timedelta(minutes=rnd.randint(0, 7 * 24 * 60))
        yield (
            ticket_id, rnd.choice(w["staff"]), started, rnd.choice((15, 30, 45, 60, 90, 120)),
            "praca", rnd.random() < 0.8, w["rate"].get(contract_id), started,
        )  # fmt: skip


def timed(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    results, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        results.append(time.perf_counter() - t0)
    return statistics.median(results), out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument(
        "--reuse", action="store_true", help="time the database a previous run built, as it is"
    )
    args = parser.parse_args()

    url = args.database_url if args.reuse else fresh_database(args.database_url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    if args.reuse:
        generated = 0.0
        with engine.connect() as conn:
            n = int(conn.execute(text("SELECT count(*) FROM tickets")).scalar_one())
            m = int(conn.execute(text("SELECT count(*) FROM work_log_entries")).scalar_one())
    else:
        n, m, generated = build(engine, factory, args.tickets, args.entries, now)
    print(f"{n:,} tickets and {m:,} entries ready; timing", flush=True)
    report_timings(engine, factory, n, m, generated, now)


def build(
    engine: Engine, factory: Any, n_tickets: int, n_entries: int, now: datetime
) -> tuple[int, int, float]:
    """Fill the database; (tickets, entries, seconds it took)."""
    upgrade(str(engine.url.render_as_string(hide_password=False)))
    rnd = random.Random(14)
    with factory() as session:
        w = world(session)
    t0 = time.perf_counter()
    n = write(engine, "tickets", TICKET_COLUMNS, tickets(w, n_tickets, now, rnd))
    m = write(engine, "work_log_entries", ENTRY_COLUMNS, entries(engine, w, n_entries, rnd))
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE tickets SET worked_minutes = s.total, billable_minutes = s.billable FROM ("
                " SELECT ticket_id, sum(minutes) AS total,"
                " sum(CASE WHEN billable THEN minutes ELSE 0 END) AS billable"
                " FROM work_log_entries GROUP BY ticket_id) AS s WHERE s.ticket_id = tickets.id"
            )
        )
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
    return n, m, time.perf_counter() - t0


def report_timings(
    engine: Engine, factory: Any, n: int, m: int, generated: float, now: datetime
) -> None:
    from core.reports import backlog, sla, statement, worktime
    from core.reports.export import to_xlsx
    from web.i18n import translations

    polish = translations("pl").gettext

    year = Period(date.fromordinal(now.date().toordinal() - 364), now.date())
    everyone = Scope()
    with factory() as session:
        acme = session.scalar(text("SELECT id FROM clients WHERE name = 'Acme'"))
        rows: list[tuple[str, float]] = []
        for group in sla.GROUPS:
            rows.append(
                (
                    f"SLA compliance by {group}",
                    timed(lambda g=group: sla.sla_report(session, year, g, everyone))[0],
                )
            )
        for group in worktime.GROUPS:
            rows.append(
                (
                    f"work time by {group}",
                    timed(lambda g=group: worktime.worktime_report(session, year, g, everyone))[0],
                )
            )
        rows.append(
            ("backlog by age", timed(lambda: backlog.backlog_report(session, everyone, now))[0])
        )
        rows.append(
            (
                "workload by assignee",
                timed(lambda: backlog.workload_report(session, everyone, now))[0],
            )
        )
        rows.append(
            (
                "arrivals vs closures per week",
                timed(lambda: backlog.arrivals_report(session, year, everyone))[0],
            )
        )
        month = Period.month_of(now.date())
        rows.append(
            (
                "statement (Acme, this month)",
                timed(lambda: statement.statement(session, acme, month, language="pl"))[0],
            )
        )
        xlsx: list[tuple[str, float]] = []
        for label, make in (
            (
                "SLA by month, XLSX",
                lambda: to_xlsx(sla.sla_report(session, year, "month", everyone), polish),
            ),
            (
                "work time by ticket, XLSX",
                lambda: to_xlsx(
                    worktime.worktime_report(session, year, "ticket", everyone), polish
                ),
            ),
        ):
            xlsx.append((label, timed(make)[0]))

    print(
        f"\n{engine.dialect.name}, {n:,} tickets, {m:,} work log entries (generated in {generated:.0f} s)"
    )
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| report (a year, everyone) | median of 3 |\n|---|---:|")
    for label, seconds in rows + xlsx:
        print(f"| {label} | {seconds * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
