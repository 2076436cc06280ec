"""Work time: the work log entries that started in a period, grouped, with what the billable
ones are worth.

One grouped query over ``work_log_entries`` (by ``started_at``, ``ix_work_log_entries_started_at``)
joined to the ticket (for the client, contract and scope) and the contract (its currency).
By ticket (:func:`per_ticket`, also the billing statement's rows) the entries are summed by
``ticket_id`` alone and the ticket and contract joined to the sums afterwards: a year has
200,000 tickets, and the time goes on them.

An entry's worth is ``minutes * rate / 60`` at the rate copied onto it when written; a group's
amount is the exact sum of ``minutes * rate`` over its billable entries with a rate, divided by
60 and rounded half up once (:func:`core.reports.sql.half_up`), so no per-entry rounding piles
up; the totals add the rows' amounts, so the table adds up. A group with no rated entry has no
amount (None), unlike one whose rated entries are all non-billable (0).

Currencies: rates are in the contract's currency. The query groups by the currency of the
rated entries too; a group whose rated entries are in one currency stays one row (its unrated
entries added in), a group with several is split into one row per currency (and one for its
unrated entries). When the rows hold more than one currency the report gets a ``currency``
column and its totals have no amount, since a sum of zloty and euro means nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, String, case, cast, func, literal, select
from sqlalchemy.orm import QueryableAttribute, Session

from core.contracts.models import Contract
from core.directory.models import Client, User
from core.errors import N_
from core.reports.base import Column, Period, Report, Scope
from core.reports.sla import check_group, person_label
from core.reports.sql import (
    bucket,
    dialect,
    half_up,
    in_index_order,
    months,
    room_to_hash,
)
from core.tickets.models import Ticket
from core.worklog.models import WorkLogEntry, WorkType

GROUPS = ("client", "contract", "technician", "ticket", "month", "work_type")
NO_CLIENT = N_("no client")
NO_CONTRACT = N_("no contract")
NO_WORK_TYPE = N_("no work type")

GROUP_LABELS = {
    "client": N_("Client"),
    "contract": N_("Contract"),
    "technician": N_("Technician"),
    "ticket": N_("Ticket"),
    "month": N_("Month"),
    "work_type": N_("Work type"),
}
CURRENCY = Column("currency", N_("Currency"), "text")
FIGURES = [
    Column("entries", N_("Entries"), "count"),
    Column("minutes", N_("Time"), "minutes"),
    Column("billable_minutes", N_("Billable"), "minutes"),
    Column("non_billable_minutes", N_("Non-billable"), "minutes"),
    Column("amount", N_("Amount"), "money"),
]

Joins = Callable[[Select[Any]], Select[Any]]


def rated_currency() -> ColumnElement[str]:
    """The currency of an entry with a rate (its contract's), NULL for one without."""
    return case((WorkLogEntry.rate.is_not(None), Contract.currency))


def sums() -> list[ColumnElement[Any]]:
    """The sums of a group of entries."""
    entry = WorkLogEntry
    return [
        func.count().label("entries"),
        _whole(func.sum(entry.minutes)).label("minutes"),
        _whole(func.sum(case((entry.billable, entry.minutes), else_=0))).label("billable_minutes"),
        # Exact minor-units-times-minutes; bigint, as a year of them passes 2^31 easily.
        _whole(
            func.sum(
                case(
                    (
                        entry.billable & entry.rate.is_not(None),
                        cast(entry.minutes, BigInteger) * entry.rate,
                    ),
                    else_=0,
                )
            )
        ).label("value"),
        func.count(entry.rate).label("rated"),
    ]


def _whole(total: ColumnElement[Any]) -> ColumnElement[int]:
    """A sum as bigint (PostgreSQL sums bigints as numeric, which arrives as Decimal)."""
    return cast(total, BigInteger)


def entries_in(period: Period, scope: Scope) -> list[ColumnElement[bool]]:
    """Started in the period (``ix_work_log_entries_started_at``), on a ticket in scope."""
    return _entries_of(period, scope) + _tickets_of(scope)


def _entries_of(period: Period, scope: Scope) -> list[ColumnElement[bool]]:
    """The conditions of :func:`entries_in` on the entry itself."""
    lo, hi = period.bounds()
    where = [WorkLogEntry.started_at >= lo, WorkLogEntry.started_at < hi]
    if scope.client_view:
        # What the client is shown of the work log (core.worklog.services.client_entries),
        # with the contract's condition in _tickets_of.
        where.append(WorkLogEntry.billable.is_(True))
    return where


def _tickets_of(scope: Scope) -> list[ColumnElement[bool]]:
    """The conditions of :func:`entries_in` on the entry's ticket."""
    where: list[ColumnElement[bool]] = []
    if scope.client_id is not None:
        where.append(Ticket.client_id == scope.client_id)
    if scope.client_view:
        shown = select(Contract.id).where(Contract.worklog_visible_to_client.is_(True))
        where.append(Ticket.contract_id.in_(shown))
    return where


def per_ticket(
    session: Session,
    period: Period,
    scope: Scope,
    labels: Sequence[tuple[str, ColumnElement[Any] | QueryableAttribute[Any]]],
) -> list[dict[str, Any]]:
    """The rows of :func:`grouped` by ticket, by number: ``labels`` name a row's own fields
    and give each as SQL over the ticket and its contract (``("id", Ticket.number)``).

    The entries are summed by ``ticket_id`` alone in a query of ``work_log_entries`` only
    (the scope's conditions on the ticket as a semi-join), and the ticket and its contract
    are joined to the sums after. Over most of the work log's history, on PostgreSQL, the
    sums walk the covering ticket index in order (:func:`_most_of_history`); otherwise they
    hash the period's entries (:func:`~core.reports.sql.room_to_hash`). A ticket's rated
    entries are all in its contract's currency, so no ticket is split by currency.

    A year has 200,000 tickets with entries, so SQL computes every field, amounts included,
    and a row is the query's values zipped with their names."""
    entry = WorkLogEntry
    where = _entries_of(period, scope)
    tickets = _tickets_of(scope)
    if tickets:
        where.append(entry.ticket_id.in_(select(Ticket.id).where(*tickets)))
    sums_ = (
        select(entry.ticket_id.label("ticket_id"), *sums())
        .where(*where)
        .group_by(entry.ticket_id)
        .subquery("sums")
    )
    # half_up(value) where the ticket has a rated entry; integer division on both databases
    amount = case((sums_.c.rated > 0, (sums_.c.value * 2 + 60) // 120))
    stmt = (
        select(
            *(column for _, column in labels),
            case((sums_.c.rated > 0, Contract.currency)),
            sums_.c.entries,
            sums_.c.minutes,
            sums_.c.billable_minutes,
            sums_.c.minutes - sums_.c.billable_minutes,
            amount,
        )
        .select_from(sums_)
        .join(Ticket, Ticket.id == sums_.c.ticket_id)
        .outerjoin(Contract, Contract.id == Ticket.contract_id)
        .order_by(Ticket.number)
    )
    keys = (*(name for name, _ in labels), "currency", *(c.key for c in FIGURES))
    # Through the connection: columns only, so the ORM's row processing has nothing to add.
    connection = session.connection()
    if not tickets and dialect(session) == "postgresql" and _most_of_history(session, period):
        with in_index_order(session):
            found = connection.execute(stmt).all()
    else:
        found = connection.execute(stmt).all()
    return [dict(zip(keys, r, strict=True)) for r in found]


def ticket_key(number: ColumnElement[Any] | QueryableAttribute[Any], *more: Any) -> Any:
    """``#1042`` (and `` `` and each of ``more``) as SQL, for a row's ``key``."""
    key: Any = literal("#", String) + cast(number, String)
    for part in more:
        key = key + literal(" ", String) + part
    return key


# Above this share of the work log's history, walking the whole covering index in ticket order
# beats hashing the period's entries (0.23 against 0.64 us per entry, measured on PostgreSQL).
INDEX_ORDER_SHARE = 1 / 3


def _most_of_history(session: Session, period: Period) -> bool:
    """Whether the period spans more than :data:`INDEX_ORDER_SHARE` of the time between the
    first and the last entry of the work log (two index lookups): then the entries are
    summed by ticket in index order (:func:`~core.reports.sql.in_index_order`). Entries are
    spread evenly enough over time for the time to stand for their number."""
    first, last = session.execute(
        select(func.min(WorkLogEntry.started_at), func.max(WorkLogEntry.started_at))
    ).one()
    if first is None or last is None or last <= first:
        return True
    lo, hi = period.bounds()
    covered = min(hi, last) - max(lo, first)
    return covered.total_seconds() > INDEX_ORDER_SHARE * (last - first).total_seconds()


def grouped(
    session: Session,
    period: Period,
    scope: Scope,
    labels: list[ColumnElement[Any]],
    joins: Joins,
    label: Callable[[Any], dict[str, Any]],
) -> list[dict[str, Any]]:
    """The rows of the groups of ``labels`` (the first is the group's id, the others its
    label's parts; ``joins`` adds the tables they need) with their sums; ``label`` makes a
    row's own fields (``key``, ``id``, ...) from the SQL row.

    One query, which also says whether a group's rated entries are in more than one
    currency; only then a second query splits such groups by currency (module docstring)."""
    where = entries_in(period, scope)
    currency = rated_currency()
    stmt = select(*labels, *sums(), func.min(currency).label("currency")).add_columns(
        func.max(currency).label("other_currency")
    )
    # Grouped by the id alone: the label columns depend on it (its table's primary key, or
    # the label itself), and PostgreSQL hashes a narrow key quicker.
    found = session.execute(_joined(stmt, joins, where).group_by(labels[0])).all()
    if not any(r.currency != r.other_currency for r in found):
        return [_row(label(r), r) for r in found]
    # Some group spans currencies: one row per group and currency, merged below.
    stmt = select(*labels, *sums(), currency.label("currency"))
    parts: dict[Any, list[Any]] = {}
    for row in session.execute(_joined(stmt, joins, where).group_by(labels[0], currency)):
        parts.setdefault(row[0], []).append(row)
    rows: list[dict[str, Any]] = []
    for group in parts.values():
        rated = sorted((p for p in group if p.currency is not None), key=lambda p: p.currency)
        if len(rated) <= 1:
            pieces = [(rated[0].currency if rated else None, group)]
        else:
            unrated = [p for p in group if p.currency is None]
            pieces = [(p.currency, [p]) for p in rated] + ([(None, unrated)] if unrated else [])
        for name, some in pieces:
            rows.append({**label(some[0]), "currency": name, **_add(some)})
    return rows


def _joined(stmt: Select[Any], joins: Joins, where: list[ColumnElement[bool]]) -> Select[Any]:
    stmt = (
        stmt.select_from(WorkLogEntry)
        .join(Ticket, Ticket.id == WorkLogEntry.ticket_id)
        .outerjoin(Contract, Contract.id == Ticket.contract_id)
    )
    return joins(stmt).where(*where)


def _row(row: dict[str, Any], r: Any) -> dict[str, Any]:
    """``row`` with the currency and sums of one SQL row (:func:`_add` of one, but quick)."""
    minutes, billable = r.minutes, r.billable_minutes
    row["currency"] = r.currency
    row["entries"] = r.entries
    row["minutes"] = minutes
    row["billable_minutes"] = billable
    row["non_billable_minutes"] = minutes - billable
    row["amount"] = (r.value * 2 + 60) // 120 if r.rated else None  # half_up(value)
    return row


def _add(parts: Sequence[Any]) -> dict[str, Any]:
    """The sums of several parts (SQL rows), with the amount rounded once."""
    minutes = sum(int(p.minutes) for p in parts)
    billable = sum(int(p.billable_minutes) for p in parts)
    value = sum(int(p.value) for p in parts)
    rated = sum(int(p.rated) for p in parts)
    return {
        "entries": sum(int(p.entries) for p in parts),
        "minutes": minutes,
        "billable_minutes": billable,
        "non_billable_minutes": minutes - billable,
        "amount": half_up(value) if rated else None,
    }


def finish(
    rows: list[dict[str, Any]], columns: list[Column], totals: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any], list[Column], str | None]:
    """The rows, their totals (``totals`` gives the totals' own fields), the columns (with
    ``currency`` when the rows hold several) and the report's currency (None for several or
    none). The totals' amount adds the rows' amounts, so the table adds up."""
    currencies = sorted(set(map(itemgetter("currency"), rows)) - {None})
    several = len(currencies) > 1
    total = dict(totals)
    for key in ("entries", "minutes", "billable_minutes", "non_billable_minutes"):
        total[key] = sum(map(itemgetter(key), rows))
    amounts = [a for a in map(itemgetter("amount"), rows) if a is not None]
    total["amount"] = sum(amounts) if amounts and not several else None
    if several:
        total["currency"] = None
        columns = [columns[0], CURRENCY, *columns[1:]]
    else:
        for r in rows:
            del r["currency"]
    return rows, total, columns, (currencies[0] if len(currencies) == 1 else None)


def _grouping(
    session: Session, group_by: str, period: Period
) -> tuple[list[ColumnElement[Any]], Joins, Callable[[Any], dict[str, Any]]]:
    """(the group's id column and the columns its label needs, the joins they need, the
    function that makes a row's ``key`` and ``id``)."""
    if group_by == "client":
        return (
            [Client.id.label("gid"), Client.name.label("l1")],
            lambda s: s.outerjoin(Client, Client.id == Ticket.client_id),
            lambda r: {"key": r.l1 if r.gid is not None else NO_CLIENT, "id": r.gid or 0},
        )
    if group_by == "contract":
        return (
            [Contract.id.label("gid"), Contract.code.label("l1"), Contract.name.label("l2")],
            lambda s: s,
            lambda r: (
                {"key": NO_CONTRACT, "id": 0}
                if r.gid is None
                else {"key": f"{r.l1} — {r.l2}" if r.l2 else r.l1, "id": r.gid}
            ),
        )
    if group_by == "technician":
        return (
            [User.id.label("gid"), User.name.label("l1"), User.email.label("l2")],
            lambda s: s.join(User, User.id == WorkLogEntry.user_id),
            lambda r: {"key": person_label(r.l1, r.l2), "id": r.gid},
        )
    if group_by == "work_type":
        return (
            [WorkType.name.label("gid")],
            lambda s: s.outerjoin(WorkType, WorkType.id == WorkLogEntry.work_type_id),
            lambda r: {"key": r.gid or NO_WORK_TYPE, "id": r.gid or ""},
        )
    buckets = months(period)
    names = [name for name, _ in buckets]
    return (
        [bucket(session, WorkLogEntry.started_at, buckets).label("gid")],
        lambda s: s,
        lambda r: {"key": names[r.gid], "id": names[r.gid]},
    )


def worktime_report(session: Session, period: Period, group_by: str, scope: Scope) -> Report:
    """One row per group (and currency) of the entries started in ``period``, and totals."""
    check_group(group_by, GROUPS)
    room_to_hash(session)
    if group_by == "ticket":
        rows = per_ticket(  # by number already
            session,
            period,
            scope,
            [("key", ticket_key(Ticket.number, Ticket.subject)), ("id", Ticket.number)],
        )
    else:
        labels, joins, label = _grouping(session, group_by, period)
        rows = grouped(session, period, scope, labels, joins, label)
        # months in order; names alphabetically, the "no ..." group last
        rows.sort(key=lambda r: (r["id"] in (0, ""), str(r["key"]).casefold()))
    key = Column("key", GROUP_LABELS[group_by], "month" if group_by == "month" else "text")
    rows, totals, columns, currency = finish(
        rows, [key, *FIGURES], {"key": N_("Total"), "id": None}
    )
    return Report(
        name="worktime",
        title=N_("Work time"),
        columns=columns,
        rows=rows,
        totals=totals,
        period=period,
        group_by=group_by,
        currency=currency,
    )
