"""The mapping base every model derives from, and the UTC column type.

Each package of ``core`` keeps its models in its own ``models.py``; :mod:`core.tables`
imports them all so that SQLAlchemy's registry and Alembic see every table. Times are stored in
UTC (``UTCDateTime``); calendar logic happens in the calendar's zone in ``core.sla.calendar``.
Natural keys (calendar name, client name, contract code, user e-mail, ...) are unique so that
declarative configuration can upsert by them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always gives back aware UTC datetimes.

    SQLite has no time zones, so naive values are refused on the way in: a naive datetime
    in the domain is a bug waiting to happen around DST.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


# --- per-transaction memo -------------------------------------------------------------------


def transaction_memo(session: Session) -> dict[str, Any]:
    """A dict that lives as long as the session's outermost transaction.

    For lookups of configuration that does not change under a running transaction (mailboxes,
    a ticket's Reply-To): one inbound mail asks for them from several places.
    """
    memo: dict[str, Any] = session.info.setdefault("pulpit_transaction_memo", {})
    return memo


@event.listens_for(Session, "after_transaction_end")
def _forget_transaction_memo(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction: the memo was about it
        session.info.pop("pulpit_transaction_memo", None)


# --- objects added since the last flush ------------------------------------------------------

_ADDED = "pulpit_added_since_flush"
_TRACKED: tuple[type, ...] = ()


def track_added(*classes: type) -> None:
    """Note each new object of these classes as it joins a session (by ``add`` or cascade),
    for :func:`added_since_flush`."""
    global _TRACKED
    _TRACKED = (*_TRACKED, *(c for c in classes if c not in _TRACKED))


def added_since_flush(session: Session, cls: type) -> list[Any]:
    """The objects of ``cls`` (registered with :func:`track_added`) added to ``session``
    since its last flush: what ``session.new`` holds of them, and perhaps some since expunged.

    "Was a coordinator (a substitution, a mailbox) added?" asked of ``session.new`` walks every
    pending object; a batch of inbound mail holds hundreds until its one flush and asks for
    each of its tickets.
    """
    added: dict[type, list[Any]] = session.info.get(_ADDED, {})
    return [obj for kind, objs in added.items() if issubclass(kind, cls) for obj in objs]


@event.listens_for(Session, "transient_to_pending")
def _note_added(session: Session, instance: object) -> None:
    if isinstance(instance, _TRACKED):
        session.info.setdefault(_ADDED, {}).setdefault(type(instance), []).append(instance)


@event.listens_for(Session, "after_flush")
def _forget_added_at_flush(session: Session, _context: Any) -> None:
    # Flushed: persistent now, changes to them show in session.dirty.
    session.info.pop(_ADDED, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_added_at_rollback(session: Session, _previous: Any) -> None:
    # A rollback expunges what was pending (a savepoint begins with a flush, so all of it).
    session.info.pop(_ADDED, None)
