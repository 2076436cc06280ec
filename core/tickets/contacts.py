"""Contacts copied on a ticket (CC; Jira Service Management's "request participants").

A copied contact gets the mail the requester gets about the ticket (the acknowledgement,
public staff comments, changes to ``visible_to_client`` statuses; ``core.notify.notifications``),
sees the ticket in the portal (``core.access.permissions.ticket_scope``) and may answer it by mail.

Who may be copied: an active contact (role ``client``) of the ticket's client. On a triage
ticket (no client yet) that is a contact without a client, as the requester is; nobody gets
copied there by mail (``mailgw.copied``), only by staff or the requester. Staff are never
copied: they take part through assignment and the coordinators' mail. A copy counts only
while the contact belongs to the ticket's client: moving the ticket to another client's
contract (or the contact to another client) silences it without deleting the row, so the
timeline stays true and a move back restores it.

Who may copy: ``core.access.permissions.can(user, "cc", ticket)``: admins, coordinators, the
ticket's technician, its requester and a manager contact of its client. The mail gateway
copies on behalf of the sender (it decides who may write to a thread by its own rule).

Every change is a ``cc`` event on the timeline (internal, with its author): the ticket's
audit trail, as for assignments and field changes. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.access.accounts import get_user_by_email, normalize_email
from core.access.permissions import can
from core.clock import utcnow
from core.directory.models import Client, User
from core.directory.services import client_for_email, find_or_create_contact
from core.errors import N_, Forbidden, InputError
from core.tickets.models import Ticket, TicketEvent, ticket_contacts
from core.tickets.timeline import append_event


def refusal(user: User, ticket: Ticket) -> str | None:
    """Why ``user`` cannot be copied on ``ticket``, or None when they can."""
    return refusal_for(user, ticket.client, ticket.requester_id, f"ticket #{ticket.number}")


def refusal_for(
    user: User, client: Client | None, requester_id: int | None, what: str = "the ticket"
) -> str | None:
    """:func:`refusal` before the ticket exists: for a ticket of ``client`` (the one rule,
    also for the mail gateway, ``mailgw.copied``)."""
    if user.is_staff or user.role != "client":
        return (
            f"{user.email} is {user.role}, not a client contact: staff and subcontractors "
            "take part through assignment, not by being copied"
        )
    if not user.active:
        return f"{user.email} is deactivated"
    if user.id == requester_id:
        return f"{user.email} is the requester of {what}"
    if user.client_id != (client.id if client is not None else None):
        if client is None:
            return (
                f"{user.email} is a contact of a client; {what} has no client yet (triage): "
                "sort it into a contract first"
            )
        return f"{user.email} is not a contact of {client.name}"
    return None


def copied(ticket: Ticket) -> list[User]:
    """The copied contacts who count now: active, of the ticket's client, not the requester."""
    return [
        person
        for person in ticket.cc
        if person.active
        and person.role == "client"
        and person.client_id == ticket.client_id
        and person.id != ticket.requester_id
    ]


def contact_for(session: Session, ticket: Ticket, email: str) -> User:
    """The contact to copy for this address: an existing user, or a new contact when the
    address's domain belongs to the ticket's client (as a sender becomes one,
    ``core.directory.services.find_or_create_contact``). Anyone else is refused with a reason."""
    return contact_for_client(
        session, ticket.client, email, requester=ticket.requester, what=f"ticket #{ticket.number}"
    )


def contact_for_client(
    session: Session,
    client: Client | None,
    email: str,
    *,
    requester: User | None,
    what: str = "the ticket",
) -> User:
    """:func:`contact_for` before the ticket exists: for a ticket of ``client``."""
    address = normalize_email(email)
    user = get_user_by_email(session, address)
    if user is None:
        if client is None or client_for_email(session, address) != client:
            whose = client.name if client is not None else "a client"
            raise InputError(
                f"{address} is not a contact of {whose}; only the client's contacts can be "
                "copied on its tickets"
            )
        user = find_or_create_contact(session, address)
    why = refusal_for(user, client, requester.id if requester is not None else None, what)
    if why is not None:
        raise InputError(why)
    return user


def _record(
    session: Session,
    ticket: Ticket,
    kind: str,
    people: list[User],
    actor: User | None,
    at: datetime,
) -> TicketEvent:
    session.expire(ticket, ["cc"])
    return append_event(
        session, ticket, "cc", author=actor, at=at, data={kind: [p.email for p in people]}
    )


def add_contacts(
    session: Session,
    ticket: Ticket,
    people: Iterable[User],
    *,
    actor: User | None,
    at: datetime | None = None,
    check: bool = True,
) -> TicketEvent | None:
    """Copy these contacts on the ticket; those already copied are skipped. None if nobody
    was added. ``check=False`` skips the actor's permission (the mail gateway, opening)."""
    if check and (actor is None or not can(actor, "cc", ticket)):
        raise Forbidden(
            N_("you may not change who is copied on ticket #%(number)s"), number=ticket.number
        )
    at = at or utcnow()
    session.flush()  # the ticket needs its id
    present = set(
        session.scalars(
            select(ticket_contacts.c.user_id).where(ticket_contacts.c.ticket_id == ticket.id)
        )
    )
    added: list[User] = []
    for person in people:
        why = refusal(person, ticket)
        if why is not None:
            raise InputError(why)
        if person.id in present or person in added:
            continue
        try:
            # A savepoint: two mails copying the same person at once must not fail either.
            with session.begin_nested():
                session.execute(
                    insert(ticket_contacts).values(
                        ticket_id=ticket.id, user_id=person.id, added_at=at
                    )
                )
        except IntegrityError:
            continue
        added.append(person)
    if not added:
        return None
    event = _record(session, ticket, "added", added, actor, at)
    session.flush()
    return event


def add_contact(
    session: Session,
    ticket: Ticket,
    person: User,
    *,
    actor: User | None,
    at: datetime | None = None,
    check: bool = True,
) -> TicketEvent | None:
    return add_contacts(session, ticket, [person], actor=actor, at=at, check=check)


def remove_contact(
    session: Session,
    ticket: Ticket,
    email: str,
    *,
    actor: User,
    at: datetime | None = None,
) -> TicketEvent | None:
    """Stop copying this address on the ticket; None if it was not copied."""
    if not can(actor, "cc", ticket):
        raise Forbidden(
            N_("you may not change who is copied on ticket #%(number)s"), number=ticket.number
        )
    address = normalize_email(email)
    person = get_user_by_email(session, address)
    if person is None:
        return None
    result = session.execute(
        delete(ticket_contacts).where(
            ticket_contacts.c.ticket_id == ticket.id, ticket_contacts.c.user_id == person.id
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    event = _record(session, ticket, "removed", [person], actor, at or utcnow())
    session.flush()
    return event
