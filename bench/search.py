"""How fast is full-text search at a million tickets?

Builds a database of N tickets (default 1,000,000) over the browser tests' world, each with a
Polish subject and one inbound mail whose body is a few sentences drawn from a vocabulary of a
service desk (a few words common, most rare, one word in one ticket of ten thousand), and the
tickets' search documents (core.tickets.search) as the code builds them, written with
PostgreSQL's COPY (GIN indexes dropped during the load and built again after it).

Then it times ``core.tickets.queries.search_tickets`` as a coordinator, first page of 50 ranked
by relevance with the total, for several searches (median of 7 runs after a warm-up), and
prints a markdown table and the machine.

    .venv/bin/python bench/search.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench_search
    .venv/bin/python bench/search.py --database-url ... --reuse      # time the last database again
    .venv/bin/python bench/search.py --tickets 20000                  # SQLite, smaller
    .venv/bin/python bench/search.py --ingest 300     # what keeping the documents costs a mail

The PostgreSQL database is dropped and created again (its name must start with ``bench``).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from bench.reports import TICKET_COLUMNS, cpu_model, fresh_database, tickets, world, write  # noqa: E402
from core.db import make_engine, make_session_factory, upgrade  # noqa: E402
from core.directory.models import User  # noqa: E402
from core.tickets.queries import TicketFilter, search_tickets  # noqa: E402
from core.tickets.search import Document  # noqa: E402

DEVICES = [
    "drukarka", "drukarki", "skaner", "laptop", "komputer", "monitor", "serwer", "router",
    "przełącznik", "telefon", "projektor", "niszczarka", "klimatyzacja", "zasilacz UPS",
    "łącze internetowe", "kserokopiarka", "czytnik kart", "kamera", "access point", "dysk",
]  # fmt: skip
PROBLEMS = [
    "nie działa", "nie drukuje", "zacina papier", "nie włącza się", "głośno pracuje",
    "nie łączy się z siecią", "wyświetla błąd", "przegrzewa się", "wolno działa",
    "wymaga przeglądu", "brak tonera", "pęknięta obudowa", "nie ładuje baterii",
    "zrywa połączenie", "nie widzi dysku", "restartuje się", "miga dioda",
]  # fmt: skip
PLACES = [
    "w biurze", "na recepcji", "w magazynie", "w sali konferencyjnej", "na 2 piętrze",
    "w księgowości", "w serwerowni", "w oddziale w Gdańsku", "w Krakowie", "w Łodzi",
    "w Poznaniu", "we Wrocławiu", "w Warszawie", "w pokoju 214", "u prezesa",
]  # fmt: skip
FILLER = (
    "dzień dobry proszę o pilną interwencję od rana sytuacja się powtarza użytkownicy zgłaszają "
    "problem po aktualizacji systemu sprawdziliśmy kable i zasilanie bez zmian prosimy o "
    "kontakt telefoniczny przed przyjazdem technika numer seryjny urządzenia znajduje się na "
    "naklejce z tyłu obudowy pozdrawiam serdecznie z poważaniem zespół administracji "
    "gwarancja umowa serwisowa faktura zamówienie części zamienne wymiana bębna pasek "
    "transferowy grzałka płyta główna pamięć bateria wentylator sterownik oprogramowanie "
    "hasło konto poczta kalendarz uprawnienia dostęp zdalny VPN certyfikat licencja"
).split()
RARE = "kondensatorem"  # in one ticket of 10,000, in the body only
SEARCHES = [
    ("a common word", "drukarka"),
    ("a rare word (body only)", "kondensator"),
    ("with diacritics", "łącze"),
    ("without diacritics", "lacze"),
    ("capitals", "ŁĄCZE"),
    ("two words", "drukarka toner"),
    ("a prefix", "serw"),
    ("three words", "łodzi drukarka zacina"),
    ("two common words never together", "gdańsku piętrze"),
    ("a word in no ticket", "hulajnoga"),
    ("#number", "#123456"),
]


def texts(n: int, rnd: random.Random) -> Iterator[tuple[str, str]]:
    for i in range(n):
        device = rnd.choice(DEVICES)
        subject = f"{device.capitalize()} {rnd.choice(PROBLEMS)} {rnd.choice(PLACES)}"
        words = rnd.choices(FILLER, k=rnd.randint(20, 60))
        body = (
            f"{' '.join(words[:10])}. {rnd.choice(DEVICES)} {rnd.choice(PROBLEMS)}. "
            f"{' '.join(words[10:])}."
        )
        if i % 10_000 == 7:
            body += f" Problem z {RARE} na płycie."
        yield subject, body.capitalize()


def build(engine: Engine, factory: Any, n: int, now: datetime) -> float:
    upgrade(str(engine.url.render_as_string(hide_password=False)))
    rnd = random.Random(15)
    with factory() as session:
        w = world(session)
    generated = list(texts(n, rnd))
    t0 = time.perf_counter()
    rows = tickets(w, n, now, random.Random(16))

    def with_subjects() -> Iterable[tuple[Any, ...]]:
        for row, (subject, _body) in zip(rows, generated, strict=True):
            yield (row[0], subject, *row[2:])

    write(engine, "tickets", TICKET_COLUMNS, with_subjects())
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT t.id, t.created_at, t.requester_id, u.name, u.email, c.name "
                "FROM tickets t JOIN users u ON u.id = t.requester_id "
                "LEFT JOIN clients c ON c.id = t.client_id WHERE t.number >= :n ORDER BY t.number"
            ),
            {"n": w["next_number"]},
        ).all()
    print(f"  tickets written in {time.perf_counter() - t0:.0f} s", flush=True)

    def events() -> Iterable[tuple[Any, ...]]:
        for (tid, created, requester, *_), (_s, body) in zip(found, generated, strict=True):
            yield (tid, "email_in", created, requester, True, body, "{}")

    write(
        engine,
        "ticket_events",
        ("ticket_id", "type", "at", "author_id", "public", "body_text", "data"),
        events(),
    )
    print(f"  mails written in {time.perf_counter() - t0:.0f} s", flush=True)
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX IF EXISTS ix_ticket_search_tsv_public"))
            conn.execute(text("DROP INDEX IF EXISTS ix_ticket_search_tsv_all"))

    def documents() -> Iterable[tuple[Any, ...]]:
        # As core.tickets.search.build_documents builds them, without a query per batch.
        for (tid, _at, _r, name, email, client), (subject, body) in zip(
            found, generated, strict=True
        ):
            meta = " ".join(p for p in (name or "", email, email.split("@")[0], client or "") if p)
            row = Document(tid, subject, meta, "", body, "").row()
            yield tuple(row.values())

    write(
        engine,
        "ticket_search",
        ("ticket_id", "subject", "meta_public", "meta_private", "body_public", "body_private"),
        documents(),
    )
    print(f"  search documents written in {time.perf_counter() - t0:.0f} s", flush=True)
    if postgres:
        with engine.begin() as conn:
            conn.execute(text("SET maintenance_work_mem = '512MB'"))
            conn.execute(
                text(
                    "CREATE INDEX ix_ticket_search_tsv_public ON ticket_search "
                    "USING gin (tsv_public)"
                )
            )
            conn.execute(
                text("CREATE INDEX ix_ticket_search_tsv_all ON ticket_search USING gin (tsv_all)")
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - t0


def ingest_cost(count: int, rounds: int) -> None:
    """What keeping the documents costs per inbound mail: ``bench/profile_worker.py`` (the
    worker's ``mail.process`` in one thread, fresh database each time) with the search's
    session hooks off and on, alternating, in this one process."""
    import contextlib
    import io
    import logging

    from sqlalchemy import event
    from sqlalchemy.orm import Session

    import workers.actors
    from bench import profile_worker
    from core.tickets import search

    # Only the processing phase is compared; sending does not touch the search documents.
    workers.actors.send_outbound_mail = lambda *a, **k: None  # type: ignore[assignment]
    logging.disable(logging.WARNING)
    hooks = (
        ("after_flush", search._collect),
        ("after_flush_postexec", search._rebuild_after_flush),
    )
    wall: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_search_ingest"
    for _ in range(rounds):
        for on in (False, True):
            for name, fn in hooks:
                if on and not event.contains(Session, name, fn):
                    event.listen(Session, name, fn)
                elif not on and event.contains(Session, name, fn):
                    event.remove(Session, name, fn)
            out = io.StringIO()
            sys.argv = ["profile_worker", "--count", str(count), "--database-url", url]
            with contextlib.redirect_stdout(out):
                profile_worker.main()
            line = next(x for x in out.getvalue().splitlines() if x.startswith("mail.process"))
            figures = [float(x) for x in re.findall(r"([0-9.]+) ms/mail", line)]
            wall[on].append(figures[0])
            cpu[on].append(figures[1])
            print(f"  search hooks {'on ' if on else 'off'}: {line}", flush=True)
    print(f"\n| mail.process per mail ({count} mails, median of {rounds}) | wall | CPU |")
    print("|---|---:|---:|")
    for on, label in ((False, "search documents not kept"), (True, "kept (issue 15)")):
        print(
            f"| {label} | {statistics.median(wall[on]):.1f} ms | {statistics.median(cpu[on]):.1f} ms |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ingest",
        type=int,
        metavar="MAILS",
        help="instead: the cost per inbound mail of keeping the documents (PostgreSQL)",
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--reuse", action="store_true", help="time the database a previous run built, as it is"
    )
    args = parser.parse_args()
    if args.ingest:
        ingest_cost(args.ingest, 5)
        return
    url = args.database_url if args.reuse else fresh_database(args.database_url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    generated = 0.0 if args.reuse else build(engine, factory, args.tickets, now)
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM tickets")).scalar_one())
    print(f"{n:,} tickets ready ({generated:.0f} s to build); timing", flush=True)
    rows = []
    with factory() as session:
        coordinator = session.scalar(select(User).where(User.role == "coordinator"))
        assert coordinator is not None
        for label, q in SEARCHES:
            f = TicketFilter(q=q, state="all", per_page=50)
            search_tickets(session, coordinator, f, now)  # warm-up
            timings, page = [], None
            for _ in range(args.runs):
                t0 = time.perf_counter()
                page = search_tickets(session, coordinator, f, now)
                timings.append(time.perf_counter() - t0)
            assert page is not None
            hits = f"more than {page.total:,}" if page.more else f"{page.total:,}"
            rows.append((label, q, hits, statistics.median(timings), max(timings)))
            session.rollback()
    print()
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{engine.dialect.name} {'.'.join(map(str, engine.dialect.server_version_info or ()))}"
    )
    print(f"{n:,} tickets, each with one mail; first page of 50 with the total, as a coordinator\n")
    print(f"| search | query | hits | median of {args.runs} | slowest |\n|---|---|---:|---:|---:|")
    for label, q, total, median, slowest in rows:
        print(f"| {label} | `{q}` | {total} | {median * 1000:.0f} ms | {slowest * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
