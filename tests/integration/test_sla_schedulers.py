"""Two schedulers, one Redis broker, one PostgreSQL: every SLA warning and breach is recorded
and mailed exactly once, even with a lost broker message (issue 3, "Warnings and breaches").

Time is injected (FrozenClock) into the schedulers and the actors, so the test moves it
instead of sleeping; the SMTP relay is a real aiosmtpd sink.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.clock import FrozenClock
from core.db import unit_of_work
from core.mail.models import OutboundMail
from core.tickets import services as svc
from core.tickets.models import Ticket, TicketEvent
from tests.factories import at, build_world
from tests.smtp_sink import SmtpSink, smtp_sink_fixture  # noqa: F401
from workers.actors import register_actors
from workers.broker import install_dispatcher, make_broker, uninstall_dispatcher
from workers.scheduler import Scheduler, default_tasks

START = at("2026-11-23 08:00")  # Monday 09:00 in Warsaw


@pytest.fixture
def redis_broker(redis_url: str) -> Iterator[dramatiq.Broker]:
    import redis

    namespace = f"pulpit-test-{uuid.uuid4().hex[:12]}"
    broker = make_broker(redis_url, namespace=namespace)
    yield broker
    broker.close()
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{namespace}*"))
    if keys:
        client.delete(*keys)
    client.close()


def settle(
    factory: sessionmaker[Session], schedulers: list[Scheduler], sink: SmtpSink, mails: int
) -> None:
    """Tick both schedulers at once, a few rounds, until the outbox has sent ``mails``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        threads = [threading.Thread(target=s.tick) for s in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.3)
        with factory() as s:
            sent = s.scalars(select(OutboundMail).where(OutboundMail.state == "sent")).all()
        if len(sent) >= mails and len(sink.messages) >= mails:
            time.sleep(1.0)  # room for a double to show up, should there be one
            return
    raise AssertionError(f"only {len(sink.messages)} of {mails} mails arrived")


@pytest.mark.postgres
@pytest.mark.redis
def test_two_schedulers_notify_each_deadline_once(
    pg_factory: sessionmaker[Session],
    redis_broker: dramatiq.Broker,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    clock = FrozenClock(START)
    settings = Settings(
        data_dir=tmp_path,
        outbound_smtp_url=smtp_sink.url,
        public_url="https://desk.example",
        secret_key="t",
    )
    with unit_of_work(pg_factory) as session:
        world = build_world(session)
        ticket = svc.open_ticket(
            session,
            svc.NewTicket(
                subject="Awaria",
                requester=world.users["client"],
                contract=world.acme_contract,
                at=START,
            ),
        )
        svc.assign(
            session,
            ticket,
            actor=world.users["coordinator"],
            assignee=world.users["technician"],
            subcontractor=None,
            at=START,
        )
        ticket_id = ticket.id
    register_actors(redis_broker, pg_factory, settings, clock=clock)
    install_dispatcher(redis_broker)
    worker = dramatiq.Worker(redis_broker, worker_threads=4, worker_timeout=100)
    worker.start()
    schedulers = [Scheduler(pg_factory, default_tasks(settings), clock=clock) for _ in range(2)]
    try:
        # 1h40m of the 2h reaction used: the warning, to the assignee and the coordinator.
        clock.advance(minutes=100)
        settle(pg_factory, schedulers, smtp_sink, mails=2)
        # The breach at 2h.
        clock.advance(minutes=20)
        for s in schedulers:
            s._next_due.clear()  # the frozen clock moved; let every task run at this tick
        settle(pg_factory, schedulers, smtp_sink, mails=4)
        # A lost broker message: claim the ticket, drop the job; after the lease it comes back.
        clock.advance(hours=20)  # Tue 07:00 Warsaw: past 80% of the 8h resolution (Mon 15:24)
        from core.sla.watch import LEASE, claim_due

        with unit_of_work(pg_factory) as session:
            assert claim_due(session, clock()) == [ticket_id]  # and nobody sends the job
        for s in schedulers:
            s._next_due.clear()
        for s in schedulers:
            s.tick()
        with pg_factory() as session:
            kinds = [
                e.data["kind"]
                for e in session.scalars(
                    select(TicketEvent).where(
                        TicketEvent.ticket_id == ticket_id, TicketEvent.type == "sla"
                    )
                )
            ]
        assert kinds == ["warning", "breach"]  # leased: not yet re-claimed
        clock.advance(seconds=LEASE.total_seconds() + 1)
        for s in schedulers:
            s._next_due.clear()
        settle(pg_factory, schedulers, smtp_sink, mails=6)
    finally:
        worker.stop()
        uninstall_dispatcher()

    with pg_factory() as session:
        events = session.scalars(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id, TicketEvent.type == "sla")
            .order_by(TicketEvent.at)
        ).all()
        assert [(e.data["clock"], e.data["kind"]) for e in events] == [
            ("reaction", "warning"),
            ("reaction", "breach"),
            ("resolution", "warning"),
        ]
        t = session.get(Ticket, ticket_id)
        assert t is not None and t.ever_breached
    received: list[tuple[str, str]] = []
    for m in smtp_sink.messages:
        msg = m.message
        received.append((str(msg["To"]), str(msg["Subject"])))
        assert msg["Auto-Submitted"] == "auto-generated"
        assert f"[#{t.number}]" in str(msg["Subject"])
    assert len(received) == len(set(received)) == 6
    assert {to for to, _ in received} == {"tech@support.example", "coord@support.example"}
