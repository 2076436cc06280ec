"""SLA clocks on tickets: reaction and resolution, derived from the ticket's history.

The arithmetic lives in ``core.sla.calendar`` (business time on a calendar); this module decides when
each clock runs and stores the results on the ticket for fast lists and the ``overdue`` filter.
Everything is derived from the event timeline, so recomputing always gives the same answer.

The rules (docs/sla.md has them with examples):

- Both clocks start when the ticket is created (for mail: when it arrived).
- **Reaction** is met by the first public reply from staff or a subcontractor (comment or mail)
  or by staff moving the ticket out of a ``new`` status. Internal notes never meet it.
- **Resolution** is met by entering a ``closed`` status. Reopening continues the clock with the
  time already used.
- Time in a ``paused`` status does not count: the deadline moves later by the business time
  spent paused (shift semantics, Jira's "pause on"). A paused clock never breaches.
- The targets come from the ticket's current type and contract, counted on the contract's
  calendar from creation, so a type or contract change re-targets the whole history; if the new
  target was already used up, the breach is dated when it was reached.
- A breach, once reached, is remembered (``ever_breached``) even if a later change moves the
  deadline away.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import ColumnElement, Select, and_, event, func, inspect, or_, select, union_all
from sqlalchemy.orm import Session, SessionTransaction, joinedload, object_session, selectinload

from core.contracts.models import Contract
from core.directory.models import User
from core.orm import added_since_flush, track_added, transaction_memo
from core.sla.calendar import BusinessCalendar, parse_duration
from core.sla.models import Calendar
from core.tickets.models import Ticket, TicketEvent
from core.tickets.timeline import timeline_at_hand

_ALWAYS = {"timezone": "Europe/Warsaw", "hours": "24/7"}
RESPONDER_ROLES = frozenset({"admin", "coordinator", "technician", "subcontractor"})
CLOCKS = ("reaction", "resolution")


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
    return _calendar_from_json(
        json.dumps(calendar_definition(calendar), sort_keys=True, default=str)
    )


def warm_up(session: Session, now: datetime) -> int:
    """Build every stored calendar's engine with this year's and next year's public holidays.

    The holidays library imports its country modules and computes a year on first use, about
    a second: a worker does it when it starts, not in the first mail's transaction. Returns
    how many calendars were built.
    """
    calendars = [None, *session.scalars(select(Calendar))]
    for calendar in calendars:
        engine = business_calendar(calendar)
        engine.between(now, now + timedelta(days=366))
    return len(calendars)


def targets(ticket: Ticket) -> tuple[timedelta | None, timedelta | None, BusinessCalendar]:
    cal = business_calendar(ticket.contract.calendar if ticket.contract else None)
    tt = ticket.ticket_type
    if tt is None:
        return None, None, cal
    reaction = parse_duration(tt.reaction, cal) if tt.reaction else None
    resolution = parse_duration(tt.resolution, cal) if tt.resolution else None
    return reaction, resolution, cal


# --- History -----------------------------------------------------------------------------------

Segment = tuple[datetime, datetime | None]  # [start, end); end None = still running


REPLY_TYPES = ("comment", "email_out", "email_in")
# How many of a ticket's first public replies by staff the clocks read when they do not load
# its whole timeline: only the first that counts as a reaction matters (see timeline()).
_FIRST_REPLIES = 8


def timeline(ticket: Ticket) -> list[TicketEvent]:
    """The events the clocks read, in timeline order.

    When the ticket's timeline is loaded already (the console's ticket page, a merge) or the
    ticket is new, that whole timeline. Otherwise one SELECT of what the clocks can use, so a
    reply to a ticket of 800 events does not load 800 events: every status change and SLA
    event, and the first few public replies by staff (the first one that is a reaction ends
    the search, see :func:`first_response`), with the events added in this session and not yet
    flushed. Should none of those few count (a merged ticket's opening mails, staff replies
    dated before the ticket), the whole timeline after all.

    Reading it needs no flush: an event added and not yet flushed is in it all the same, and
    a batch of inbound mail inserts its events once (mailgw.process.run_batch). Of two events
    at one instant, a new one comes after those stored. What was read is kept for the
    transaction (:func:`read_for_clocks`), so a ticket's clocks recomputed twice read once.
    """
    session = object_session(ticket)
    if session is None or timeline_at_hand(ticket):
        return _ordered(ticket)
    memo = transaction_memo(session)
    if ticket.id not in memo.get(_READ, {}):
        with session.no_autoflush:
            read_for_clocks(session, [ticket.id])
    stored: list[TicketEvent] = memo[_READ][ticket.id]
    first = [e for e in stored if e.type in REPLY_TYPES]
    if len(first) >= _FIRST_REPLIES and not any(_is_reaction(ticket, e) for e in first):
        return _ordered(ticket)  # a reaction may be further on: read it all
    pending = [
        e
        for e in added_since_flush(session, TicketEvent)
        if e.ticket is ticket and inspect(e).pending
    ]
    return _sorted([*stored, *pending])


# A reply in a batch of inbound mail looks for its ticket's unflushed events among the events
# added, not among the batch's hundreds of new rows of every kind.
track_added(TicketEvent)


# What read_for_clocks read, by ticket id, kept current within the transaction: the events
# that later flushes insert are added (_keep_current), and a rolled-back savepoint drops it.
_READ = "sla_clock_events"


def read_for_clocks(session: Session, ticket_ids: Iterable[int]) -> None:
    """Read, with one SELECT, what :func:`timeline` needs of these tickets' stored timelines:
    their status changes and SLA events and the first few public replies by staff. A batch of
    inbound mail reads it for every ticket it answers (``mailgw.thread_match.lock_threads``)."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return
    place = (
        func.row_number()
        .over(partition_by=TicketEvent.ticket_id, order_by=(TicketEvent.at, TicketEvent.id))
        .label("place")
    )
    replies = (
        select(TicketEvent.id, place)
        .join(User, User.id == TicketEvent.author_id)
        .where(
            TicketEvent.ticket_id.in_(ids),
            TicketEvent.public.is_(True),
            TicketEvent.type.in_(REPLY_TYPES),
            User.role.in_(RESPONDER_ROLES),
        )
        .subquery()
    )
    wanted = union_all(
        select(TicketEvent.id).where(
            TicketEvent.ticket_id.in_(ids), TicketEvent.type.in_(("status", "sla"))
        ),
        select(replies.c.id).where(replies.c.place <= _FIRST_REPLIES),
    )
    read: dict[int, list[TicketEvent]] = {tid: [] for tid in ids}
    for e in session.scalars(
        select(TicketEvent)
        .where(TicketEvent.id.in_(wanted))
        .options(joinedload(TicketEvent.author))
    ):
        read[e.ticket_id].append(e)
    transaction_memo(session).setdefault(_READ, {}).update(read)


@event.listens_for(Session, "after_flush")
def _keep_current(session: Session, _context: object) -> None:
    memo = transaction_memo(session)
    known: dict[int, list[TicketEvent]] | None = memo.get(_READ)
    if not known:
        return
    if any(isinstance(obj, TicketEvent) for obj in (*session.dirty, *session.deleted)):
        memo.pop(_READ)  # an event moved or gone (a split, an erasure): read again
        return
    for obj in session.new:
        if isinstance(obj, TicketEvent) and obj.ticket_id in known:
            known[obj.ticket_id].append(obj)


@event.listens_for(Session, "after_soft_rollback")
def _forget_read(session: Session, previous: SessionTransaction) -> None:
    # A savepoint's: its events are gone. (The outermost transaction's memo goes with it.)
    if previous.parent is not None:
        transaction_memo(session).pop(_READ, None)


def _ordered(ticket: Ticket) -> list[TicketEvent]:
    """The ticket's whole timeline in order (loaded if it is not)."""
    session = object_session(ticket)
    with session.no_autoflush if session is not None else nullcontext():
        events = list(ticket.events)
    return _sorted(events)


def _sorted(events: list[TicketEvent]) -> list[TicketEvent]:
    return sorted(events, key=lambda e: (e.at, e.id is None, e.id or 0))


def category_periods(
    ticket: Ticket, events: list[TicketEvent] | None = None
) -> list[tuple[datetime, str]]:
    """(since, category) for each stretch of the ticket's life, from creation on; ``events``:
    its :func:`timeline`, when the caller has it already."""
    changes = [
        e
        for e in (timeline(ticket) if events is None else events)
        if e.type == "status" and e.data.get("to_category")
    ]
    initial = changes[0].data.get("from_category", "new") if changes else ticket.status_category
    periods = [(ticket.created_at, str(initial))]
    for e in changes:
        periods.append((max(e.at, ticket.created_at), str(e.data["to_category"])))
    return periods


def _is_reaction(ticket: Ticket, e: TicketEvent) -> bool:
    """Does this event meet the reaction clock (see the module's rules)?"""
    role = e.author.role if e.author is not None else None
    if role not in RESPONDER_ROLES:
        return False
    if e.public and e.type in REPLY_TYPES and e.at >= ticket.created_at:
        # Staff opening a ticket by mail is not a reply to it.
        return not (e.type == "email_in" and e.data.get("opened_ticket"))
    return (
        e.type == "status"
        and e.data.get("from_category") == "new"
        and e.data.get("to_category") != "new"
    )


def first_response(ticket: Ticket, events: list[TicketEvent] | None = None) -> datetime | None:
    """When the reaction clock was met, from the timeline (see the module's rules)."""
    for e in timeline(ticket) if events is None else events:
        if _is_reaction(ticket, e):
            return e.at
    return None


def running_segments(
    ticket: Ticket,
    clock: str,
    responded_at: datetime | None,
    events: list[TicketEvent] | None = None,
) -> list[Segment]:
    """The stretches in which ``clock`` ran: never paused, reaction until met, resolution
    while the ticket was new or open."""
    periods = category_periods(ticket, events)
    segments: list[Segment] = []
    for i, (since, category) in enumerate(periods):
        until = periods[i + 1][0] if i + 1 < len(periods) else None
        if clock == "reaction":
            if responded_at is not None:
                if since >= responded_at:
                    break
                if until is None or until > responded_at:
                    until = responded_at
            running = category in ("new", "open")
        else:
            running = category in ("new", "open")
        if running and (until is None or until > since):
            if segments and segments[-1][1] == since:
                segments[-1] = (segments[-1][0], until)  # new -> open is one stretch
            else:
                segments.append((since, until))
    return segments


@dataclass(frozen=True)
class ClockState:
    target: timedelta | None
    due: datetime | None  # when the target is (or was, or would be on resuming) used up
    warn_at: datetime | None  # when the warning share of the target is used up
    met_at: datetime | None
    breached_at: datetime | None  # when the target was used up while the clock ran
    running: bool  # the clock runs now (not paused, not met)
    used: timedelta  # business time used until now (or until met)


def _reach(
    cal: BusinessCalendar, segments: list[Segment], amount: timedelta
) -> tuple[datetime | None, bool]:
    """When ``amount`` of business time is used along the segments; (instant, reached while
    running). For a clock that stopped short, the instant it would be reached on resuming."""
    used = timedelta(0)
    for start, end in segments:
        if end is None:
            return cal.add(start, amount - used), True
        span = cal.between(start, end)
        if used + span >= amount:
            return cal.add(start, amount - used), True
        used += span
    if not segments:
        return None, False
    return cal.add(segments[-1][1] or segments[-1][0], amount - used), False


def clock_state(
    ticket: Ticket,
    clock: str,
    now: datetime,
    threshold: float | None = None,
    *,
    events: list[TicketEvent] | None = None,
    targeted: tuple[timedelta | None, timedelta | None, BusinessCalendar] | None = None,
) -> ClockState:
    """``events``: the ticket's :func:`timeline`, and ``targeted``: its :func:`targets`, when
    the caller has them already."""
    if events is None:
        events = timeline(ticket)
    reaction, resolution, cal = targeted or targets(ticket)
    target = reaction if clock == "reaction" else resolution
    responded = first_response(ticket, events)
    met_at = (
        responded
        if clock == "reaction"
        else (ticket.resolved_at if ticket.status_category == "closed" else None)
    )
    segments = running_segments(ticket, clock, responded, events)
    running = bool(segments) and segments[-1][1] is None and met_at is None
    used = sum((cal.between(s, e or now) for s, e in segments if s < now), timedelta(0))
    if target is None:
        return ClockState(None, None, None, met_at, None, running, used)
    due, reached = _reach(cal, segments, target)
    share = (
        threshold
        if threshold is not None
        else (ticket.contract.warning_threshold if ticket.contract else 0.8)
    )
    warn_at, _ = _reach(cal, segments, target * share) if 0 < share < 1 else (None, False)
    breached = due if (due is not None and reached and due <= now) else None
    return ClockState(target, due, warn_at, met_at, breached, running, used)


def recompute(ticket: Ticket, now: datetime) -> None:
    """Derive both clocks from the history and store them on the ticket."""
    events = timeline(ticket)
    # The calendar and the targets once for both clocks and the paused time.
    targeted = targets(ticket)
    reaction = clock_state(ticket, "reaction", now, events=events, targeted=targeted)
    resolution = clock_state(ticket, "resolution", now, events=events, targeted=targeted)
    ticket.first_response_at = reaction.met_at
    ticket.reaction_due = reaction.due
    ticket.resolution_due = resolution.due
    ticket.reaction_breached_at = reaction.breached_at
    ticket.resolution_breached_at = resolution.breached_at
    ticket.sla_paused = ticket.status_category == "paused"
    # What the reports read: business minutes to each target's end, and time paused.
    ticket.reaction_minutes = _minutes(reaction.used) if reaction.met_at else None
    ticket.resolution_minutes = _minutes(resolution.used) if resolution.met_at else None
    ticket.paused_minutes = paused_minutes(ticket, resolution, now, events, cal=targeted[2])
    if reaction.breached_at or resolution.breached_at:
        ticket.ever_breached = True
    ticket.sla_next_check = next_check(ticket, (reaction, resolution), now, events)


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def paused_minutes(
    ticket: Ticket,
    resolution: ClockState,
    now: datetime,
    events: list[TicketEvent] | None = None,
    *,
    cal: BusinessCalendar | None = None,
) -> int | None:
    """Business minutes on the contract's calendar (``cal``, when the caller has it) the
    ticket spent in a paused status, up to its resolution (or ``now`` while it is open); None
    without a contract."""
    if ticket.contract is None:
        return None
    cal = cal or business_calendar(ticket.contract.calendar)
    end = resolution.met_at or now
    periods = category_periods(ticket, events)
    paused = timedelta(0)
    for i, (since, category) in enumerate(periods):
        until = periods[i + 1][0] if i + 1 < len(periods) else end
        until = min(until, end)
        if category == "paused" and until > since:
            paused += cal.between(since, until)
    return _minutes(paused)


def next_check(
    ticket: Ticket,
    states: tuple[ClockState, ...],
    now: datetime,
    events: list[TicketEvent] | None = None,
) -> datetime | None:
    """The next instant the scheduler must look at this ticket: a warning or a breach of a
    running clock that has not been recorded yet."""
    noticed = noticed_sla(timeline(ticket) if events is None else events)
    upcoming: list[datetime] = []
    for name, st in zip(CLOCKS, states, strict=True):
        if not st.running or st.due is None:
            continue
        due_key = st.due.isoformat()
        if (name, "breach", due_key) in noticed:
            continue
        # Once the deadline itself has passed, only the breach is still worth telling.
        if st.warn_at is not None and st.due > now and (name, "warning", due_key) not in noticed:
            upcoming.append(st.warn_at)
        upcoming.append(st.due)
    return min(upcoming) if upcoming else None


def noticed_sla(events: Iterable[TicketEvent]) -> set[tuple[object, object, object]]:
    """(clock, kind, due) of the warnings and breaches already recorded among these events."""
    return {
        (e.data.get("clock"), e.data.get("kind"), e.data.get("due"))
        for e in events
        if e.type == "sla"
    }


def open_tickets_under(
    *, contract_codes: Iterable[str] = (), calendar_names: Iterable[str] = ()
) -> Select[int]:
    """The ids of the open tickets under these contracts or calendars."""
    return (
        select(Ticket.id)
        .join(Contract, Ticket.contract_id == Contract.id)
        .outerjoin(Calendar, Contract.calendar_id == Calendar.id)
        .where(
            Ticket.status_category != "closed",
            or_(Contract.code.in_(list(contract_codes)), Calendar.name.in_(list(calendar_names))),
        )
    )


def recompute_open(
    session: Session,
    *,
    contract_codes: Iterable[str] = (),
    calendar_names: Iterable[str] = (),
    now: datetime,
) -> int:
    """Recompute the open tickets under these contracts or calendars in this transaction;
    returns how many got new deadlines (a change that moves no deadline, such as a contract's
    name, counts none). A configuration change uses it only in its rolled-back preview: the
    change itself hands the tickets to the SLA worker (``core.sla.watch.reschedule``)."""
    codes, names = list(contract_codes), list(calendar_names)
    if not codes and not names:
        return 0
    ids = open_tickets_under(contract_codes=codes, calendar_names=names)
    stmt = select(Ticket).where(Ticket.id.in_(ids)).options(selectinload(Ticket.events))
    count = 0
    for ticket in session.scalars(stmt):
        count += recompute_moved(ticket, now)
    session.flush()
    return count


def recompute_moved(ticket: Ticket, now: datetime) -> bool:
    """Recompute the ticket; whether any of its deadlines (or breaches) moved."""
    before = deadlines(ticket)
    recompute(ticket, now)
    return deadlines(ticket) != before


def deadlines(ticket: Ticket) -> tuple[datetime | None, ...]:
    """What a recompute may move: the two deadlines and when they were breached."""
    return (
        ticket.reaction_due,
        ticket.resolution_due,
        ticket.reaction_breached_at,
        ticket.resolution_breached_at,
    )


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
