"""The desk's figures for monitoring, read from the database at scrape time (``/metrics``).

Pulpit runs as several processes, possibly on several hosts (``pulpit mailgw``, ``pulpit web``,
workers, the scheduler), all sharing one database. Counters kept in one process would see only
that process's share, so everything about mail and tickets is computed here from the rows, and
any web process answers for the whole desk. ``web.metrics`` turns :class:`DeskFigures` into
Prometheus metric families; docs/metrics.md lists them.

Every figure is one small query through an index, never a scan of a big table:

- Totals that only grow (mails stored, mails processed, mails sent) come from the primary
  key's high-water mark minus the small sets still waiting: ``max(id)`` is one index probe,
  and the rows in ``received``/``quarantined``/``ignored`` (inbound) or
  ``pending``/``sending``/``failed`` (outbound) are found through the state indexes. So
  ``processed = stored - received - quarantined - ignored`` and ``sent = queued - pending -
  sending - failed``: both are monotonic (every transition out of a counted state is into the
  derived one, or between counted states), so Prometheus may ``rate()`` them. A deleted row
  counts as processed (or sent); ids lost to a rolled-back insert on PostgreSQL count too —
  a handful, never a trend.
- The processing latency (``received_at`` → ``processed_at``, both stored on the row) is the
  distribution over the mails processed in the last :data:`LATENCY_WINDOW`, looked for among
  the newest :data:`LATENCY_ROWS` mails by id (a bounded range of the primary key; there is no
  index on ``processed_at`` and none is needed). A requeued old mail is left out.
- SLA breaches in the last 24 hours: a clock's ``*_breached_at`` is its due instant
  (``core.sla.clocks.clock_state``), so the breaches since an instant are the tickets whose
  due falls between it and now with a breach recorded, found through ``ix_tickets_reaction_due``
  (migration 0021) and ``ix_tickets_resolution_due``.
- Open tickets by category and the overdue ones (the list's ``overdue=true``,
  ``core.sla.clocks.overdue_clause``) go through ``ix_tickets_status_category``: the closed
  ones, the bulk of a big desk, are never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.mail.models import InboundMessage, OutboundMail
from core.tickets.models import Ticket

INBOUND_WAITING_STATES = ("received", "quarantined", "ignored")
OUTBOUND_WAITING_STATES = ("pending", "sending", "failed")
OPEN_CATEGORIES = ("new", "open", "paused")
LATENCY_WINDOW = timedelta(minutes=5)
LATENCY_ROWS = 10_000
BREACH_WINDOW = timedelta(hours=24)


@dataclass
class DeskFigures:
    mails_stored: int = 0  # max(inbound_messages.id)
    inbound_by_state: dict[str, int] = field(default_factory=dict)  # the waiting states only
    oldest_waiting_seconds: float = 0.0  # age of the oldest inbound mail in "received"
    outbound_queued: int = 0  # max(outbound_mail.id)
    outbound_by_state: dict[str, int] = field(default_factory=dict)  # pending/sending/failed
    oldest_pending_outbound_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, mails processed lately
    breaches: dict[str, int] = field(default_factory=dict)  # clock -> breaches in 24 h
    open_by_category: dict[str, int] = field(default_factory=dict)
    overdue: int = 0

    @property
    def mails_processed(self) -> int:
        return max(0, self.mails_stored - sum(self.inbound_by_state.values()))

    @property
    def mails_sent(self) -> int:
        return max(0, self.outbound_queued - sum(self.outbound_by_state.values()))


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _age(now: datetime, since: datetime | None) -> float:
    since = _aware(since)
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


def _counts(
    session: Session, column: InstrumentedAttribute[str], states: tuple[str, ...]
) -> dict[str, int]:
    """Rows per state, for these states only: an index-only scan of the state index."""
    rows = session.execute(select(column, func.count()).where(column.in_(states)).group_by(column))
    found = {state: count for state, count in rows}
    return {state: int(found.get(state, 0)) for state in states}


def desk_figures(session: Session, now: datetime) -> DeskFigures:
    """Every figure of :class:`DeskFigures`, one query per family (read only)."""
    f = DeskFigures()
    f.mails_stored = session.scalar(select(func.max(InboundMessage.id))) or 0
    f.inbound_by_state = _counts(session, InboundMessage.state, INBOUND_WAITING_STATES)
    f.oldest_waiting_seconds = _age(
        now,
        session.scalar(
            select(func.min(InboundMessage.received_at)).where(InboundMessage.state == "received")
        ),
    )
    f.outbound_queued = session.scalar(select(func.max(OutboundMail.id))) or 0
    f.outbound_by_state = _counts(session, OutboundMail.state, OUTBOUND_WAITING_STATES)
    f.oldest_pending_outbound_seconds = _age(
        now,
        session.scalar(
            select(func.min(OutboundMail.created_at)).where(OutboundMail.state == "pending")
        ),
    )

    since = now - LATENCY_WINDOW
    rows = session.execute(
        select(InboundMessage.received_at, InboundMessage.processed_at).where(
            InboundMessage.id > f.mails_stored - LATENCY_ROWS,
            InboundMessage.state == "processed",
            InboundMessage.processed_at >= since,
        )
    ).all()
    for received_at, processed_at in rows:
        start, end = _aware(received_at), _aware(processed_at)
        if start is not None and end is not None:
            f.latencies.append(max(0.0, (end - start).total_seconds()))

    day_ago = now - BREACH_WINDOW
    reaction_window = and_(Ticket.reaction_due >= day_ago, Ticket.reaction_due <= now)
    resolution_window = and_(Ticket.resolution_due >= day_ago, Ticket.resolution_due <= now)
    reaction, resolution = session.execute(
        select(
            func.count(case((and_(reaction_window, Ticket.reaction_breached_at.is_not(None)), 1))),
            func.count(
                case((and_(resolution_window, Ticket.resolution_breached_at.is_not(None)), 1))
            ),
        ).where(or_(reaction_window, resolution_window))
    ).one()
    f.breaches = {"reaction": int(reaction or 0), "resolution": int(resolution or 0)}

    late = or_(
        and_(Ticket.first_response_at.is_(None), Ticket.reaction_due < now),
        Ticket.resolution_due < now,
    )
    by_category = session.execute(
        select(Ticket.status_category, func.count(), func.count(case((late, 1))))
        .where(Ticket.status_category.in_(OPEN_CATEGORIES))
        .group_by(Ticket.status_category)
    ).all()
    f.open_by_category = {c: 0 for c in OPEN_CATEGORIES}
    for category, count, overdue in by_category:
        f.open_by_category[category] = count
        if category != "paused":  # a paused clock is not overdue (overdue_clause)
            f.overdue += int(overdue or 0)
    return f
