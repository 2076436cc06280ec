"""SLA compliance: the tickets opened in a period under a contract, grouped, with how their
reaction and resolution clocks ended, and the drill-down to those tickets.

Everything is read from what ``core.sla.clocks.recompute`` stored on the ticket, in one
grouped query (counts and percentiles together; ``core.reports.sql.percentile``) plus one for
the totals. A clock's outcome (docs/reports.md):

- ``breached``: its target was used up while it ran (``*_breached_at``), even if met later;
- ``met``: met (first response; a ``closed`` status) without a breach;
- ``running``: it has a target and is neither met nor breached yet;
- ``none``: the ticket has no such target.

Compliance is the share of the tickets with any target that breached neither clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from core.contracts.models import Contract, TicketType
from core.directory.models import Client, User
from core.errors import N_, InputError
from core.reports.base import REPORT_ZONE, Column, Period, Report, Scope
from core.reports.sql import bucket, months, percentile, whole_minutes
from core.tickets.models import Ticket

GROUPS = ("client", "contract", "ticket_type", "assignee", "month")
DRILL_LIMIT = 1000
OUTCOMES = (N_("met"), N_("breached"), N_("running"), N_("none"))
UNASSIGNED = N_("unassigned")
NO_TYPE = N_("no type")

COLUMNS = [
    Column("tickets", N_("Tickets"), "count"),
    Column("reaction_met", N_("Reaction met"), "count"),
    Column("reaction_breached", N_("Reaction breached"), "count"),
    Column("resolution_met", N_("Resolution met"), "count"),
    Column("resolution_breached", N_("Resolution breached"), "count"),
    Column("compliance", N_("Compliance"), "percent"),
    Column("reaction_median", N_("Reaction, median"), "minutes"),
    Column("reaction_p90", N_("Reaction, 90th percentile"), "minutes"),
    Column("resolution_median", N_("Resolution, median"), "minutes"),
    Column("resolution_p90", N_("Resolution, 90th percentile"), "minutes"),
    Column("paused_minutes", N_("Paused"), "minutes"),
]
GROUP_LABELS = {
    "client": N_("Client"),
    "contract": N_("Contract"),
    "ticket_type": N_("Ticket type"),
    "assignee": N_("Assignee"),
    "month": N_("Month"),
}


def reaction_outcome() -> ColumnElement[str]:
    return case(
        (Ticket.reaction_breached_at.is_not(None), "breached"),
        (
            and_(Ticket.first_response_at.is_not(None), Ticket.reaction_due.is_not(None)),
            "met",
        ),
        (Ticket.reaction_due.is_not(None), "running"),
        else_="none",
    )


def resolution_outcome() -> ColumnElement[str]:
    return case(
        (Ticket.resolution_breached_at.is_not(None), "breached"),
        (
            and_(Ticket.status_category == "closed", Ticket.resolution_due.is_not(None)),
            "met",
        ),
        (Ticket.resolution_due.is_not(None), "running"),
        else_="none",
    )


def _tickets(period: Period, scope: Scope) -> list[ColumnElement[bool]]:
    """Opened in the period (``ix_tickets_created_at``), under a contract, in scope; not a
    ticket merged into another (a duplicate: the merge closed it, which met or stopped its
    clocks, and its work went to the ticket it joined, which counts)."""
    lo, hi = period.bounds()
    where = [
        Ticket.created_at >= lo,
        Ticket.created_at < hi,
        Ticket.contract_id.is_not(None),
        Ticket.merged_into_id.is_(None),
    ]
    if scope.client_id is not None:
        where.append(Ticket.client_id == scope.client_id)
    return where


def _figures(session: Session) -> list[ColumnElement[Any]]:
    reaction, resolution = reaction_outcome(), resolution_outcome()
    with_target = or_(Ticket.reaction_due.is_not(None), Ticket.resolution_due.is_not(None))
    return [
        func.count().label("tickets"),
        func.count(case((reaction == "met", 1))).label("reaction_met"),
        func.count(case((reaction == "breached", 1))).label("reaction_breached"),
        func.count(case((resolution == "met", 1))).label("resolution_met"),
        func.count(case((resolution == "breached", 1))).label("resolution_breached"),
        func.count(case((with_target, 1))).label("with_target"),
        func.count(
            case(
                (
                    and_(
                        with_target,
                        Ticket.reaction_breached_at.is_(None),
                        Ticket.resolution_breached_at.is_(None),
                    ),
                    1,
                )
            )
        ).label("compliant"),
        percentile(session, 0.5, Ticket.reaction_minutes).label("reaction_median"),
        percentile(session, 0.9, Ticket.reaction_minutes).label("reaction_p90"),
        percentile(session, 0.5, Ticket.resolution_minutes).label("resolution_median"),
        percentile(session, 0.9, Ticket.resolution_minutes).label("resolution_p90"),
        func.coalesce(func.sum(Ticket.paused_minutes), 0).label("paused_minutes"),
    ]


def _grouping(
    session: Session, group_by: str, period: Period
) -> tuple[list[ColumnElement[Any]], Any, Callable[[Any], tuple[str, Any]]]:
    """(the group's id and label columns, a function adding the joins the labels need, the
    function giving a grouped row's key and id; the id is what :func:`sla_tickets` takes)."""
    if group_by == "client":
        return (
            [Ticket.client_id.label("gid"), Client.name.label("l1")],
            lambda s: s.outerjoin(Client, Client.id == Ticket.client_id),
            lambda r: (r.l1, r.gid),
        )
    if group_by == "contract":
        return (
            [Ticket.contract_id.label("gid"), Contract.code.label("l1"), Contract.name.label("l2")],
            lambda s: s.join(Contract, Contract.id == Ticket.contract_id),
            lambda r: (f"{r.l1} — {r.l2}" if r.l2 else r.l1, r.gid),
        )
    if group_by == "ticket_type":
        return (
            [TicketType.name.label("gid")],
            lambda s: s.outerjoin(TicketType, TicketType.id == Ticket.ticket_type_id),
            lambda r: (r.gid or NO_TYPE, r.gid or ""),
        )
    if group_by == "assignee":
        return (
            [Ticket.assignee_id.label("gid"), User.name.label("l1"), User.email.label("l2")],
            lambda s: s.outerjoin(User, User.id == Ticket.assignee_id),
            lambda r: (UNASSIGNED, 0) if r.gid is None else (person_label(r.l1, r.l2), r.gid),
        )
    names = [name for name, _ in months(period)]
    return (
        [bucket(session, Ticket.created_at, months(period)).label("gid")],
        lambda s: s,
        lambda r: (names[r.gid], names[r.gid]),
    )


def check_group(group_by: str, groups: tuple[str, ...] = GROUPS) -> None:
    if group_by not in groups:
        raise InputError(
            N_("group by one of %(groups)s, not %(value)r"),
            groups=", ".join(groups),
            value=group_by,
        )


def person_label(name: str | None, email: str | None) -> str:
    return name or email or ""


def _values(row: Any) -> dict[str, Any]:
    with_target = row.with_target
    return {
        "tickets": row.tickets,
        "reaction_met": row.reaction_met,
        "reaction_breached": row.reaction_breached,
        "resolution_met": row.resolution_met,
        "resolution_breached": row.resolution_breached,
        "compliance": (100.0 * row.compliant / with_target) if with_target else None,
        "reaction_median": whole_minutes(row.reaction_median),
        "reaction_p90": whole_minutes(row.reaction_p90),
        "resolution_median": whole_minutes(row.resolution_median),
        "resolution_p90": whole_minutes(row.resolution_p90),
        "paused_minutes": int(row.paused_minutes or 0),
    }


def sla_report(session: Session, period: Period, group_by: str, scope: Scope) -> Report:
    """One row per group of the tickets opened in ``period``, and the totals."""
    check_group(group_by)
    labels, joins, label = _grouping(session, group_by, period)
    where = _tickets(period, scope)
    stmt: Select[Any] = joins(select(*labels, *_figures(session)).select_from(Ticket))
    stmt = stmt.where(*where).group_by(*labels)
    rows = []
    for row in session.execute(stmt):
        key, gid = label(row)
        rows.append({"key": key, "id": gid, **_values(row)})
    # Months in order; names alphabetically, the unassigned or untyped group last.
    rows.sort(key=lambda r: (r["id"] in (0, ""), str(r["key"]).casefold()))
    total = session.execute(select(*_figures(session)).select_from(Ticket).where(*where)).one()
    return Report(
        name="sla",
        title=N_("SLA compliance"),
        columns=[Column("key", GROUP_LABELS[group_by], "month" if group_by == "month" else "text")]
        + COLUMNS,
        rows=rows,
        totals={"key": N_("Total"), "id": None, **_values(total)},
        period=period,
        group_by=group_by,
    )


DRILL_COLUMNS = [
    Column("number", N_("Number"), "count"),
    Column("subject", N_("Subject"), "text"),
    Column("client", N_("Client"), "text"),
    Column("contract", N_("Contract"), "text"),
    Column("ticket_type", N_("Ticket type"), "text"),
    Column("assignee", N_("Assignee"), "text"),
    Column("created", N_("Opened"), "date"),
    Column("reaction", N_("Reaction"), "text"),
    Column("resolution", N_("Resolution"), "text"),
    Column("reaction_minutes", N_("Reaction time"), "minutes"),
    Column("resolution_minutes", N_("Resolution time"), "minutes"),
    Column("paused_minutes", N_("Paused"), "minutes"),
]


def month_period(value: Any) -> Period:
    """The month a ``YYYY-MM`` group id names; 400 with a sentence otherwise."""
    text = str(value)
    try:
        if len(text) != 7:
            raise ValueError(text)
        return Period.month_of(date.fromisoformat(text + "-01"))
    except ValueError:
        raise InputError(N_("a month is written YYYY-MM, not %(value)r"), value=text) from None


def _group_filter(period: Period, group_by: str, group_id: Any) -> list[ColumnElement[bool]]:
    """The condition that picks one group's tickets, from the ``id`` of its row."""
    if group_by == "month":
        lo, hi = month_period(group_id).bounds()
        return [Ticket.created_at >= lo, Ticket.created_at < hi]
    if group_by == "ticket_type":
        if not group_id:
            return [Ticket.ticket_type_id.is_(None)]
        return [TicketType.name == str(group_id)]
    column = {
        "client": Ticket.client_id,
        "contract": Ticket.contract_id,
        "assignee": Ticket.assignee_id,
    }[group_by]
    try:
        number = int(group_id)
    except (TypeError, ValueError):
        raise InputError(N_("%(value)r is not a group of this report"), value=group_id) from None
    if group_by == "assignee" and number == 0:
        return [Ticket.assignee_id.is_(None)]
    return [column == number]


def sla_tickets(
    session: Session, period: Period, group_by: str | None, group_id: Any, scope: Scope
) -> Report:
    """The tickets behind one row of :func:`sla_report` (``group_by`` None: behind the
    totals), by number, at most :data:`DRILL_LIMIT`."""
    where = _tickets(period, scope)
    if group_by is not None:
        check_group(group_by)
        where += _group_filter(period, group_by, group_id)
    stmt = (
        select(
            Ticket.id,
            Ticket.number,
            Ticket.subject,
            Client.name.label("client"),
            Contract.code.label("contract"),
            TicketType.name.label("ticket_type"),
            User.name.label("assignee_name"),
            User.email.label("assignee_email"),
            Ticket.created_at,
            reaction_outcome().label("reaction"),
            resolution_outcome().label("resolution"),
            Ticket.reaction_minutes,
            Ticket.resolution_minutes,
            Ticket.paused_minutes,
        )
        .select_from(Ticket)
        .outerjoin(Client, Client.id == Ticket.client_id)
        .join(Contract, Contract.id == Ticket.contract_id)
        .outerjoin(TicketType, TicketType.id == Ticket.ticket_type_id)
        .outerjoin(User, User.id == Ticket.assignee_id)
        .where(*where)
        .order_by(Ticket.number)
        .limit(DRILL_LIMIT)
    )
    rows = [
        {
            "key": f"#{r.number}",
            "id": r.number,
            "number": r.number,
            "subject": r.subject,
            "client": r.client,
            "contract": r.contract,
            "ticket_type": r.ticket_type,
            "assignee": person_label(r.assignee_name, r.assignee_email) or None,
            "created": r.created_at.astimezone(REPORT_ZONE).date().isoformat(),
            "reaction": r.reaction,
            "resolution": r.resolution,
            "reaction_minutes": r.reaction_minutes,
            "resolution_minutes": r.resolution_minutes,
            "paused_minutes": r.paused_minutes,
        }
        for r in session.execute(stmt)
    ]
    return Report(
        name="sla_tickets",
        title=N_("SLA compliance: tickets"),
        columns=DRILL_COLUMNS,
        rows=rows,
        period=period,
        group_by=group_by,
    )
