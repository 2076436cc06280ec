"""Substitutions: for a window of time, one person covers for an absent colleague.

While a substitution is active (``starts_at <= now < ends_at`` and not ended early), the
substitute sees every ticket the absent person can see (``core.access.permissions`` asks
:func:`represented`) and receives the mails meant for them (``core.notify.recipients`` asks
:func:`substitutes_of`). Ending one early sets ``ended_at`` to now, so access stops at once.

Chains resolve: when A covers B and B, also away, is covered by C, then C sees B's and A's
tickets. A visited set guards against cycles (A covers B covers A).

Every start and end is written to the audit trail (``substitution.create``,
``substitution.end``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, event, or_, select
from sqlalchemy.orm import Session

from core.access.models import Substitution
from core.audit import AuditEntry
from core.clock import utcnow
from core.directory.models import User
from core.errors import N_, Forbidden, InputError, NotFound
from core.orm import added_since_flush, track_added, transaction_memo

MANAGERS = ("admin", "coordinator")
# The window a substitution's times must fall in: wide enough for any real absence, far enough
# from datetime's ends that converting between time zones cannot overflow.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)


def active_clause(now: datetime) -> ColumnElement[bool]:
    """A WHERE clause on Substitution: the ones that count at ``now``."""
    return and_(
        Substitution.starts_at <= now,
        Substitution.ends_at > now,
        or_(Substitution.ended_at.is_(None), Substitution.ended_at > now),
    )


def _not_over_clause(now: datetime) -> ColumnElement[bool]:
    return and_(
        Substitution.ends_at > now,
        or_(Substitution.ended_at.is_(None), Substitution.ended_at > now),
    )


# --- Resolution ------------------------------------------------------------------------------


def represented(session: Session, user: User, now: datetime | None = None) -> set[int]:
    """The ids of the users whose tickets ``user`` currently sees and whose mail they get:
    ``user`` itself plus, transitively, everyone whose active substitution names them."""
    return _walk(session, {user.id}, now or utcnow(), upward=True)


def substitutes_of(session: Session, user_ids: Iterable[int], now: datetime) -> set[int]:
    """The ids of everyone currently covering, directly or through a chain, for any of
    ``user_ids`` (not including those ids themselves unless a cycle leads back)."""
    start = set(user_ids)
    found = _walk(session, start, now, upward=False)
    return found - start


def _walk(session: Session, start: set[int], now: datetime, *, upward: bool) -> set[int]:
    """Breadth-first over active substitutions; ``upward`` goes substitute -> absent."""
    pairs = [
        (absent, substitute) if not upward else (substitute, absent)
        for absent, substitute in _active_pairs(session, now)
    ]
    visited = set(start)
    frontier = set(start)
    while frontier:
        frontier = {to for frm, to in pairs if frm in frontier and to not in visited}
        visited |= frontier
    return visited


_MEMO = "substitutions"


def _active_pairs(session: Session, now: datetime) -> list[tuple[int, int]]:
    """(absent, substitute) of every substitution in force at ``now``.

    Read once per transaction: every substitution not over at the earliest ``now`` asked for
    (a handful of rows: the ones running or planned), then filtered here for each ``now``, so
    a batch of inbound mail notifying many tickets asks the database once. A flush that adds,
    changes or removes a substitution forgets them (:func:`_forget_on_change`).
    """
    memo = transaction_memo(session)
    held: tuple[datetime, list[Substitution]] | None = memo.get(_MEMO)
    if held is None or now < held[0] or _changed(session):
        rows = list(session.scalars(select(Substitution).where(_not_over_clause(now))))
        held = memo[_MEMO] = (now, rows)
    return [
        (s.absent_id, s.substitute_id)
        for s in held[1]
        if s.starts_at <= now < s.ends_at and (s.ended_at is None or s.ended_at > now)
    ]


track_added(Substitution)


def _changed(session: Session) -> bool:
    return bool(added_since_flush(session, Substitution)) or any(
        isinstance(obj, Substitution) for obj in (*session.dirty, *session.deleted)
    )


@event.listens_for(Session, "before_flush")
def _forget_on_change(session: Session, _context: Any, _instances: Any) -> None:
    memo = session.info.get("pulpit_transaction_memo")
    if memo and _MEMO in memo and _changed(session):
        del memo[_MEMO]


# --- Services --------------------------------------------------------------------------------


def _check_pair(absent: User, substitute: User) -> None:
    if absent.id == substitute.id:
        raise InputError(N_("a person cannot substitute for themselves; choose someone else"))
    if not substitute.active:
        raise InputError(
            N_("%(email)s is deactivated and cannot substitute"), email=substitute.email
        )
    if absent.is_staff and substitute.is_staff:
        return
    if (
        absent.role == "subcontractor"
        and substitute.role == "subcontractor"
        and absent.subcontractor_id is not None
        and absent.subcontractor_id == substitute.subcontractor_id
    ):
        return
    raise InputError(
        N_(
            "a substitute must be staff for staff, or a user of the same subcontractor company "
            "for a subcontractor user"
        )
    )


def create_substitution(
    session: Session,
    *,
    absent: User,
    substitute: User,
    starts_at: datetime,
    ends_at: datetime,
    actor: User,
    now: datetime | None = None,
) -> Substitution:
    """Record that ``substitute`` covers for ``absent`` from ``starts_at`` to ``ends_at``.

    Admins and coordinators may record anyone's absence; other staff their own only.
    Writes a ``substitution.create`` audit entry. Flushes, does not commit.
    """
    now = now or utcnow()
    if actor.role not in MANAGERS:
        if not actor.is_staff:
            raise Forbidden(N_("only staff may record substitutions"))
        if actor.id != absent.id:
            raise Forbidden(N_("you may record only your own absence; ask a coordinator"))
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InputError("starts_at and ends_at need a time zone, e.g. 2026-12-01T08:00:00Z")
    for value in (starts_at, ends_at):
        # Year 1 or 9999 in a time zone has no UTC equivalent (OverflowError otherwise).
        if not EARLIEST <= value <= LATEST:
            raise InputError(N_("a substitution's times must lie between the years 2000 and 9998"))
    starts_at, ends_at = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
    if ends_at <= starts_at:
        raise InputError(N_("the substitution must end after it starts"))
    if ends_at <= now:
        raise InputError(N_("the substitution would end in the past"))
    _check_pair(absent, substitute)
    sub = Substitution(
        absent=absent,
        substitute=substitute,
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=now,
        created_by=actor,
    )
    session.add(sub)
    session.flush()
    session.add(
        AuditEntry(
            actor=actor.email,
            action="substitution.create",
            at=now,
            data={
                "id": sub.id,
                "absent": absent.email,
                "substitute": substitute.email,
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
            },
        )
    )
    session.flush()
    return sub


def _visible_to(sub: Substitution, user: User) -> bool:
    return user.role in MANAGERS or user.id in (sub.absent_id, sub.substitute_id)


def get_substitution(session: Session, substitution_id: int, user: User) -> Substitution:
    """One substitution this user may see (managers: any; others: their own), or NotFound."""
    sub = session.get(Substitution, substitution_id)
    if sub is None or not _visible_to(sub, user):
        raise NotFound(f"no substitution {substitution_id}")
    return sub


def end_substitution(
    session: Session, substitution_id: int, actor: User, now: datetime | None = None
) -> Substitution:
    """End a substitution early: from ``now`` on it no longer counts. Writes a
    ``substitution.end`` audit entry. Managers may end any; the absent person or the
    substitute their own. Flushes, does not commit."""
    now = now or utcnow()
    if not actor.is_staff and actor.role != "subcontractor":
        raise Forbidden(N_("only staff may end substitutions"))
    sub = get_substitution(session, substitution_id, actor)
    if sub.is_over(now):
        raise InputError(N_("substitution %(id)s has already ended"), id=substitution_id)
    sub.ended_at = now
    session.add(
        AuditEntry(
            actor=actor.email,
            action="substitution.end",
            at=now,
            data={
                "id": sub.id,
                "absent": sub.absent.email,
                "substitute": sub.substitute.email,
            },
        )
    )
    session.flush()
    return sub


def list_substitutions(
    session: Session, user: User, now: datetime | None = None, *, include_past: bool = False
) -> list[Substitution]:
    """The substitutions this user may see (managers: all; others: their own), current and
    future ones unless ``include_past``; by start."""
    now = now or utcnow()
    stmt = select(Substitution).order_by(Substitution.starts_at, Substitution.id)
    if user.role not in MANAGERS:
        if not user.is_staff and user.role != "subcontractor":
            return []
        stmt = stmt.where(
            or_(Substitution.absent_id == user.id, Substitution.substitute_id == user.id)
        )
    if not include_past:
        stmt = stmt.where(_not_over_clause(now))
    return list(session.scalars(stmt))
