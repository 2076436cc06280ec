"""Backlog and workload: what is open now and with whom, and what came in against what was
closed, week by week.

- :func:`backlog_report`: the open tickets (any status not ``closed``, paused included) by age
  since they were opened, with how many are overdue (``core.sla.clocks.overdue_clause``).
- :func:`workload_report`: per assignee (and the unassigned): open and overdue tickets, and the
  minutes each person logged in the 30 days before ``now`` (on any ticket in scope).
- :func:`arrivals_report`: per ISO week of the period (weeks in the report zone; the first and
  last week count only their days inside the period): tickets opened, and tickets closed
  (``resolved_at``, which a reopening clears, so a ticket closed twice counts at its last
  closing, and a reopened one not at all until it closes again).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from core.directory.models import User
from core.errors import N_
from core.reports.base import Column, Period, Report, Scope
from core.reports.sla import UNASSIGNED, person_label
from core.reports.sql import bucket, iso_weeks
from core.sla.clocks import overdue_clause
from core.tickets.models import Ticket
from core.worklog.models import WorkLogEntry

# (id, label, the age it is younger than); the last has no limit.
BUCKETS: list[tuple[str, str, timedelta | None]] = [
    ("1d", N_("less than 1 day"), timedelta(days=1)),
    ("3d", N_("1-3 days"), timedelta(days=3)),
    ("7d", N_("3-7 days"), timedelta(days=7)),
    ("30d", N_("7-30 days"), timedelta(days=30)),
    ("older", N_("more than 30 days"), None),
]
WORKLOAD_DAYS = 30


def _open(scope: Scope) -> list[ColumnElement[bool]]:
    where = [Ticket.status_category != "closed"]
    if scope.client_id is not None:
        where.append(Ticket.client_id == scope.client_id)
    return where


def _counts(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: sum(r[k] for r in rows) for k in keys}


def backlog_report(session: Session, scope: Scope, now: datetime) -> Report:
    """The open tickets in five age buckets, every bucket shown, and the totals."""
    bucket = case(
        *(
            (Ticket.created_at > now - limit, index)
            for index, (_, _, limit) in enumerate(BUCKETS)
            if limit is not None
        ),
        else_=len(BUCKETS) - 1,
    ).label("bucket")
    overdue = func.count(case((overdue_clause(now), 1))).label("overdue")
    stmt = select(bucket, func.count().label("open"), overdue).where(*_open(scope)).group_by(bucket)
    found = {row.bucket: row for row in session.execute(stmt)}
    rows = []
    for index, (bid, label, _) in enumerate(BUCKETS):
        row = found.get(index)
        rows.append(
            {
                "key": label,
                "id": bid,
                "open": row.open if row else 0,
                "overdue": row.overdue if row else 0,
            }
        )
    return Report(
        name="backlog",
        title=N_("Backlog by age"),
        columns=[
            Column("key", N_("Age"), "text"),
            Column("open", N_("Open"), "count"),
            Column("overdue", N_("Overdue"), "count"),
        ],
        rows=rows,
        totals={"key": N_("Total"), "id": None, **_counts(rows, ("open", "overdue"))},
    )


def workload_report(session: Session, scope: Scope, now: datetime) -> Report:
    """Per person: open and overdue tickets assigned, minutes logged in the last 30 days."""
    tickets = select(
        Ticket.assignee_id.label("person"),
        literal(1).label("open"),
        case((overdue_clause(now), 1), else_=0).label("overdue"),
        literal(0).label("minutes"),
    ).where(*_open(scope))
    since = now - timedelta(days=WORKLOAD_DAYS)
    work = (
        select(
            WorkLogEntry.user_id.label("person"),
            literal(0).label("open"),
            literal(0).label("overdue"),
            WorkLogEntry.minutes.label("minutes"),
        )
        .join(Ticket, Ticket.id == WorkLogEntry.ticket_id)
        .where(WorkLogEntry.started_at >= since, WorkLogEntry.started_at < now)
    )
    if scope.client_id is not None:
        work = work.where(Ticket.client_id == scope.client_id)
    both = union_all(tickets, work).subquery()
    stmt = (
        select(
            both.c.person,
            User.name,
            User.email,
            func.sum(both.c.open).label("open"),
            func.sum(both.c.overdue).label("overdue"),
            func.sum(both.c.minutes).label("minutes"),
        )
        .outerjoin(User, User.id == both.c.person)
        .group_by(both.c.person, User.name, User.email)
    )
    rows = [
        {
            "key": person_label(r.name, r.email) if r.person is not None else UNASSIGNED,
            "id": r.person or 0,
            "open": int(r.open),
            "overdue": int(r.overdue),
            "worked_minutes": int(r.minutes),
        }
        for r in session.execute(stmt)
    ]
    rows.sort(key=lambda r: (r["id"] == 0, str(r["key"]).casefold()))
    return Report(
        name="workload",
        title=N_("Workload"),
        columns=[
            Column("key", N_("Assignee"), "text"),
            Column("open", N_("Open"), "count"),
            Column("overdue", N_("Overdue"), "count"),
            Column("worked_minutes", N_("Worked in the last 30 days"), "minutes"),
        ],
        rows=rows,
        totals={
            "key": N_("Total"),
            "id": None,
            **_counts(rows, ("open", "overdue", "worked_minutes")),
        },
    )


def arrivals_report(session: Session, period: Period, scope: Scope) -> Report:
    """Per ISO week of the period: tickets opened and tickets closed in it."""
    lo, hi = period.bounds()
    weeks = iso_weeks(period)
    opened = select(
        bucket(session, Ticket.created_at, weeks).label("week"),
        literal(1).label("arrivals"),
        literal(0).label("closures"),
    ).where(Ticket.created_at >= lo, Ticket.created_at < hi)
    closed = select(
        bucket(session, Ticket.resolved_at, weeks).label("week"),
        literal(0).label("arrivals"),
        literal(1).label("closures"),
    ).where(Ticket.resolved_at >= lo, Ticket.resolved_at < hi)
    if scope.client_id is not None:
        opened = opened.where(Ticket.client_id == scope.client_id)
        closed = closed.where(Ticket.client_id == scope.client_id)
    both = union_all(opened, closed).subquery()
    stmt = select(
        both.c.week,
        func.sum(both.c.arrivals).label("arrivals"),
        func.sum(both.c.closures).label("closures"),
    ).group_by(both.c.week)
    found = {r.week: r for r in session.execute(stmt)}
    rows = []
    for index, (week, _) in enumerate(weeks):
        r = found.get(index)
        rows.append(
            {
                "key": week,
                "id": week,
                "arrivals": int(r.arrivals) if r else 0,
                "closures": int(r.closures) if r else 0,
            }
        )
    return Report(
        name="arrivals",
        title=N_("Arrivals and closures"),
        columns=[
            Column("key", N_("Week"), "text"),
            Column("arrivals", N_("Opened"), "count"),
            Column("closures", N_("Closed"), "count"),
        ],
        rows=rows,
        totals={"key": N_("Total"), "id": None, **_counts(rows, ("arrivals", "closures"))},
        period=period,
    )
