"""The billing statement of one client for a period: what a bookkeeper invoices from.

:func:`statement` has one row per ticket of the client with work started in the period (its
entries, time, billable time and amount, rounded once per ticket as in
``core.reports.worktime``) and totals that add the rows up. :func:`statement_entries` is the
second sheet: every billable entry behind it, each worth ``minutes * rate / 60`` rounded half
up on its own, so its amounts may differ from the ticket's by a grosz of rounding; the
statement's amounts are the ones to invoice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.contracts.models import Contract
from core.directory.models import Client, User
from core.errors import N_, NotFound
from core.reports.base import REPORT_ZONE, Column, Period, Report, Scope
from core.reports.sla import person_label
from core.reports.sql import half_up, room_to_hash
from core.reports.worktime import CURRENCY, entries_in, finish, per_ticket, ticket_key
from core.tickets.models import Ticket
from core.worklog.models import WorkLogEntry, WorkType

COLUMNS = [
    Column("number", N_("Number"), "count"),
    Column("subject", N_("Subject"), "text"),
    Column("contract", N_("Contract"), "text"),
    Column("entries", N_("Entries"), "count"),
    Column("minutes", N_("Time"), "minutes"),
    Column("billable_minutes", N_("Billable"), "minutes"),
    Column("amount", N_("Amount"), "money"),
]
ENTRY_COLUMNS = [
    Column("date", N_("Date"), "date"),
    Column("ticket", N_("Ticket"), "text"),
    Column("person", N_("Person"), "text"),
    Column("work_type", N_("Work type"), "text"),
    Column("description", N_("Description"), "text"),
    Column("minutes", N_("Time"), "minutes"),
    Column("amount", N_("Amount"), "money"),
]


def _client(session: Session, client_id: int) -> Client:
    client = session.get(Client, client_id)
    if client is None:
        raise NotFound(N_("no client with id %(id)s"), id=client_id)
    return client


def statement(
    session: Session, client_id: int, period: Period, *, language: str, client_view: bool = False
) -> Report:
    """One row per ticket of the client with entries started in ``period``, by number.

    ``language`` is the one :func:`statement_entries` names work types in; the statement
    takes it too so both sheets of one export are asked for alike."""
    room_to_hash(session)
    client = _client(session, client_id)
    rows = per_ticket(  # by number
        session,
        period,
        Scope(client_id=client.id, client_view=client_view),
        [
            ("key", ticket_key(Ticket.number)),
            ("id", Ticket.number),
            ("number", Ticket.number),
            ("subject", Ticket.subject),
            ("contract", Contract.code),
        ],
    )
    rows, totals, columns, currency = finish(rows, COLUMNS, {"key": N_("Total"), "id": None})
    for row in [*rows, totals]:
        row.pop("non_billable_minutes", None)
    return Report(
        name="statement",
        title=N_("Billing statement"),
        columns=columns,
        rows=rows,
        totals=totals,
        period=period,
        currency=currency,
        caption=client.name,
    )


def statement_entries(
    session: Session, client_id: int, period: Period, *, language: str, client_view: bool = False
) -> Report:
    """The billable entries of the client's tickets started in ``period``, in time order;
    work types named in ``language`` where they have a label for it."""
    room_to_hash(session)
    client = _client(session, client_id)
    stmt = (
        select(
            WorkLogEntry.id,
            WorkLogEntry.started_at,
            WorkLogEntry.minutes,
            WorkLogEntry.rate,
            WorkLogEntry.description,
            Ticket.number,
            User.name.label("user_name"),
            User.email.label("user_email"),
            WorkType.name.label("work_type"),
            WorkType.labels.label("work_type_labels"),
            Contract.currency,
        )
        .select_from(WorkLogEntry)
        .join(Ticket, Ticket.id == WorkLogEntry.ticket_id)
        .join(User, User.id == WorkLogEntry.user_id)
        .outerjoin(Contract, Contract.id == Ticket.contract_id)
        .outerjoin(WorkType, WorkType.id == WorkLogEntry.work_type_id)
        .where(
            *entries_in(period, Scope(client_id=client.id, client_view=client_view)),
            WorkLogEntry.billable,
        )
        .order_by(WorkLogEntry.started_at, WorkLogEntry.id)
    )
    rows: list[dict[str, Any]] = []
    for r in session.execute(stmt):
        labels = r.work_type_labels or {}
        rows.append(
            {
                "key": f"#{r.number}",
                "id": r.id,
                "date": r.started_at.astimezone(REPORT_ZONE).date().isoformat(),
                "ticket": f"#{r.number}",
                "person": person_label(r.user_name, r.user_email),
                "work_type": (labels.get(language) or r.work_type) if r.work_type else None,
                "description": r.description,
                "minutes": r.minutes,
                "amount": half_up(r.minutes * r.rate) if r.rate is not None else None,
                "currency": r.currency if r.rate is not None else None,
            }
        )
    currencies = {r["currency"] for r in rows if r["currency"] is not None}
    several = len(currencies) > 1
    amounts = [r["amount"] for r in rows if r["amount"] is not None]
    totals: dict[str, Any] = {
        "key": N_("Total"),
        "id": None,
        "minutes": sum(r["minutes"] for r in rows),
        "amount": None if several or not amounts else sum(amounts),
    }
    columns = list(ENTRY_COLUMNS)
    if several:
        columns.insert(5, CURRENCY)
    else:
        for row in rows:
            row.pop("currency")
    return Report(
        name="statement_entries",
        title=N_("Billing statement: entries"),
        columns=columns,
        rows=rows,
        totals=totals,
        period=period,
        currency=next(iter(currencies)) if len(currencies) == 1 else None,
        caption=client.name,
    )
