"""Who may handle personal data, and finding the person: shared by export, erasure and pages."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.access.permissions import can
from core.directory.models import User
from core.errors import N_, Forbidden, NotFound


def check_access(user: User) -> None:
    """Exports, erasures, the people pages and the audit log are for administrators (the
    ``outbox`` action of ``core.access.permissions``: every recipient's address is theirs)."""
    if not can(user, "outbox"):
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
