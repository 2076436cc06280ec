"""Naming a ticket's requester: the coordinator's step after mail from an unreadable From.

A mail whose From cannot be read opens a triage ticket with the placeholder requester
(:data:`core.directory.services.UNKNOWN_SENDER`) and the raw From on its first event; a
coordinator reads it and names the real person here. Any ticket's requester may be changed
the same way (a mail sent by an assistant for their manager), by whoever may sort tickets
(the ``edit`` action, as for moving a ticket to a contract).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.access.permissions import can
from core.clock import utcnow
from core.directory.models import User
from core.directory.services import UNKNOWN_SENDER, find_or_create_contact
from core.errors import N_, Forbidden, InputError
from core.tickets.models import Ticket, TicketEvent
from core.tickets.timeline import append_event


def change_requester(
    session: Session,
    ticket: Ticket,
    email: str,
    *,
    actor: User,
    name: str | None = None,
    at: datetime | None = None,
) -> TicketEvent | None:
    """Make the person with ``email`` (a contact made if unknown) the ticket's requester.

    A ticket not yet in a contract takes the new requester's client, so the client's people see
    it; one in a contract keeps its client (moving it is :func:`change_contract`'s job)."""
    if not can(actor, "edit", ticket):
        raise Forbidden(
            N_("you may not change the requester of ticket #%(number)s"), number=ticket.number
        )
    if email.strip().lower() == UNKNOWN_SENDER:
        raise InputError(N_("name a real person as the requester"))
    person = find_or_create_contact(session, email, name)
    if person.id == ticket.requester_id:
        return None
    if not person.active:
        raise InputError(N_("%(email)s is deactivated"), email=person.email)
    old = ticket.requester.email if ticket.requester else None
    ticket.requester = person
    if ticket.contract_id is None and person.client is not None:
        ticket.client = person.client
    event = append_event(
        session,
        ticket,
        "requester",
        author=actor,
        at=at or utcnow(),
        data={"from": old, "to": person.email},
    )
    session.flush()
    return event
