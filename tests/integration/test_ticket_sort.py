"""Sorting the list by a deadline (issue 15): the clocks that run come first, the most overdue
then the nearest; paused tickets apart after them; met, closed and untargeted last. The
reaction and resolution columns sort by their own clock; ``-`` reverses within each group."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from core.tickets.models import Ticket
from core.tickets.queries import TicketFilter, search_tickets
from core.tickets.services import NewTicket, open_ticket
from tests.factories import at, build_world

NOW = at("2026-03-04 12:00")
H = timedelta(hours=1)


def _order(session: Session, user: object, sort: str) -> list[str]:
    page = search_tickets(session, user, TicketFilter(sort=sort, per_page=50), NOW)  # type: ignore[arg-type]
    return [t.subject for t in page.items]


def test_running_deadlines_first_paused_apart(session: Session) -> None:
    w = build_world(session)
    cases = {
        # subject: (reaction_due, first_response_at, resolution_due, paused, category)
        "late 2h": (NOW - 2 * H, None, NOW + 5 * H, False, "new"),
        "due in 1h": (NOW + H, None, NOW + 6 * H, False, "new"),
        "paused, due 3h ago": (NOW - 3 * H, None, NOW + 2 * H, True, "paused"),
        "answered, resolution in 30m": (NOW - 4 * H, NOW - 5 * H, NOW + H / 2, False, "open"),
        "closed": (NOW - 9 * H, NOW - 9 * H, NOW - 8 * H, False, "closed"),
        "triage": (None, None, None, False, "new"),
    }
    for subject, (reaction, answered, resolution, paused, category) in cases.items():
        t: Ticket = open_ticket(session, NewTicket(subject=subject, requester=w.users["client"]))
        t.reaction_due, t.first_response_at, t.resolution_due = reaction, answered, resolution
        t.sla_paused, t.status_category = paused, category
        t.resolved_at = NOW - 8 * H if category == "closed" else None
    session.flush()
    coordinator = w.users["coordinator"]

    nearest = _order(session, coordinator, "deadline")
    assert nearest[:3] == ["late 2h", "answered, resolution in 30m", "due in 1h"]
    assert nearest[3] == "paused, due 3h ago"  # apart, not among the overdue
    assert set(nearest[4:]) == {"closed", "triage"}

    reaction = _order(session, coordinator, "reaction")
    assert reaction[:2] == ["late 2h", "due in 1h"]
    assert reaction[2] == "paused, due 3h ago"
    assert set(reaction[3:]) == {"answered, resolution in 30m", "closed", "triage"}

    resolution = _order(session, coordinator, "resolution")
    assert resolution[:3] == ["answered, resolution in 30m", "late 2h", "due in 1h"]

    farthest = _order(session, coordinator, "-deadline")
    assert farthest[:3] == ["due in 1h", "answered, resolution in 30m", "late 2h"]
    assert farthest[3] == "paused, due 3h ago"
