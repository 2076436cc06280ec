"""Threading: which ticket a mail follows up, and whether its sender may add to it.

Named ``thread_match`` rather than ``threading`` so it never shadows the stdlib module.

Order (docs/mail.md): the subject tag ``[#1042]`` or ``[PREFIX#1042]``, then
``In-Reply-To``, then ``References`` (newest first, RFC 5322 3.6.4), each matched against the
Message-IDs we stored on the timeline (``TicketEvent.message_id``) or sent
(``OutboundMail.message_id``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import is_copied
from core.directory.models import User
from core.mail.models import OutboundMail
from core.tickets.models import Ticket, TicketEvent
from mailgw.parsing import ParsedMail

# [#1042], [Ticket#1042], [ACME#1042]; the prefix is letters, digits, '-' and '_'.
SUBJECT_TAG = re.compile(r"\[[\w-]{0,32}#(\d{1,9})\]")


@dataclass(frozen=True)
class ThreadMatch:
    ticket: Ticket
    how: str  # "subject tag", "In-Reply-To", "References"
    message_id: str | None = None


def subject_numbers(subject: str) -> list[int]:
    return [int(n) for n in SUBJECT_TAG.findall(subject or "")]


def ticket_for_message_id(session: Session, message_id: str) -> Ticket | None:
    """The ticket a Message-ID we stored or sent belongs to."""
    ticket_id = session.scalar(
        select(OutboundMail.ticket_id)
        .where(OutboundMail.message_id == message_id, OutboundMail.ticket_id.is_not(None))
        .limit(1)
    )
    if ticket_id is None:
        ticket_id = session.scalar(
            select(TicketEvent.ticket_id).where(TicketEvent.message_id == message_id).limit(1)
        )
    return session.get(Ticket, ticket_id) if ticket_id is not None else None


def find_thread(session: Session, mail: ParsedMail) -> ThreadMatch | None:
    for number in subject_numbers(mail.subject):
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        if ticket is not None:
            return ThreadMatch(ticket, "subject tag")
    for mid in mail.in_reply_to:
        ticket = ticket_for_message_id(session, mid)
        if ticket is not None:
            return ThreadMatch(ticket, "In-Reply-To", mid)
    for mid in reversed(mail.references):
        ticket = ticket_for_message_id(session, mid)
        if ticket is not None:
            return ThreadMatch(ticket, "References", mid)
    return None


def may_follow_up(user: User, ticket: Ticket) -> tuple[bool, str]:
    """Whether a mail from ``user`` may add to ``ticket``, and why (for the decision log).

    Wider than the console's view scope on purpose: a colleague of the requester at the same
    client, or a technician not assigned, may still answer a thread they were copied on.
    """
    if not user.active:
        return False, f"{user.email} is deactivated"
    if user.is_staff:
        return True, f"{user.email} is staff ({user.role})"
    if user.id == ticket.requester_id:
        return True, f"{user.email} is the requester"
    if user.role == "client" and user.client_id is not None and user.client_id == ticket.client_id:
        return True, f"{user.email} is a contact of the ticket's client"
    if is_copied(user, ticket):  # on a triage ticket, where no client says so
        return True, f"{user.email} is copied on ticket #{ticket.number}"
    if (
        user.role == "subcontractor"
        and user.subcontractor_id is not None
        and user.subcontractor_id == ticket.subcontractor_id
    ):
        return True, f"{user.email} works for the assigned subcontractor"
    return False, f"{user.email} is not allowed on ticket #{ticket.number}"
