"""How does the cost of one reply grow with the timeline of the ticket it answers?

Creates the PostgreSQL database ``pulpit_long_ticket`` (dropped first), the test world
(``tests.factories.build_world``) and one ticket opened by mail, then grows that ticket's
timeline to each size given (public comments of about 200 characters) and processes five
replies to it, each alone (``mail.process`` with a batch of one, as a quiet desk would),
printing the best CPU time of the five and the mean CPU time of PostgreSQL's processes
meanwhile (their clock ticks at 10 ms, hence the mean). ``--profile N`` adds a cProfile of one more reply
at the last size, limited to Pulpit's own functions.

    .venv/bin/python bench/long_ticket.py [--sizes 1 50 200 800] [--profile 25]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, select, text  # noqa: E402

from core.blobs import DirectoryBlobStore  # noqa: E402
from core.db import make_engine, make_session_factory, unit_of_work, upgrade  # noqa: E402
from core.mail.inbound import store_inbound  # noqa: E402
from core.tickets.models import Ticket  # noqa: E402
from core.tickets.timeline import append_event  # noqa: E402
from mailgw.process import run_batch  # noqa: E402
from tests.factories import build_world  # noqa: E402
from tests.mail_builders import DOMAIN, NOW, build  # noqa: E402

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DATABASE = "pulpit_long_ticket"


def postgres_cpu() -> float:
    """Seconds of CPU used so far by this machine's PostgreSQL processes (Linux /proc; the
    clock ticks at 100 Hz, so a figure is good to 10 ms a process)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
        except OSError:
            continue  # gone meanwhile
        if "(postgres" in fields[0] or "(postmaster" in fields[0]:
            values = fields[1].split()
            total += int(values[11]) + int(values[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 50, 200, 800])
    parser.add_argument("--server", default=SERVER, help="PostgreSQL URL without a database")
    parser.add_argument("--profile", type=int, default=0, help="lines of cProfile to print")
    args = parser.parse_args()

    admin = create_engine(f"{args.server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    admin.dispose()
    engine = make_engine(f"{args.server}/{DATABASE}")
    upgrade(engine)
    factory = make_session_factory(engine)
    blobs = DirectoryBlobStore(Path(tempfile.mkdtemp(prefix="pulpit-long-ticket-")))

    def process(subject: str, message_id: str, **headers: str) -> str:
        with unit_of_work(factory) as session:
            raw = build(subject=subject, message_id=message_id, **headers)
            inbound_id = store_inbound(session, raw, source="smtp", blobs=blobs).id
        return run_batch(
            factory, inbound_id, blobs=blobs, mail_domain=DOMAIN, clock=lambda: NOW, batch=1
        )

    with unit_of_work(factory) as session:
        build_world(session)
    process("Awaria", "<root@client.example>")
    events = 1
    print("| events on the ticket | CPU per reply, best of 5 | PostgreSQL's CPU, mean of 5 |")
    print("| ---: | ---: | ---: |")
    for size in args.sizes:
        with unit_of_work(factory) as session:
            ticket = session.scalars(select(Ticket)).one()
            for n in range(max(size - events, 0)):
                append_event(
                    session,
                    ticket,
                    "comment",
                    author=None,
                    # Before the replies, as a thread's earlier comments are.
                    at=NOW - timedelta(hours=1) + timedelta(seconds=n),
                    public=True,
                    body_text=f"komentarz {n} " * 20,
                )
        events = max(events, size)
        times, database = [], []
        for k in range(5):
            started, started_pg = time.process_time(), postgres_cpu()
            process(
                "Re: Awaria", f"<r{size}-{k}@client.example>", in_reply_to="<root@client.example>"
            )
            times.append(time.process_time() - started)
            database.append(postgres_cpu() - started_pg)
            events += 1
        pg_mean = sum(database) / len(database)
        print(f"| {size} | {min(times) * 1000:.1f} ms | {pg_mean * 1000:.0f} ms |")
    if args.profile:
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        process("Re: Awaria", "<profiled@client.example>", in_reply_to="<root@client.example>")
        profile.disable()
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(r"(core|mailgw)/", args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
