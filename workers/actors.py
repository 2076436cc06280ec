"""The Dramatiq actors, declared on a given broker instead of at import time.

Actors are named ``domain.verb`` (``system.ping``, ``mail.send``, later ``sla.scan_due``) and
are always sent by that name, after the sender's transaction commits. Each actor takes ids or
keys, not objects, opens its own unit of work, re-reads the state and returns early when the
work is already done: a message may arrive twice (a worker dies before the ack, a sweep
re-sends it), so running it twice must change nothing (Polar's ``server/polar/worker``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dramatiq
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.audit import JobRun
from core.clock import Clock, utcnow
from core.db import DoneRecently, configure_secret_key, unit_of_work
from core.mail.models import OutboundMail
from core.mail.outbox import (
    SEND_BATCH,
    claim_batch,
    mark_failed,
    mark_retry,
    mark_sent_many,
    release,
)
from core.notify.delivery_failures import tell_staff
from mailgw.compose import OutgoingMail
from mailgw.outbound import (
    PermanentDeliveryError,
    RelayConfigurationError,
    RelayUnavailableError,
    TemporaryDeliveryError,
    build_outgoing,
    render,
    send,
)

log = logging.getLogger(__name__)

SYSTEM_QUEUE = "system"
SLA_QUEUE = "sla"
MAIL_QUEUE = "mail"
MAIL_IN_QUEUE = "mail_in"


def record_ping(session_factory: sessionmaker[Session], key: str) -> bool:
    """Record that ``system.ping`` ran for ``key``; False when it had already run.

    Used by the broker tests and by health checks to prove that a job went through the whole
    path: commit, dispatch, broker, worker, database.
    """
    try:
        with unit_of_work(session_factory) as session:
            done = session.scalar(
                select(JobRun.id).where(JobRun.actor == "system.ping", JobRun.key == key)
            )
            if done is not None:
                log.info("system.ping %s: already recorded, nothing to do", key)
                return False
            session.add(JobRun(actor="system.ping", key=key))
    except IntegrityError:
        # Two deliveries of the same message raced past the check above; the unique
        # (actor, key) constraint let exactly one of them in, which is the outcome we want.
        log.info("system.ping %s: recorded concurrently by another delivery", key)
        return False
    log.info("system.ping %s: recorded", key)
    return True


@dataclass
class _Ready:
    """A claimed row rendered and built, waiting for the relay."""

    id: int
    message_id: str
    to: str
    attempt: int
    subject: str
    message: OutgoingMail
    outcome: str = "untried"
    error: str | None = None
    # Set when the failure was the relay's, not this message's: the rest of the batch waits.
    stops_batch: bool = False


# The outbox rows this process's batches handled, so their own jobs end without a statement.
_sent_here = DoneRecently()


def send_outbound_mail(
    session_factory: sessionmaker[Session],
    settings: Settings,
    outbound_id: int,
    *,
    also: Sequence[int] = (),
    clock: Clock = utcnow,
    batch: int = SEND_BATCH,
) -> str:
    """Send one outbox row (and ``also``, the rows its job was sent for with it), and the due
    rows it can take along; returns ``outbound_id``'s outcome.

    The outcome is ``sent``, ``retry``, ``failed`` or ``skipped``. Three steps: the claim
    commits first (:func:`_claim`, :func:`core.mail.outbox.claim_batch`), so while the relay is
    talking the rows are visibly ``sending``: a second delivery of a job finds nothing to claim,
    and a worker that dies here leaves stale ``sending`` rows that the scheduler's sweep puts
    back (``core.mail.outbox.release_stale``). Then each mail goes over the thread's kept relay
    connection (:func:`_deliver`), and the outcomes are recorded in one unit of work afterwards
    (:func:`_record`).

    Up to ``batch`` rows per job: a busy outbox then costs a claim, a render and an outcome
    per mail instead of a transaction of each. A commit's outgoing mails share one job
    (:func:`core.mail.outbox.merge_send_jobs`), and the jobs of rows taken along find them
    sent with one read.
    """
    if all(_sent_here.take(session_factory, one) is not None for one in (outbound_id, *also)):
        # All of them sent (or failed for good) by this process's batches a moment ago: what
        # the claim's first read would find, without reading it.
        return "skipped"
    claimed = _claim(session_factory, settings, outbound_id, also, clock=clock, batch=batch)
    if claimed is None:
        return "skipped"
    ready, own = claimed
    interrupted = _deliver(settings, ready)
    if not ready:
        return own
    _record(session_factory, ready, clock=clock)
    # Only rows done for good: one given back or to be retried is its own job's to send.
    done = {m.id: m.outcome for m in ready if m.outcome in ("sent", "failed")}
    _sent_here.add(session_factory, done, skip={outbound_id, *also})
    if interrupted is not None:
        raise interrupted
    for m in ready:
        if m.id == outbound_id:
            return m.outcome
    return own


def _claim(
    session_factory: sessionmaker[Session],
    settings: Settings,
    outbound_id: int,
    also: Sequence[int],
    *,
    clock: Clock,
    batch: int,
) -> tuple[list[_Ready], str] | None:
    """Claim the row and the due rows it takes along, and build their messages; commits.

    Returns (the mails ready for the relay, the own row's outcome if it never got that far),
    or None when there was nothing to claim. A mail that cannot be rendered fails here for
    good, and the staff are told in the same transaction.
    """
    from core.blobs import open_blob_store

    blobs = open_blob_store(settings.blob_url, settings.blob_dir, session_factory)
    ready: list[_Ready] = []
    own = "skipped"
    with unit_of_work(session_factory) as session:
        rows = claim_batch(session, outbound_id, clock(), limit=batch, also=also)
        if not rows:
            # Already sent (perhaps in another job's batch), being sent, or backing off.
            log.debug("mail.send %s: not ours to send now", outbound_id)
            return None
        for row in rows:
            try:
                rendered = render(row.template, row.language, row.context)
                message = build_outgoing(row, rendered, settings, blobs.read)
            except Exception as exc:
                # A template or context bug: the same input fails the same way on every retry.
                log.exception(
                    "mail %s to %s: could not render %r", row.message_id, row.to_addr, row.template
                )
                failure = mark_failed(row, f"could not render {row.template!r}: {exc}", now=clock())
                tell_staff(session, failure)
                if row.id == outbound_id:
                    own = "failed"
                continue
            ready.append(
                _Ready(row.id, row.message_id, row.to_addr, row.attempts, rendered.subject, message)
            )
    return ready, own


def _deliver(settings: Settings, ready: list[_Ready]) -> BaseException | None:
    """Hand each mail to the relay, setting its outcome; no database work here.

    Once the relay itself failed, the rest wait for a retry without being tried. Returns what
    interrupted the worker (it is re-raised after the outcomes are recorded), else None.
    """
    relay_down: str | None = None
    for mail in ready:
        if relay_down is not None:
            # The relay failed on an earlier mail of this batch; this one would fail alike.
            mail.outcome, mail.error = "retry", relay_down
            continue
        try:
            mail.outcome, mail.error = _send_one(settings, mail)
        except BaseException as exc:
            # The worker is stopping (Dramatiq interrupts its threads): record what went and
            # give the rest back now, rather than leave them to the stale-claim sweep.
            return exc
        if mail.outcome == "retry" and mail.error is not None and mail.stops_batch:
            relay_down = mail.error
    return None


def _record(session_factory: sessionmaker[Session], ready: list[_Ready], *, clock: Clock) -> None:
    """Write every outcome in one unit of work; failures are told to the staff in it."""
    with unit_of_work(session_factory) as session:
        now = clock()
        sent = [m for m in ready if m.outcome == "sent"]
        mark_sent_many(session, [m.id for m in sent], now)
        for m in sent:
            log.info("mail %s to %s: sent (attempt %d)", m.message_id, m.to, m.attempt)
        for m in ready:
            if m.outcome == "sent":
                continue
            failed = session.get(OutboundMail, m.id)
            if failed is None:
                log.warning("mail %s: its outbox row %s is gone", m.message_id, m.id)
                continue
            if m.outcome == "untried":
                # The one being sent when the worker stopped may have reached the relay: it
                # goes again (at least once), with the same Message-ID.
                release(failed)
            elif m.outcome == "failed":
                tell_staff(
                    session, mark_failed(failed, m.error or "refused", now=now, subject=m.subject)
                )
            elif (gave_up := mark_retry(failed, m.error or "unknown error", now)) is not None:
                tell_staff(session, gave_up)
                log.error(
                    "mail %s to %s: gave up after %d attempts: %s",
                    m.message_id,
                    m.to,
                    m.attempt,
                    m.error,
                )
                m.outcome = "failed"
            else:
                log.info(
                    "mail %s to %s: next attempt at %s", m.message_id, m.to, failed.next_attempt_at
                )


def _send_one(settings: Settings, mail: _Ready) -> tuple[str, str | None]:
    """Hand one mail to the relay: (``sent`` | ``retry`` | ``failed``, the error)."""
    message_id, to, attempt = mail.message_id, mail.to, mail.attempt
    try:
        send(settings, mail.message)
    except PermanentDeliveryError as exc:
        # The recipient's side: a wrong or closed address. Staff see it on the timeline.
        log.warning("mail %s to %s refused for good, not retried: %s", message_id, to, exc)
        return "failed", str(exc)
    except RelayConfigurationError as exc:
        # The operator's side: nothing the recipient did, and every mail will fail alike.
        log.error(
            "mail %s to %s: check PULPIT_OUTBOUND_SMTP_URL (attempt %d): %s",
            message_id,
            to,
            attempt,
            exc,
        )
        mail.stops_batch = True
        return "retry", str(exc)
    except TemporaryDeliveryError as exc:
        log.warning(
            "mail %s to %s: temporary failure (attempt %d): %s", message_id, to, attempt, exc
        )
        mail.stops_batch = isinstance(exc, RelayUnavailableError)
        return "retry", str(exc)
    except Exception as exc:
        # A bug on our side of the wire; retried with back-off, and bounded by the attempts.
        log.exception("mail %s to %s: unexpected error while sending", message_id, to)
        return "retry", f"{type(exc).__name__}: {exc}"
    return "sent", None


def register_actors(
    broker: dramatiq.Broker,
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    queue_prefix: str = "",
    clock: Clock = utcnow,
) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare every actor on ``broker``; returns them by name.

    Every process that sends jobs needs this too, not only the workers: a message is routed
    to the queue its actor was declared with. ``queue_prefix`` keeps test runs on a shared
    RabbitMQ apart; production leaves it empty. ``clock`` lets tests move time for the
    actors that compare with it (``mail.send`` and its back-off).
    """
    actors: dict[str, dramatiq.Actor[Any, Any]] = {}
    # mail.process (and any actor changing tickets) sends ticket notifications, with reply
    # addresses signed by the instance's key, and checks the signed addresses replies come to.
    from core.mail.outbox import derive_mail_domain
    from core.notify import notifications

    configure_secret_key(session_factory, settings.secret_key or None)
    notifications.configure(
        session_factory,
        notifications.NotifyConfig(
            mail_domain=derive_mail_domain(settings.mail_domain, settings.public_url),
            public_url=settings.public_url,
        ),
    )

    def declare(fn: Callable[..., Any], name: str, queue: str, **options: Any) -> None:
        actors[name] = dramatiq.actor(
            broker=broker, actor_name=name, queue_name=queue_prefix + queue, **options
        )(fn)

    def ping(key: str) -> None:
        record_ping(session_factory, key)

    # A ping is cheap and only proves the path works; a few quick retries are enough.
    declare(ping, "system.ping", SYSTEM_QUEUE, max_retries=3, min_backoff=500)

    def mail_send(outbound_id: int, also: list[int] | None = None) -> None:
        send_outbound_mail(session_factory, settings, outbound_id, also=also or (), clock=clock)

    # No Dramatiq retries: the outbox row holds the attempts and the back-off, and the
    # scheduler's sweep re-sends whatever is due, even when a broker lost the message.
    declare(mail_send, "mail.send", MAIL_QUEUE, max_retries=0)

    from core.blobs import open_blob_store
    from mailgw.trust import TrustSettings

    # Built once per worker process, not per job: the settings do not change under it.
    inbound_blobs = open_blob_store(settings.blob_url, settings.blob_dir, session_factory)
    inbound_trust = TrustSettings(
        authserv_id=settings.trusted_authserv_id, verify_dkim=settings.verify_dkim
    )

    inbound_domain = derive_mail_domain(settings.mail_domain, settings.public_url)

    def mail_process(inbound_id: int) -> None:
        from mailgw.process import run_batch

        run_batch(
            session_factory,
            inbound_id,
            batch=settings.mail_batch,
            blobs=inbound_blobs,
            mail_domain=inbound_domain,
            clock=clock,
            reopen_days=settings.reopen_days,
            trust=inbound_trust,
        )

    # No Dramatiq retries: the attempts live on the inbound row (three, then quarantine), and
    # the scheduler's mail.sweep_inbound re-sends a job the broker lost.
    declare(mail_process, "mail.process", MAIL_IN_QUEUE, max_retries=0)

    def sla_check(ticket_id: int) -> None:
        check_sla(session_factory, settings, ticket_id, clock=clock)

    # No Dramatiq retries either: the ticket's lease runs out and the scheduler claims it again.
    declare(sla_check, "sla.check_ticket", SLA_QUEUE, max_retries=0)

    def sla_recompute(ticket_ids: list[int]) -> None:
        recompute_deadlines(session_factory, settings, ticket_ids, clock=clock)

    # Sent after a configuration change commits; the same lease covers a lost job.
    declare(sla_recompute, "sla.recompute", SLA_QUEUE, max_retries=0)
    return actors


def recompute_deadlines(
    session_factory: sessionmaker[Session],
    settings: Settings,
    ticket_ids: list[int],
    *,
    clock: Clock = utcnow,
) -> int:
    """Recompute these tickets' deadlines after a configuration change, each in its own
    transaction, telling any warning or breach that this makes due; returns how many got new
    deadlines. ``pulpit config apply`` calls it after its commit, the ``sla.recompute`` job
    after a console save."""
    from core.mail.outbox import derive_mail_domain
    from core.sla.watch import recheck_ticket

    mail_domain = derive_mail_domain(settings.mail_domain, settings.public_url)
    moved = 0
    for ticket_id in ticket_ids:
        with unit_of_work(session_factory) as session:
            moved += recheck_ticket(
                session, ticket_id, clock(), mail_domain=mail_domain, public_url=settings.public_url
            )
    return moved


def check_sla(
    session_factory: sessionmaker[Session],
    settings: Settings,
    ticket_id: int,
    *,
    clock: Clock = utcnow,
) -> int:
    """Record and notify the SLA warnings and breaches due on one ticket; idempotent."""
    from core.mail.outbox import derive_mail_domain
    from core.sla.watch import check_ticket

    with unit_of_work(session_factory) as session:
        events = check_ticket(
            session,
            ticket_id,
            clock(),
            mail_domain=derive_mail_domain(settings.mail_domain, settings.public_url),
            public_url=settings.public_url,
        )
    return len(events)
