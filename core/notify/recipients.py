"""Who is told about a ticket: the routing of notifications to people.

One place decides, so the SLA watcher, assignment mails and the notifications issue agree:
the assignee, plus whoever currently substitutes for them (``core.access.substitutions``, chains
included), and the contract's coordinators (every active coordinator when the contract names
none).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from core.access.substitutions import substitutes_of
from core.db import transaction_memo
from core.directory.models import User
from core.orm import added_since_flush, track_added
from core.tickets.models import Ticket


def contract_coordinators(session: Session, ticket: Ticket) -> list[User]:
    with session.no_autoflush:  # a contract's coordinators depend on no ticket row
        named = list(ticket.contract.coordinators) if ticket.contract is not None else []
    if named:
        return [u for u in named if u.active]
    return list(all_coordinators(session))


_COORDINATORS = "coordinators"
track_added(User)


def all_coordinators(session: Session) -> list[User]:
    """Every active coordinator (who hears of the tickets of contracts naming none), read once
    per transaction: a batch of inbound mail opens many such tickets. Adding, changing or
    removing a coordinator, or anyone's role, reads them again."""
    memo = transaction_memo(session)
    found: list[User] | None = memo.get(_COORDINATORS)
    if found is None or _coordinators_changed(session):
        found = memo[_COORDINATORS] = list(
            session.scalars(
                select(User)
                .where(User.role == "coordinator", User.active.is_(True))
                .order_by(User.id)
            )
        )
    return found


def _coordinators_changed(session: Session) -> bool:
    """A person added, changed or removed in a way that may change who the coordinators are."""
    if any(user.role == "coordinator" for user in added_since_flush(session, User)):
        return True
    dirty = session.dirty  # once: it is built anew on each read
    for obj in (*dirty, *session.deleted):
        if not isinstance(obj, User):
            continue
        if obj.role == "coordinator":
            return True
        if obj in dirty:
            state = inspect(obj)
            if state.attrs.role.history.has_changes():
                return True  # someone was a coordinator until now
    return False


@event.listens_for(Session, "before_flush")
def _forget_coordinators(session: Session, _context: Any, _instances: Any) -> None:
    memo = session.info.get("pulpit_transaction_memo")
    if memo and _COORDINATORS in memo and _coordinators_changed(session):
        del memo[_COORDINATORS]


def with_substitutes(session: Session, users: Sequence[User], now: datetime) -> list[User]:
    """Each user, then whoever currently substitutes for them (transitively), each once.

    The window closes at once: a substitution ended early or expired adds nobody.
    """
    people: list[User] = []
    for user in users:
        if user not in people:
            people.append(user)
        extra = substitutes_of(session, {user.id}, now)
        if extra:
            for sub in session.scalars(select(User).where(User.id.in_(extra)).order_by(User.id)):
                if sub not in people:
                    people.append(sub)
    return people


def sla_recipients(session: Session, ticket: Ticket, now: datetime) -> list[User]:
    """The assignee and whoever substitutes for them, then the contract's coordinators; each
    once, active people only."""
    people: list[User] = []
    if ticket.assignee is not None:
        for user in with_substitutes(session, [ticket.assignee], now):
            if user.active and user not in people:
                people.append(user)
    for user in contract_coordinators(session, ticket):
        if user not in people:
            people.append(user)
    return people
