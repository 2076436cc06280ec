"""Who is told about a ticket: the routing of notifications to people.

One place decides, so the SLA watcher, assignment mails and the notifications issue agree:
the assignee (the notifications issue adds their substitute) and the contract's coordinators
(every active coordinator when the contract names none).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Ticket, User


def contract_coordinators(session: Session, ticket: Ticket) -> list[User]:
    named = list(ticket.contract.coordinators) if ticket.contract is not None else []
    if named:
        return [u for u in named if u.active]
    return list(
        session.scalars(
            select(User).where(User.role == "coordinator", User.active.is_(True)).order_by(User.id)
        )
    )


def sla_recipients(session: Session, ticket: Ticket, now: datetime) -> list[User]:
    """The assignee and the contract's coordinators, each once."""
    people: list[User] = []
    if ticket.assignee is not None and ticket.assignee.active:
        people.append(ticket.assignee)
    for user in contract_coordinators(session, ticket):
        if user not in people:
            people.append(user)
    return people
