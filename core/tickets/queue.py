"""Work queues: the unassigned tickets of the contracts a technician serves, and taking one.

A contract names the technicians who serve it (``contracts[].technicians`` in YAML, the
contract's admin screen; table ``contract_technicians``). Its open unassigned tickets are their
queue ("do wzięcia"): ``core.access.permissions.ticket_scope`` lets them see those besides their
own tickets, so the list's ``assignee=none`` shows exactly the queue, and :func:`take_ticket`
makes one theirs.

Decisions (where the issue is silent, as a Zammad or Jira Service Management user expects):

- Taking needs the ``take`` action (on by default for technicians, coordinators and admins; a
  custom role may deny it, ``roles[].deny: [take]``). A technician takes only tickets of a
  contract they serve; someone who may assign anyway (coordinators, admins) may take any open
  unassigned ticket, also one in triage.
- A ticket the user may not see answers as not found (404), like every other door, so numbers
  cannot be probed; a visible ticket of a contract they do not serve is refused (403).
- Two people clicking "Take" at once: the assignment is one conditional ``UPDATE ... WHERE
  assignee_id IS NULL``; the second finds no row to change and is told who took it (409).
  Taking a ticket one already holds changes nothing. A closed ticket cannot be taken (409).
- The timeline and notifications are those of an assignment (``core.tickets.services.assign``):
  an ``assignment`` event with ``"taken": true`` in its data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.access.permissions import can, serves, ticket_scope
from core.clock import utcnow
from core.contracts.models import contract_technicians
from core.directory.models import User
from core.errors import N_, Conflict, Forbidden
from core.notify import notifications
from core.tickets.models import Ticket, TicketEvent
from core.tickets.timeline import append_event


def may_take(user: User, ticket: Ticket) -> bool:
    """May this user take this ticket now (it is open and unassigned)?"""
    if ticket.assignee_id is not None or ticket.status_category == "closed":
        return False
    if not can(user, "take", ticket):
        return False
    return serves(user, ticket) or can(user, "assign", ticket)


def queue_count(session: Session, user: User) -> int:
    """How many tickets wait in this user's queue: open, unassigned, of contracts they serve
    (and visible to them: one COUNT through the permission scope)."""
    if user.id is None:
        return 0
    served = select(contract_technicians.c.contract_id).where(
        contract_technicians.c.user_id == user.id
    )
    return int(
        session.scalar(
            select(func.count(Ticket.id)).where(
                ticket_scope(user),
                Ticket.assignee_id.is_(None),
                Ticket.status_category != "closed",
                Ticket.contract_id.in_(served),
            )
        )
        or 0
    )


def serves_any(session: Session, user: User) -> bool:
    """Does this user serve at least one contract (then the console shows their queue)?"""
    if user.id is None:
        return False
    return (
        session.scalar(
            select(contract_technicians.c.contract_id)
            .where(contract_technicians.c.user_id == user.id)
            .limit(1)
        )
        is not None
    )


def take_ticket(
    session: Session, user: User, ticket: Ticket, *, at: datetime | None = None
) -> TicketEvent | None:
    """Make ``user`` the assignee of this unassigned ticket; None when it already was theirs.

    The caller has checked the user may see the ticket (``services.get_ticket``) and commits.
    """
    if ticket.assignee_id == user.id:
        return None
    # The rights in general: the ticket may have just left the user's sight by being taken.
    if not can(user, "take"):
        raise Forbidden(N_("you may not take ticket #%(number)s"), number=ticket.number)
    if not (serves(user, ticket) or can(user, "assign")):
        raise Forbidden(
            N_("you do not serve the contract of ticket #%(number)s, so you may not take it"),
            number=ticket.number,
        )
    if ticket.status_category == "closed":
        raise Conflict(N_("ticket #%(number)s is closed"), number=ticket.number)
    if ticket.assignee_id is not None:
        raise _taken(ticket)
    at = at or utcnow()
    session.flush()
    # One conditional statement: of two people taking the ticket at once, only one changes it.
    result = session.execute(
        update(Ticket)
        .where(
            Ticket.id == ticket.id,
            Ticket.assignee_id.is_(None),
            Ticket.status_category != "closed",
        )
        .values(assignee_id=user.id)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        session.refresh(ticket)
        if ticket.assignee_id == user.id:
            return None
        if ticket.status_category == "closed":
            raise Conflict(N_("ticket #%(number)s is closed"), number=ticket.number)
        raise _taken(ticket)
    session.expire(ticket, ["assignee_id", "assignee"])
    data = {
        "from_assignee": None,
        "assignee": user.email,
        "from_subcontractor": ticket.subcontractor.name if ticket.subcontractor else None,
        "subcontractor": ticket.subcontractor.name if ticket.subcontractor else None,
        "outside_contract": False,
        "taken": True,
    }
    event = append_event(session, ticket, "assignment", author=user, at=at, data=data)
    session.flush()
    notifications.on_assigned(session, ticket, event, actor=user)
    return event


def _taken(ticket: Ticket) -> Conflict:
    who = ticket.assignee.display if ticket.assignee is not None else "?"
    return Conflict(
        N_("ticket #%(number)s has just been taken by %(name)s"), number=ticket.number, name=who
    )
