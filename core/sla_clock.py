"""SLA clocks on tickets: reaction and resolution deadlines from the contract's targets.

The arithmetic lives in ``core.sla`` (business time on a calendar); this module applies it to
tickets and stores the results on the ticket for fast lists and the ``overdue`` filter.

Rules so far (the SLA issue extends them with pauses, reopening and re-targeting):
- both clocks start when the ticket is created;
- reaction is met by ``first_response_at`` (set by ``core.tickets``), resolution by ``resolved_at``;
- a ticket is overdue while a clock that is not met has passed its deadline.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import ColumnElement, and_, or_

from core.models import Calendar, Ticket
from core.sla import BusinessCalendar, parse_duration

_ALWAYS = {"timezone": "Europe/Warsaw", "hours": "24/7"}


def calendar_definition(calendar: Calendar | None) -> dict[str, object]:
    if calendar is None:
        return dict(_ALWAYS)
    return {
        "timezone": calendar.timezone,
        "hours": calendar.hours,
        "holidays": calendar.holidays,
        "extra_holidays": list(calendar.extra_holidays or []),
        "day_length": calendar.day_length_minutes,
    }


@lru_cache(maxsize=256)
def _calendar_from_json(definition: str) -> BusinessCalendar:
    return BusinessCalendar.from_config(json.loads(definition))


def business_calendar(calendar: Calendar | None) -> BusinessCalendar:
    """The engine for a stored calendar, cached by its definition (an edit makes a new one)."""
    return _calendar_from_json(json.dumps(calendar_definition(calendar), sort_keys=True, default=str))


def targets(ticket: Ticket) -> tuple[timedelta | None, timedelta | None, BusinessCalendar]:
    cal = business_calendar(ticket.contract.calendar if ticket.contract else None)
    tt = ticket.ticket_type
    if tt is None:
        return None, None, cal
    reaction = parse_duration(tt.reaction, cal) if tt.reaction else None
    resolution = parse_duration(tt.resolution, cal) if tt.resolution else None
    return reaction, resolution, cal


def recompute(ticket: Ticket, now: datetime) -> None:
    """Derive the deadlines from creation and the targets; record breaches already reached."""
    reaction, resolution, cal = targets(ticket)
    ticket.reaction_due = cal.add(ticket.created_at, reaction) if reaction is not None else None
    ticket.resolution_due = (
        cal.add(ticket.created_at, resolution) if resolution is not None else None
    )
    ticket.sla_paused = ticket.status_category == "paused"


def is_overdue(ticket: Ticket, now: datetime) -> bool:
    if ticket.status_category == "closed" or ticket.sla_paused:
        return False
    if ticket.first_response_at is None and ticket.reaction_due and ticket.reaction_due < now:
        return True
    return bool(ticket.resolution_due and ticket.resolution_due < now)


def overdue_clause(now: datetime) -> ColumnElement[bool]:
    """SQL twin of :func:`is_overdue`, for lists and the ``overdue=true`` filter."""
    return and_(
        Ticket.status_category.notin_(("closed", "paused")),
        or_(
            and_(Ticket.first_response_at.is_(None), Ticket.reaction_due < now),
            Ticket.resolution_due < now,
        ),
    )
