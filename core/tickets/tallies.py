"""Ticket counts from ``ticket_tallies`` instead of ``count(*)`` over the tickets (PostgreSQL).

A list's total ("1-50 of 1,000,009") over every state had to read every ticket: 45-100 ms at a
million. PostgreSQL's triggers keep ``ticket_tallies`` (migration 0025): how many tickets have
each combination of :data:`KEYS`, as delta rows. A count whose conditions read only those
columns of the ticket (the state, a status, contract, client, type, assignee, subcontractor,
key contracts, and the scopes of coordinators, technicians, subcontractors and client
managers) is the sum of the matching rows: :func:`count` rewrites the conditions onto the
tally table. Anything else (overdue, a search, custom fields, a requester's own tickets) is
not a function of those columns, and :func:`count` answers None: the caller counts the
tickets.

The count is exact and transactional: the triggers write in the same transaction as the
change, so a transaction counts its own changes and no one else's uncommitted ones.
:func:`compact` folds the deltas into one row per combination (the scheduler's
``tickets.compact_tallies``, every minute), so a count sums a few thousand rows at most.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnClause, TextClause

from core.tickets.models import Ticket, ticket_tallies

log = logging.getLogger(__name__)

KEYS = (
    "client_id",
    "contract_id",
    "ticket_type_id",
    "status_id",
    "status_category",
    "assignee_id",
    "subcontractor_id",
)

COMPACT_SECONDS = 60.0

_COLS = ", ".join(KEYS)
_COMPACT = f"""
    WITH gone AS (DELETE FROM ticket_tallies RETURNING {_COLS}, n),
    kept AS (
        INSERT INTO ticket_tallies ({_COLS}, n)
        SELECT {_COLS}, sum(n) FROM gone GROUP BY {_COLS} HAVING sum(n) <> 0
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM kept)
"""  # noqa: S608 (column names of this module, no input)


def available(session: Session) -> bool:
    """The triggers keep the tallies on PostgreSQL only."""
    return session.get_bind().dialect.name == "postgresql"


def count(session: Session, conds: Sequence[ColumnElement[bool]]) -> int | None:
    """How many tickets match ``conds``, from the tallies; None when a condition reads a
    ticket column the tallies do not keep (or on SQLite)."""
    if not available(session):
        return None
    moved = on_tallies(conds)
    if moved is None:
        return None
    total = session.scalar(select(func.coalesce(func.sum(ticket_tallies.c.n), 0)).where(*moved))
    return int(total or 0)


def on_tallies(conds: Sequence[ColumnElement[bool]]) -> list[ColumnElement[bool]] | None:
    """``conds`` with every ticket column replaced by the tally's of the same name, or None
    when a condition reads a ticket column not among :data:`KEYS`, or holds anything whose
    columns cannot be seen (subqueries over other tables are kept as they are; one that reads
    the ticket's id, say, makes the whole count fall back)."""
    tickets = Ticket.__table__
    for cond in conds:
        for element in visitors.iterate(cond):
            if not _plain(element, tickets):
                return None

    def replace(
        element: visitors.ExternallyTraversible, **kw: Any
    ) -> visitors.ExternallyTraversible | None:
        if isinstance(element, Column) and element.table is tickets:
            return ticket_tallies.c[element.name]
        return None

    options: dict[str, Any] = {}
    return [visitors.replacement_traverse(c, options, replace) for c in conds]


def _plain(element: object, tickets: object) -> bool:
    """Can this part of a condition be moved onto the tallies? Not a ticket column they do
    not keep, and nothing whose columns cannot be seen: SQL text, a literal column, an
    element of our own (the search's ``SearchHits`` compiles to SQL that reads the ticket)."""
    if isinstance(element, TextClause) or element is tickets:
        # (The tickets table itself appears only as a subquery's FROM.)
        return False
    if isinstance(element, ColumnClause):
        table = getattr(element, "table", None)
        if table is None:
            return False  # literal_column("..."), which could name anything
        if table is tickets:
            return element.name in KEYS
    return type(element).__module__.startswith("sqlalchemy.")


def compact(session: Session) -> int:
    """Fold the delta rows into one per combination (dropping the combinations at zero);
    returns how many rows were folded. Safe beside writers: rows of transactions still open
    are not seen and stay; a concurrent :func:`compact` waits and then finds nothing."""
    if not available(session):
        return 0
    folded = session.execute(text(_COMPACT)).one()
    before, after = int(folded[0]), int(folded[1])
    if before != after:
        log.debug("ticket tallies: %d rows folded into %d", before, after)
    return before


def recount(session: Session) -> tuple[int, int]:
    """Count the tickets again into the tallies: (tickets, combinations the tallies had
    wrong). Needed only when tickets changed with the triggers off (``pg_restore
    --disable-triggers``, ``session_replication_role = replica``). Holds off changes to the
    tickets while it counts (a SHARE lock, about a second and a half at a million tickets).
    On SQLite there are no tallies: (tickets, 0)."""
    if not available(session):
        return int(session.scalar(select(func.count()).select_from(Ticket)) or 0), 0
    session.execute(text("LOCK TABLE tickets IN SHARE MODE"))
    keys = [ticket_tallies.c[k] for k in KEYS]
    tallied = {
        tuple(row[:-1]): int(row[-1])
        for row in session.execute(
            select(*keys, func.sum(ticket_tallies.c.n))
            .group_by(*keys)
            .having(func.sum(ticket_tallies.c.n) != 0)
        )
    }
    columns = [getattr(Ticket, k) for k in KEYS]
    counted = {
        tuple(row[:-1]): int(row[-1])
        for row in session.execute(select(*columns, func.count()).group_by(*columns))
    }
    wrong = sum(1 for k in tallied.keys() | counted.keys() if tallied.get(k) != counted.get(k))
    session.execute(ticket_tallies.delete())
    if counted:
        session.execute(
            ticket_tallies.insert(),
            [dict(zip(KEYS, key, strict=True), n=n) for key, n in counted.items()],
        )
    return sum(counted.values()), wrong
