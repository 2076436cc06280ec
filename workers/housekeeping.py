"""Cheap periodic clean-ups run by the scheduler.

Each function has the scheduler's task signature ``fn(session_factory, now)``: it owns one
unit of work and calls into ``core`` for the rule itself. They are safe to run from two
schedulers at once: each is a single idempotent statement.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from core.access.accounts import purge_expired_sessions as purge_sessions
from core.db import unit_of_work
from core.tickets import tallies

log = logging.getLogger(__name__)


def purge_expired_sessions(session_factory: sessionmaker[Session], now: datetime) -> int:
    """Delete web sessions that expired by ``now``; returns how many went.

    Expired sessions are already refused at login time; this only keeps the table small.
    """
    with unit_of_work(session_factory) as session:
        count = purge_sessions(session, now)
    if count:
        log.info("purged %d expired web session(s)", count)
    return count


def compact_ticket_tallies(session_factory: sessionmaker[Session], now: datetime) -> int:
    """Fold the ticket tallies' delta rows (``core.tickets.tallies.compact``); PostgreSQL only."""
    with unit_of_work(session_factory) as session:
        return tallies.compact(session)
