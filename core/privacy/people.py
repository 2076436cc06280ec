"""Who may handle personal data, and finding the person: shared by export, erasure and pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from core.access.permissions import can
from core.audit import AuditEntry
from core.directory.models import User
from core.errors import N_, Forbidden, NotFound
from core.tickets.models import Ticket, ticket_contacts


def check_access(user: User) -> None:
    """Exports, erasures, the people pages and the audit log are for administrators (the
    ``people`` action of ``core.access.permissions``)."""
    if not can(user, "people"):
        raise Forbidden(N_("personal data and the audit log are for administrators"))


def person_by_email(session: Session, email: str) -> User:
    person = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if person is None:
        raise NotFound(N_("no person with the e-mail %(email)s"), email=email.strip())
    return person


def person_by_id(session: Session, user_id: int) -> User:
    person = session.get(User, user_id)
    if person is None:
        raise NotFound(N_("no person with the id %(id)s"), id=user_id)
    return person


def search_people(session: Session, q: str = "", *, limit: int = 100) -> list[User]:
    """People whose e-mail or name contains ``q`` (every person when empty), by e-mail."""
    stmt = select(User).order_by(User.email).limit(limit)
    words = q.strip().lower()
    if words:
        like = f"%{words}%"
        stmt = stmt.where(or_(func.lower(User.email).like(like), func.lower(User.name).like(like)))
    return list(session.scalars(stmt))


def person_tickets(session: Session, person: User, *, limit: int = 100) -> list[tuple[Ticket, str]]:
    """The newest tickets the person requested, is copied on or is assigned, each with how
    (``requester``, ``copied``, ``assignee``)."""
    copied = select(ticket_contacts.c.ticket_id).where(ticket_contacts.c.user_id == person.id)
    tickets = session.scalars(
        select(Ticket)
        .where(
            or_(
                Ticket.requester_id == person.id,
                Ticket.assignee_id == person.id,
                Ticket.id.in_(copied),
            )
        )
        .order_by(Ticket.number.desc())
        .limit(limit)
    )
    found = []
    for ticket in tickets:
        how = (
            "requester"
            if ticket.requester_id == person.id
            else "assignee"
            if ticket.assignee_id == person.id
            else "copied"
        )
        found.append((ticket, how))
    return found


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def audit_actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))


def audit_log(
    session: Session,
    *,
    action: str = "",
    actor: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> AuditPage:
    """Audit entries, newest first: ``action`` exactly or a prefix ending in a dot (``login.``),
    ``actor`` a part of the address, ``since`` inclusive and ``until`` exclusive."""
    clauses: list[ColumnElement[bool]] = []
    if action:
        clauses.append(
            AuditEntry.action.startswith(action)
            if action.endswith(".")
            else AuditEntry.action == action
        )
    if actor.strip():
        clauses.append(
            func.lower(AuditEntry.actor).contains(actor.strip().lower(), autoescape=True)
        )
    if since is not None:
        clauses.append(AuditEntry.at >= since)
    if until is not None:
        clauses.append(AuditEntry.at < until)
    total = int(session.scalar(select(func.count(AuditEntry.id)).where(*clauses)) or 0)
    per_page = max(1, min(per_page, 200))
    page = max(1, page)
    entries = list(
        session.scalars(
            select(AuditEntry)
            .where(*clauses)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    return AuditPage(entries, total, page, per_page)
