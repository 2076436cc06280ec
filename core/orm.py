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
