"""Retention (``PULPIT_RETENTION_DAYS``): closed tickets older than that are anonymised.

Anonymising a ticket removes the personal data in it, not the people: every person outside
the staff who appears on it (its requester, copied contacts, the authors and senders of its
mail and comments) has their address, name and local part replaced in the ticket's subject,
custom fields and events, in its outgoing and inbound mail rows, and its raw mails are
deleted from the blob store. The people keep their accounts, which may have newer tickets.
Attachments, work logs, the staff's names, numbers and SLA history stay.

A ticket is done up to its last event; an audit entry ``retention.anonymise`` per run records
``{"tickets": {"<number>": <last event id>}}``, so a ticket reopened and closed again is looked
at once more and the rest never twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.audit import AuditEntry
from core.blobs import BlobStore
from core.directory.models import User
from core.mail.models import InboundMessage
from core.privacy.erase import mark_erased, sweep, ticket_rows
from core.privacy.scrub import Terms
from core.tickets.models import Attachment, Ticket, TicketEvent, ticket_contacts

ACTION = "retention.anonymise"
BATCH = 200  # tickets per run: a backlog drains over a few runs, each one short


@dataclass
class RetentionRun:
    tickets: list[int] = field(default_factory=list)  # numbers anonymised (or due, dry run)
    raw_mails_deleted: int = 0
    rows_changed: int = 0


def _done(session: Session) -> dict[int, int]:
    done: dict[int, int] = {}
    for data in session.scalars(select(AuditEntry.data).where(AuditEntry.action == ACTION)):
        for number, last in (data or {}).get("tickets", {}).items():
            done[int(number)] = max(done.get(int(number), 0), int(last))
    return done


def due_tickets(session: Session, now: datetime, days: int) -> list[tuple[Ticket, int]]:
    """Closed tickets resolved more than ``days`` ago with events not yet anonymised, with
    their last event id, oldest first."""
    if days <= 0:
        return []
    cutoff = now - timedelta(days=days)
    last_event = (
        select(TicketEvent.ticket_id, func.max(TicketEvent.id).label("last"))
        .group_by(TicketEvent.ticket_id)
        .subquery()
    )
    rows = session.execute(
        select(Ticket, last_event.c.last)
        .join(last_event, last_event.c.ticket_id == Ticket.id)
        .where(Ticket.status_category == "closed", Ticket.resolved_at < cutoff)
        .order_by(Ticket.resolved_at, Ticket.id)
    ).all()
    done = _done(session)
    due = [(t, int(last)) for t, last in rows if done.get(t.number, 0) < int(last)]
    return due[:BATCH]


def _people(session: Session, ticket: Ticket) -> list[User]:
    ids = {ticket.requester_id}
    ids |= set(
        session.scalars(
            select(ticket_contacts.c.user_id).where(ticket_contacts.c.ticket_id == ticket.id)
        )
    )
    ids |= {
        i
        for i in session.scalars(
            select(TicketEvent.author_id).where(TicketEvent.ticket_id == ticket.id)
        )
        if i is not None
    }
    people = session.scalars(select(User).where(User.id.in_(ids)))
    return [p for p in people if not p.is_staff and not p.is_placeholder]


def _terms(person: User) -> Terms:
    return Terms(
        address=person.email,
        name=person.name,
        new_address=f"person-{person.id}@pulpit.invalid",
        new_name=f"Osoba #{person.id}",
    )


def anonymise_ticket(session: Session, ticket: Ticket, blobs: BlobStore) -> tuple[int, int]:
    """Anonymise one ticket; (raw mails deleted, rows changed)."""
    terms = [_terms(p) for p in _people(session, ticket)]
    changed = 0
    if terms:
        changed = sum(sweep(session, terms, where=ticket_rows([ticket.id]), weak=True).values())
    deleted = 0
    mails = session.scalars(select(InboundMessage).where(InboundMessage.ticket_id == ticket.id))
    for mail in mails:
        elsewhere = session.scalar(
            select(func.count(InboundMessage.id)).where(
                InboundMessage.sha256 == mail.sha256, InboundMessage.ticket_id != ticket.id
            )
        )
        shared = session.scalar(
            select(func.count(Attachment.id)).where(Attachment.sha256 == mail.sha256)
        )
        if not shared and not elsewhere and blobs.delete(mail.sha256):
            deleted += 1
        mark_erased(mail)
    session.flush()
    return deleted, changed


def run_retention(
    session: Session,
    *,
    blobs: BlobStore,
    now: datetime,
    days: int,
    dry_run: bool = False,
    actor: str = "scheduler",
) -> RetentionRun:
    """Anonymise the tickets due (see the module's docstring); ``dry_run`` only lists them.
    Does not commit."""
    run = RetentionRun()
    due = due_tickets(session, now, days)
    run.tickets = [t.number for t, _ in due]
    if dry_run or not due:
        return run
    for ticket, _last in due:
        deleted, changed = anonymise_ticket(session, ticket, blobs)
        run.raw_mails_deleted += deleted
        run.rows_changed += changed
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action=ACTION,
            data={
                "days": days,
                "tickets": {str(t.number): last for t, last in due},
                "raw_mails_deleted": run.raw_mails_deleted,
                "rows_changed": run.rows_changed,
            },
        )
    )
    session.flush()
    return run
