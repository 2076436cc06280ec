"""Who may open which ticket for whom: a request to open a ticket, in the names the outside
world uses (e-mails, contract codes, product names), checked and resolved into a
:class:`core.tickets.services.NewTicket` for :func:`core.tickets.services.open_ticket`.

One rule for every door a person opens a ticket through (the console's form, the API):

- subcontractors do not open tickets; new work reaches them through a coordinator;
- a client opens tickets in their own name, under one of their own client's contracts, and
  does not choose the assignee;
- opening follows the rules of changing: naming an assignee or a subcontractor is assigning
  (``can(actor, "assign")``), except that anyone who may be assigned may name themselves
  (a technician's ticket starts theirs); each custom field needs the right to edit it
  (``core.tickets.fields.may_edit``; a client may fill in what the contract requires on
  open), checked by ``open_ticket``. What
  the actor may not set is refused (403), never dropped silently;
- staff open tickets for anyone: an unknown requester address becomes a contact of the
  client owning its domain (as for mail); no requester means the person typing;
- without a contract, a requester whose client has exactly one active contract gets it
  (``core.directory.services.default_contract``), otherwise the ticket waits in triage;
- copied contacts must be contacts of the ticket's client (``core.tickets.contacts``).

Nothing is written but a new requester or copied contact; the caller opens and commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.access.permissions import can
from core.clock import utcnow
from core.contracts.models import Contract
from core.directory.models import User
from core.directory.services import (
    contract_by_code,
    default_contract,
    find_or_create_contact,
    product_by_name,
    staff_user,
    subcontractor_by_name,
)
from core.errors import N_, Forbidden
from core.tickets.contacts import contact_for_client
from core.tickets.services import NewTicket
from core.tickets.timeline import NewAttachment


@dataclass(frozen=True)
class TicketRequest:
    """A ticket someone asks to open. ``requester`` is an e-mail (empty: the person asking),
    ``contract`` a code (empty: the requester's default), ``assignee`` a staff e-mail,
    ``product`` a product's name, ``cc`` the e-mails to copy, ``subcontractor`` the name of
    the subcontractor the work is handed to."""

    subject: str
    requester: str | None = None
    body: str | None = None
    contract: str | None = None
    ticket_type: str | None = None
    assignee: str | None = None
    product: str | None = None
    custom_fields: dict[str, Any] | None = None
    cc: Sequence[str] = ()
    attachments: Sequence[NewAttachment] = ()
    source: str = "web"
    subcontractor: str | None = None


def check_may_open(actor: User) -> None:
    """Refuse someone who may not open tickets at all (before showing them a form)."""
    if actor.role == "subcontractor":
        raise Forbidden(N_("subcontractors cannot open tickets; ask the coordinator"))


def _check_may_set(actor: User, request: TicketRequest) -> None:
    """Refuse what opening would set that ``actor`` may not change on a ticket."""
    assignee = (request.assignee or "").strip().lower()
    if assignee and assignee != actor.email and not can(actor, "assign"):
        raise Forbidden(N_("you may not assign tickets, so you cannot open one for someone else"))
    if request.subcontractor and not can(actor, "hand_over"):
        raise Forbidden(N_("you may not hand tickets to a subcontractor"))


def intake(
    session: Session, actor: User, request: TicketRequest, *, at: datetime | None = None
) -> NewTicket:
    """What ``actor`` may open for this request, or a :class:`core.errors.InputError` (a
    :class:`core.errors.Forbidden` for what their role may not do) saying why not."""
    check_may_open(actor)
    at = at or utcnow()
    if actor.role == "client":
        if request.requester and request.requester.strip().lower() != actor.email:
            raise Forbidden(N_("clients open tickets in their own name only"))
        if request.assignee:
            raise Forbidden(N_("clients cannot choose the assignee"))
        _check_may_set(actor, request)
        requester = actor
    else:
        _check_may_set(actor, request)  # before a new requester is written
        requester = (
            find_or_create_contact(session, request.requester) if request.requester else actor
        )
    contract: Contract | None
    if request.contract:
        contract = contract_by_code(session, request.contract)
        if actor.role == "client" and contract.client_id != actor.client_id:
            raise Forbidden(
                N_("contract %(code)s is not one of your client's contracts"),
                code=request.contract,
            )
    else:
        contract = default_contract(requester.client, at.date())
    client = contract.client if contract is not None else requester.client
    cc = [
        contact_for_client(session, client, email, requester=requester, what="the new ticket")
        for email in dict.fromkeys(request.cc)
    ]
    return NewTicket(
        subject=request.subject,
        requester=requester,
        body=request.body,
        contract=contract,
        ticket_type=request.ticket_type,
        assignee=staff_user(session, request.assignee) if request.assignee else None,
        subcontractor=subcontractor_by_name(session, request.subcontractor)
        if request.subcontractor
        else None,
        product=product_by_name(session, request.product) if request.product else None,
        custom_fields=request.custom_fields,
        author=actor,
        source=request.source,
        at=at,
        attachments=request.attachments,
        cc=cc,
    )
