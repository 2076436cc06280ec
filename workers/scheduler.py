"""The periodic scheduler: runs registered tasks every so often, in a thread or a process.

The database, not the broker, is the source of truth for deadlines (Polar): a task looks at the
database for what is due at ``now`` and claims it, so a restart, a lost message or a second
scheduler costs at most a repeated look. Tasks are plain callables ``fn(session_factory, now)``;
the outbox sweep is one of :func:`default_tasks`, and the SLA scan will join it.

The clock is injected, so tests drive :meth:`Scheduler.tick` with a ``core.clock.FrozenClock``
instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import BlobStore, open_blob_store
from core.clock import Clock, utcnow
from core.db import enqueue, unit_of_work
from core.mail.inbound import PROCESS_ACTOR
from core.mail.models import InboundMessage
from core.mail.outbox import SEND_ACTOR, due_for_sweep, release_stale
from core.notify.delivery_failures import tell_staff
from core.privacy.retention import run_retention
from core.sla.watch import CHECK_ACTOR, claim_due
from core.tickets import tallies
from workers.housekeeping import compact_ticket_tallies, purge_expired_sessions

log = logging.getLogger(__name__)

TaskFn = Callable[[sessionmaker[Session], datetime], Any]

DEFAULT_TICK_SECONDS = 2.0
MAIL_SWEEP_SECONDS = 15.0
SLA_SCAN_SECONDS = 5.0
INBOUND_SWEEP_SECONDS = 20.0
# A received mail whose job has not run after this long lost its job (broker restart).
INBOUND_STALE_SECONDS = 60.0
RETENTION_SECONDS = 3600.0


@dataclass(frozen=True)
class PeriodicTask:
    """A task the scheduler runs every ``interval_seconds`` (first run: at the first tick)."""

    name: str
    interval_seconds: float
    fn: TaskFn


def sweep_outbox(session_factory: sessionmaker[Session], now: datetime) -> list[int]:
    """Send ``mail.send`` again for outbox rows that are due; returns their ids.

    Retries after a temporary failure, jobs a broker lost (``memory://`` across a restart)
    and rows a dead worker left ``sending`` all come back here. The jobs go through the same
    after-commit path as any other (``core.db.enqueue``), so they leave only once the rows are
    marked as re-enqueued; a doubled job is harmless, ``mail.send`` claims before it sends.
    """
    with unit_of_work(session_factory) as session:
        for failure in release_stale(session, now):
            tell_staff(session, failure)
        ids = due_for_sweep(session, now)
        for outbound_id in ids:
            enqueue(session, SEND_ACTOR, outbound_id=outbound_id)
    if ids:
        log.info("outbox sweep: %d mail(s) due, sent to mail.send", len(ids))
    return ids


def sweep_inbound(session_factory: sessionmaker[Session], now: datetime) -> list[int]:
    """Send ``mail.process`` again for stored mail still ``received`` after a minute.

    Its job was lost (``memory://`` broker restart, a worker killed before the ack) or the
    previous attempt failed and counted itself on the row; ``mail.process`` returns early for
    anything already done, so a doubled job is harmless.
    """
    cutoff = now - timedelta(seconds=INBOUND_STALE_SECONDS)
    with unit_of_work(session_factory) as session:
        ids = list(
            session.scalars(
                select(InboundMessage.id)
                .where(InboundMessage.state == "received", InboundMessage.received_at < cutoff)
                .order_by(InboundMessage.id)
                .limit(500)
            )
        )
        for inbound_id in ids:
            enqueue(session, PROCESS_ACTOR, inbound_id=inbound_id)
    if ids:
        log.info("inbound sweep: %d mail(s) still received, sent to %s", len(ids), PROCESS_ACTOR)
    return ids


def scan_sla(session_factory: sessionmaker[Session], now: datetime) -> list[int]:
    """Claim the tickets whose SLA check is due and send one ``sla.check_ticket`` each.

    Ticks every few seconds, so a deadline is noticed within the 30 s the brief asks; the
    claim is a conditional update, so two schedulers never take the same ticket.
    """
    with unit_of_work(session_factory) as session:
        ids = claim_due(session, now)
        for ticket_id in ids:
            enqueue(session, CHECK_ACTOR, ticket_id=ticket_id)
    if ids:
        log.info("SLA scan: %d ticket(s) due, sent to %s", len(ids), CHECK_ACTOR)
    return ids


def anonymise_expired(
    session_factory: sessionmaker[Session], now: datetime, *, blobs: BlobStore, days: int
) -> list[int]:
    """Anonymise closed tickets older than ``days`` (``PULPIT_RETENTION_DAYS``); their numbers.
    A run takes a batch (``core.privacy.retention.BATCH``); a backlog drains hour by hour."""
    with unit_of_work(session_factory) as session:
        run = run_retention(session, blobs=blobs, now=now, days=days)
    if run.tickets:
        log.info("retention: %d closed ticket(s) anonymised", len(run.tickets))
    return run.tickets


def default_tasks(
    settings: Settings, *, catalogue: Callable[[str], Callable[[str], str]] | None = None
) -> list[PeriodicTask]:
    """The tasks every Pulpit instance runs (retention only when ``PULPIT_RETENTION_DAYS``
    is set, the statements only with ``PULPIT_MONTHLY_STATEMENTS``). ``catalogue`` gives the
    console's translations of a language, for the statements' spreadsheets."""
    tasks = [
        PeriodicTask("auth.purge_sessions", 3600.0, purge_expired_sessions),
        PeriodicTask("mail.sweep", MAIL_SWEEP_SECONDS, sweep_outbox),
        PeriodicTask("sla.scan_due", SLA_SCAN_SECONDS, scan_sla),
        PeriodicTask("mail.sweep_inbound", INBOUND_SWEEP_SECONDS, sweep_inbound),
        PeriodicTask("tickets.compact_tallies", tallies.COMPACT_SECONDS, compact_ticket_tallies),
    ]
    if settings.retention_days > 0:

        def retention(session_factory: sessionmaker[Session], now: datetime) -> list[int]:
            # The store on the scheduler's own database (PULPIT_BLOB_URL=database:).
            blobs = open_blob_store(settings.blob_url, settings.blob_dir, session_factory)
            return anonymise_expired(
                session_factory, now, blobs=blobs, days=settings.retention_days
            )

        tasks.append(PeriodicTask("privacy.retention", RETENTION_SECONDS, retention))
    if settings.monthly_statements:
        from workers.statements import STATEMENTS_SECONDS, send_monthly_statements

        statements = partial(send_monthly_statements, settings=settings, catalogue=catalogue)
        tasks.append(PeriodicTask("reports.statements", STATEMENTS_SECONDS, statements))
    return tasks


class Scheduler:
    """Runs :class:`PeriodicTask` s when they are due; one failing task never stops the others."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        tasks: Sequence[PeriodicTask],
        *,
        clock: Clock = utcnow,
        tick_seconds: float = DEFAULT_TICK_SECONDS,
        stop_event: threading.Event | None = None,
    ) -> None:
        names = [task.name for task in tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"scheduled task names must be unique: {', '.join(duplicates)}")
        self.session_factory = session_factory
        self.tasks = list(tasks)
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.stop_event = stop_event or threading.Event()
        self._next_due: dict[str, datetime] = {}
        self._thread: threading.Thread | None = None

    def tick(self) -> list[str]:
        """Run every task that is due now; returns the names of the tasks that ran."""
        ran: list[str] = []
        for task in self.tasks:
            if self.stop_event.is_set():
                break
            now = self.clock()
            due = self._next_due.get(task.name)
            if due is not None and now < due:
                continue
            ran.append(task.name)
            try:
                task.fn(self.session_factory, now)
            except Exception:
                # Logged and skipped until its next interval, so a broken task neither stops
                # the others nor spins in a tight loop.
                log.exception("scheduled task %s failed", task.name)
            self._next_due[task.name] = now + timedelta(seconds=task.interval_seconds)
        return ran

    def run(self) -> None:
        """Tick until the stop event is set: the main loop of ``pulpit scheduler``."""
        log.info(
            "scheduler running %d task(s): %s",
            len(self.tasks),
            ", ".join(task.name for task in self.tasks) or "(none)",
        )
        while not self.stop_event.is_set():
            self.tick()
            self.stop_event.wait(self.tick_seconds)
        log.info("scheduler stopped")

    def start(self) -> Scheduler:
        """Run the loop in a daemon thread (inside ``pulpit serve``)."""
        if self._thread is not None:
            raise RuntimeError("the scheduler is already started")
        self._thread = threading.Thread(target=self.run, name="pulpit-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """Ask the loop to stop and wait for the task in progress to finish."""
        self.stop_event.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_seconds)
