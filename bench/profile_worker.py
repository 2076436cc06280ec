"""Where does a worker's time per inbound mail go? One process, no broker, no SMTP.

Stores ``--count`` mails of ``bench/ingest.py``'s shape straight into a fresh database (the
gateway's ``store_inbound``), then runs, in this one thread and in order:

1. ``mail.process`` for every stored mail (``mailgw.process.run_process``), and
2. ``mail.send`` for every outbox row that processing created, with ``null://`` outbound mail,

and prints milliseconds per mail (wall and CPU) for each phase, so a change to the worker's
hot path can be measured in isolation from the machine's other load. ``--profile FILE``
writes a cProfile of phase 1 in CPU time, so waits on PostgreSQL do not show (read it with
``python -m pstats FILE``, or ``snakeviz``). Phase 1 runs with the garbage collector as a
worker has it once started (``pulpit.runtime.settle_heap``), and the collector's runs and CPU
in it are printed too.

    .venv/bin/python bench/profile_worker.py --count 500
    .venv/bin/python bench/profile_worker.py --count 1000 --gc default   # Python's own collector
    .venv/bin/python bench/profile_worker.py --database-url sqlite:////tmp/p.db --count 300

The database is created (PostgreSQL: dropped first) and left for inspection.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import Seed, build_mail  # noqa: E402
from config.settings import Settings  # noqa: E402


def _fresh_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


class _Collections:
    """The garbage collector's runs while it is listed in ``gc.callbacks``: how many of each
    generation, and their CPU time."""

    def __init__(self) -> None:
        self.runs = [0, 0, 0]
        self.cpu = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.runs[info["generation"]] += 1
            self.cpu += time.process_time() - self._started

    def describe(self) -> str:
        return ", ".join(f"{n} of generation {g}" for g, n in enumerate(self.runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/pulpit_profile_worker",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=Settings().mail_batch,
        help="mails one job processes together (PULPIT_MAIL_BATCH, default as the setting's;"
        " 1: each alone, the old path)",
    )
    parser.add_argument(
        "--statements",
        type=int,
        default=0,
        metavar="N",
        help="also print the N most frequent statement shapes of the processing phase, per mail",
    )
    parser.add_argument(
        "--profile",
        help="write a cProfile (CPU time) of the processing phase here (FILE.send: the sending phase)",
    )
    parser.add_argument(
        "--gc",
        choices=("settled", "default"),
        default="settled",
        help="settled: the garbage collector as a worker has it once started "
        "(pulpit.runtime.settle_heap, the default); default: Python's own",
    )
    args = parser.parse_args()

    from sqlalchemy import event, select, update

    from core import db
    from core.blobs import DirectoryBlobStore
    from core.configuration import apply_config_file
    from core.contracts import snapshot as config_snapshot
    from core.db import unit_of_work
    from core.mail.inbound import store_inbound
    from core.mail.models import InboundMessage, OutboundMail
    from core.notify import notifications
    from core.tickets.models import Ticket
    from mailgw.process import run_batch, run_process
    from workers.actors import send_outbound_mail

    _fresh_database(args.database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="pulpit-profile-"))
    engine = db.make_engine(args.database_url)
    db.upgrade(engine)
    factory = db.make_session_factory(engine)
    notifications.configure(
        factory,
        notifications.NotifyConfig(mail_domain="serwis.example", public_url="http://localhost"),
    )
    db.set_dispatcher(None)  # jobs stay in the database; this script runs them itself
    # As in a worker process on PostgreSQL (pulpit.runtime.database): the configuration
    # snapshot is kept current by LISTEN/NOTIFY, not by a read per transaction.
    config_snapshot.watch(engine)
    blobs = DirectoryBlobStore(data_dir / "blobs")
    root = Path(__file__).resolve().parents[1]
    with db.unit_of_work(factory) as session:
        apply_config_file(session, root / "config/examples/demo.yaml", actor="bench")

    # Real settings, not a stand-in: send_outbound_mail reads more of them over time
    # (blob_dir for attachments since issue 14), and a stand-in broke the send phase.
    settings = Settings(
        outbound_smtp_url="null://",
        mail_domain="serwis.example",
        public_url="http://localhost",
        data_dir=data_dir,
    )

    # Seeds to reply to: the first tenth of the mails, processed before the timed part.
    run = str(int(time.time()))
    seeds_n = max(args.count // 10, 1)
    seed_mails = [build_mail(run, 100_000 + n, None, []) for n in range(seeds_n)]
    with db.unit_of_work(factory) as session:
        ids = [
            store_inbound(session, m.raw, source="smtp", blobs=blobs, envelope_to=[m.to]).id
            for m in seed_mails
        ]
    for inbound_id in ids:
        run_process(factory, inbound_id, blobs=blobs, mail_domain="serwis.example")
    seeds = []
    with factory() as session:
        for m, inbound_id in zip(seed_mails, ids, strict=True):
            row = session.get(InboundMessage, inbound_id)
            ticket = session.get(Ticket, row.ticket_id) if row and row.ticket_id else None
            if ticket is not None:
                seeds.append(
                    Seed(ticket.number, ticket.subject, m.sender, "Klient", m.to, row.message_id)
                )
        first_outbox = session.scalar(select(OutboundMail.id).order_by(OutboundMail.id.desc()))

    with db.unit_of_work(factory) as session:
        ids = [
            store_inbound(session, m.raw, source="smtp", blobs=blobs, envelope_to=[m.to]).id
            for m in (build_mail(run, n, None, seeds) for n in range(args.count))
        ]
    del seed_mails, seeds  # a worker holds no mail but the ones it processes
    gc.collect()

    if args.gc == "settled":
        from pulpit.runtime import settle_heap

        settle_heap()  # as a worker does once started (pulpit.runtime._warm_up)
    collector = _Collections()
    gc.callbacks.append(collector)
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    statements = [0]
    shapes: dict[str, int] = {}

    def count(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        statements[0] += 1
        if args.statements:
            shape = " ".join(sql.split())[:150]
            shapes[shape] = shapes.get(shape, 0) + 1

    event.listen(engine, "before_cursor_execute", count)
    states: dict[str, int] = {}
    for inbound_id in ids:
        # One job per stored mail, as the gateway sends them: with batching, most jobs find
        # their mail done by an earlier job's batch (that read is part of the cost).
        state = run_batch(
            factory, inbound_id, blobs=blobs, mail_domain="serwis.example", batch=args.batch
        )
        states[state] = states.get(state, 0) + 1
    event.remove(engine, "before_cursor_execute", count)
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    process_wall, process_cpu = time.perf_counter() - wall, time.process_time() - cpu
    gc.callbacks.remove(collector)

    with unit_of_work(factory) as session:
        outbox = list(
            session.scalars(select(OutboundMail.id).where(OutboundMail.id > (first_outbox or 0)))
        )
        # The seeds' mails are not part of the timed phase: were they left pending, a job
        # would take them along in its batch (core.mail.outbox.claim_batch).
        session.execute(
            update(OutboundMail)
            .where(OutboundMail.id <= (first_outbox or 0), OutboundMail.state == "pending")
            .values(state="sent")
        )
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for outbound_id in outbox:
        send_outbound_mail(factory, settings, outbound_id)  # type: ignore[arg-type]
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile + ".send")
    send_wall, send_cpu = time.perf_counter() - wall, time.process_time() - cpu

    config_snapshot.unwatch(engine)
    n = len(ids)
    print(f"database: {engine.dialect.name}, {n} mails, batch {args.batch}, jobs {states}")
    print(
        f"mail.process: {process_wall / n * 1000:.1f} ms/mail wall, "
        f"{process_cpu / n * 1000:.1f} ms/mail CPU ({n / process_wall:.0f} mails/s), "
        f"{statements[0] / n:.1f} SQL statements/mail"
    )
    print(
        f"  garbage collector ({args.gc}, thresholds {gc.get_threshold()}): "
        f"{collector.describe()}, {collector.cpu / n * 1000:.2f} ms/mail CPU"
    )
    for shape, times in sorted(shapes.items(), key=lambda kv: -kv[1])[: args.statements]:
        print(f"  {times / n:5.2f}/mail  {shape}")
    if outbox:
        print(
            f"mail.send: {len(outbox)} mails out, {send_wall / len(outbox) * 1000:.1f} ms each "
            f"wall, {send_cpu / len(outbox) * 1000:.1f} ms CPU; "
            f"{send_wall / n * 1000:.1f} ms per inbound mail"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
