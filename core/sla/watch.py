"""Watching SLA deadlines: the scheduler's claim and the per-ticket check behind it.

The database is the source of truth (Polar's pattern). Each ticket stores ``sla_next_check``,
the next instant a warning or breach falls due. The scheduler claims due tickets with a
conditional update under ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite serialises writers),
pushing their ``sla_next_check`` forward by a short lease, and fans out one ``sla.check_ticket``
job per ticket. The job re-reads the ticket under a row lock, records what became due as
``sla`` events and queues the mails, then stores the real next check. Events are keyed by
(clock, kind, deadline) and mails by a dedupe key, so a repeated job, a second scheduler or a
lost broker message (the lease runs out and the ticket is claimed again) never skips or
doubles a notification.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.db import enqueue
from core.directory.models import User
from core.mail.outbox import queue_mail, sla_context
from core.notify.notifications import signed_reply_to
from core.notify.preferences import wants
from core.notify.recipients import sla_recipients
from core.sla import clocks as sla_clock
from core.tickets.models import Ticket, TicketEvent

log = logging.getLogger(__name__)

CHECK_ACTOR = "sla.check_ticket"
RECOMPUTE_ACTOR = "sla.recompute"
LEASE = timedelta(minutes=2)
# Tickets per sla.recompute job: each is recomputed in its own short transaction, and a
# large contract's tickets spread over the workers.
RECOMPUTE_BATCH = 100


def claim_due(
    session: Session, now: datetime, *, limit: int = 500, lease: timedelta = LEASE
) -> list[int]:
    """Claim the tickets whose next SLA check is due; returns their ids."""
    stmt = (
        select(Ticket.id)
        .where(Ticket.sla_next_check <= now)
        .order_by(Ticket.sla_next_check)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    ids = list(session.scalars(stmt))
    if ids:
        session.execute(
            update(Ticket)
            .where(Ticket.id.in_(ids), Ticket.sla_next_check <= now)
            .values(sla_next_check=now + lease)
        )
    return ids


def reschedule(
    session: Session,
    *,
    contract_codes: Iterable[str] = (),
    calendar_names: Iterable[str] = (),
    now: datetime,
) -> list[int]:
    """Hand the open tickets under these contracts or calendars to the SLA worker, to be
    recomputed after this transaction commits; returns their ids.

    A configuration change calls it instead of recomputing in its own transaction, which
    stays short however many tickets a contract has. The tickets are claimed as
    :func:`claim_due` claims them (``sla_next_check`` pushed by the lease) and sent as
    ``sla.recompute`` jobs once the change commits (nothing is sent if it rolls back). A job
    the broker loses costs a lease: the scheduler's scan claims the tickets again and its
    ``sla.check_ticket`` recomputes them the same way.
    """
    codes, names = list(contract_codes), list(calendar_names)
    if not codes and not names:
        return []
    ids = list(
        session.scalars(
            sla_clock.open_tickets_under(contract_codes=codes, calendar_names=names).order_by(
                Ticket.id
            )
        )
    )
    for start in range(0, len(ids), RECOMPUTE_BATCH):
        batch = ids[start : start + RECOMPUTE_BATCH]
        session.execute(
            update(Ticket).where(Ticket.id.in_(batch)).values(sla_next_check=now + LEASE)
        )
        enqueue(session, RECOMPUTE_ACTOR, ticket_ids=batch)
    return ids


def recheck_ticket(
    session: Session, ticket_id: int, now: datetime, *, mail_domain: str, public_url: str
) -> bool:
    """:func:`check_ticket` after a configuration change: recompute the ticket's deadlines
    from its history under the configuration as it now is, recording and telling any warning
    or breach that this makes due; whether its deadlines moved."""
    ticket = session.get(Ticket, ticket_id, with_for_update=True)
    if ticket is None:
        return False
    before = sla_clock.deadlines(ticket)
    check_ticket(session, ticket_id, now, mail_domain=mail_domain, public_url=public_url)
    return sla_clock.deadlines(ticket) != before


def check_ticket(
    session: Session,
    ticket_id: int,
    now: datetime,
    *,
    mail_domain: str,
    public_url: str,
) -> list[TicketEvent]:
    """Record warnings and breaches that fell due on this ticket and notify; idempotent."""
    ticket = session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
    if ticket is None:
        return []
    events = sla_clock.timeline(ticket)
    noticed = sla_clock.noticed_sla(events)
    new_events: list[TicketEvent] = []
    for clock in sla_clock.CLOCKS:
        state = sla_clock.clock_state(ticket, clock, now, events=events)
        if not state.running or state.due is None:
            continue
        due_key = state.due.isoformat()
        if state.due <= now:
            if (clock, "breach", due_key) not in noticed:
                new_events.append(_record(session, ticket, clock, "breach", state, at=state.due))
        elif state.warn_at is not None and state.warn_at <= now:
            if (clock, "warning", due_key) not in noticed:
                new_events.append(
                    _record(session, ticket, clock, "warning", state, at=state.warn_at)
                )
    sla_clock.recompute(ticket, now)
    for event in new_events:
        _notify(session, ticket, event, mail_domain=mail_domain, public_url=public_url, now=now)
    session.flush()
    return new_events


def _record(
    session: Session,
    ticket: Ticket,
    clock: str,
    kind: str,
    state: sla_clock.ClockState,
    *,
    at: datetime,
) -> TicketEvent:
    assert state.target is not None and state.due is not None
    # The share at the moment the event is dated (not when a late scheduler noticed it).
    threshold = ticket.contract.warning_threshold if ticket.contract else 0.8
    used = 1.0 if kind == "breach" else threshold
    event = TicketEvent(
        ticket=ticket,
        type="sla",
        at=at,
        public=False,
        data={
            "clock": clock,
            "kind": kind,
            "due": state.due.isoformat(),
            "target_minutes": int(state.target.total_seconds() // 60),
            "used_percent": round(used * 100),
        },
    )
    session.add(event)
    if kind == "breach":
        ticket.ever_breached = True
    log.info("ticket #%s: %s %s (due %s)", ticket.number, clock, kind, state.due.isoformat())
    return event


def _notify(
    session: Session,
    ticket: Ticket,
    event: TicketEvent,
    *,
    mail_domain: str,
    public_url: str,
    now: datetime,
) -> None:
    clock, kind, due = event.data["clock"], event.data["kind"], event.data["due"]
    people: list[User] = [
        person
        for person in sla_recipients(session, ticket, now)
        if wants(person, f"sla_{kind}", ticket)
    ]
    context = sla_context(
        ticket,
        clock=clock,
        due=datetime.fromisoformat(due),
        used_percent=event.data["used_percent"],
        public_url=public_url,
        breached_at=datetime.fromisoformat(due) if kind == "breach" else None,
    )
    for person in people:
        queue_mail(
            session,
            template=f"sla_{kind}",
            to=person.email,
            context=context,
            language=person.language or "pl",
            ticket=ticket,
            auto_submitted="auto-generated",
            reply_to=signed_reply_to(session, ticket, person),
            dedupe_key=f"sla:{ticket.number}:{clock}:{kind}:{due}:{person.email}",
            mail_domain=mail_domain,
            now=now,
        )
