"""Ticket lists: filtering, sorting and paging through the one permission scope.

Both the API and the console call :func:`search_tickets`, so a filter means the same thing
whichever door it comes from, and no list can show a ticket the user may not see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from core.access.permissions import event_scope, ticket_scope
from core.contracts.models import Contract, CustomField, Status, TicketType
from core.directory.models import Client, Subcontractor, User
from core.errors import N_, InputError
from core.sla import clocks as sla_clock
from core.tickets import search, tallies
from core.tickets.fields import field_visible
from core.tickets.models import Ticket, TicketEvent, clock_group, nearest_deadline

MAX_PER_PAGE = 200
SORTS = (
    "number",
    "-number",
    "created",
    "-created",
    "updated",
    "-updated",
    "deadline",
    "-deadline",
    "reaction",
    "-reaction",
    "resolution",
    "-resolution",
    "subject",
    "-subject",
)


@dataclass
class TicketFilter:
    status: str | None = None  # a status name, or a category: new/open/paused/closed
    state: str = "all"  # "open" (any not closed), "closed", "all"
    contract: str | None = None  # code
    client: str | None = None  # name
    assignee: str | None = None  # e-mail, "me" or "none"
    subcontractor: str | None = None  # name
    ticket_type: str | None = None
    key: bool | None = None
    overdue: bool | None = None
    q: str | None = None
    message_id: str | None = None
    # {field name: value}: tickets whose custom field has this value (a multiselect: holds it);
    # only fields the user may read (``?field.location=Warszawa`` in the API).
    fields: dict[str, str] = field(default_factory=dict)
    sort: str = "-number"
    page: int = 1
    per_page: int = 50


@dataclass
class TicketPage:
    items: list[Ticket]
    total: int
    page: int
    per_page: int
    # A search's total was counted up to a limit and there are more (``total`` is the limit).
    more: bool = False

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def deadline_expr() -> ColumnElement[Any]:
    """The nearest open deadline: reaction until someone answered, then resolution."""
    return nearest_deadline()


def deadline_order(due: Any, met: Any, descending: bool) -> list[Any]:
    """Ordering by a deadline as a coordinator reads it: tickets whose clock runs first (the
    most overdue, then the nearest), then the paused ones apart (their deadline moves), then
    those with no running clock (met, closed, no target). ``descending`` reverses the order
    within each group, never the groups."""
    # The same expression as the partial index ix_tickets_open_deadline (core.tickets.models),
    # so PostgreSQL walks it for the open tickets instead of sorting them all.
    return [clock_group(due, met), due.desc() if descending else due.asc()]


def _running_clocks_page(
    session: Session, conds: list[ColumnElement[bool]], order: list[Any], f: TicketFilter
) -> list[int] | None:
    """The numbers of a nearest-deadline page over every state, when the open tickets alone
    fill it with running or paused clocks; else None (the full sort decides).

    A ticket whose clock runs or is paused is always open, and those sort first, so such a
    page of the open tickets is the same page of all of them. The open tickets' page walks
    ``ix_tickets_open_deadline`` and stops; the full sort orders every ticket ever opened
    (148 ms at a million tickets, against well under a millisecond).
    """
    group = clock_group(deadline_expr(), Ticket.resolved_at)
    rows = session.execute(
        select(Ticket.number, group)
        .where(*conds, Ticket.status_category != "closed")
        .order_by(*order, Ticket.number.desc())
        .offset((f.page - 1) * f.per_page)
        .limit(f.per_page)
    ).all()
    if len(rows) == f.per_page and all(g < 2 for _, g in rows):
        return [number for number, _ in rows]
    return None


def _visible_statuses(user: User) -> list[ColumnElement[bool]]:
    """Conditions on Status for the statuses this user may see by name
    (``core.access.permissions.status_visible``)."""
    if user.role == "client":
        return [Status.visible_to_client.is_(True)]
    if user.role == "subcontractor":
        return [Status.visible_to_subcontractor.is_(True)]
    return []


def _conditions(f: TicketFilter, user: User, now: datetime) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [ticket_scope(user)]
    if f.state == "open":
        conds.append(Ticket.status_category != "closed")
    elif f.state == "closed":
        conds.append(Ticket.status_category == "closed")
    elif f.state != "all":
        raise InputError(f"state must be open, closed or all, not {f.state!r}")
    if f.status:
        if f.status in ("new", "open", "paused", "closed"):
            conds.append(Ticket.status_category == f.status)
        else:
            # Only statuses this user may see by name: a hidden one filters like a name that
            # does not exist (no ticket), so the list does not tell it exists.
            named = select(Status.id).where(Status.name == f.status, *_visible_statuses(user))
            conds.append(Ticket.status_id.in_(named))
    if f.contract:
        conds.append(Ticket.contract_id.in_(select(Contract.id).where(Contract.code == f.contract)))
    if f.client:
        conds.append(Ticket.client_id.in_(select(Client.id).where(Client.name == f.client)))
    if f.ticket_type:
        conds.append(
            Ticket.ticket_type_id.in_(select(TicketType.id).where(TicketType.name == f.ticket_type))
        )
    if f.assignee:
        if f.assignee == "none":
            conds.append(Ticket.assignee_id.is_(None))
        elif f.assignee == "me":
            conds.append(Ticket.assignee_id == user.id)
        else:
            conds.append(
                Ticket.assignee_id.in_(select(User.id).where(User.email == f.assignee.lower()))
            )
    if f.subcontractor:
        conds.append(
            Ticket.subcontractor_id.in_(
                select(Subcontractor.id).where(Subcontractor.name == f.subcontractor)
            )
        )
    if f.key is not None:
        key_ids = select(Contract.id).where(Contract.key.is_(True))
        conds.append(
            Ticket.contract_id.in_(key_ids)
            if f.key
            else or_(Ticket.contract_id.is_(None), Ticket.contract_id.not_in(key_ids))
        )
    if f.overdue is not None:
        clause = sla_clock.overdue_clause(now)
        conds.append(clause if f.overdue else ~clause)
    if f.q and f.q.strip():
        # Full text (core.tickets.search): the words in the document the user may search,
        # or the number ("#1042" the number only).
        conds.append(search.match_condition(f.q, user))
    if f.message_id:
        mid = f.message_id.strip()
        bare = mid.strip("<>")
        conds.append(
            # Only mail the user may read: an internal mail's id answers like an unknown one.
            exists().where(
                TicketEvent.ticket_id == Ticket.id,
                TicketEvent.message_id.in_([mid, bare, f"<{bare}>"]),
                event_scope(user),
            )
        )
    return conds


def field_conditions(
    session: Session, user: User, wanted: dict[str, str]
) -> list[ColumnElement[bool]]:
    """Conditions for ``TicketFilter.fields``: a field the user may not read is unknown (400)."""
    if not wanted:
        return []
    known: dict[str, CustomField] = {}
    for f in session.scalars(select(CustomField).order_by(CustomField.contract_id.is_(None))):
        if field_visible(user, f):
            known.setdefault(f.name, f)
    conds: list[ColumnElement[bool]] = []
    for name, raw in wanted.items():
        definition = known.get(name)
        if definition is None:
            raise InputError(
                N_("there is no field %(name)r to filter by; fields: %(known)s"),
                name=name,
                known=", ".join(sorted(known)) or "-",
            )
        value = Ticket.custom_fields[name]
        text = str(raw).strip()
        if definition.type == "multiselect":
            quoted = json.dumps(text)[1:-1].replace("%", "\\%").replace("_", "\\_")
            conds.append(cast(value, String).like(f'%"{quoted}"%', escape="\\"))
        elif definition.type == "number":
            try:
                number = float(text.replace(",", "."))
            except ValueError:
                raise InputError(
                    N_("field %(name)s takes a number, not %(value)r"), name=name, value=text
                ) from None
            conds.append(value.as_float() == number)
        elif definition.type == "bool":
            conds.append(value.as_boolean() == (text.lower() in ("true", "1", "yes", "tak")))
        else:
            conds.append(value.as_string() == text)
    return conds


def count_tickets(session: Session, user: User, f: TicketFilter, now: datetime) -> tuple[int, bool]:
    """How many tickets the filter shows this user, and whether that is a floor: a search
    counts its hits only up to :data:`core.tickets.search.COUNT_LIMIT` (a saved view's count
    in the sidebar, the list's range)."""
    _, total, more = _counted(session, user, f, now)
    return total, more


def _counted(
    session: Session, user: User, f: TicketFilter, now: datetime
) -> tuple[list[ColumnElement[bool]], int, bool]:
    if f.q:
        search.refresh(session)  # this transaction's own changes are found too
    conds = _conditions(f, user, now) + field_conditions(session, user, f.fields)
    if f.q:
        # A search counts its hits up to a limit (core.tickets.search.COUNT_LIMIT): counting
        # every ticket holding a common word costs more than the page itself.
        total, more = search.count_hits(session, conds)
        return conds, total, more
    # On PostgreSQL the tallies its triggers keep answer most lists' totals without reading
    # a ticket (core.tickets.tallies); the others count.
    counted = tallies.count(session, conds)
    if counted is None:
        # count(*), not count(id): PostgreSQL then counts the open tickets from the partial
        # index alone (an index-only scan of ix_tickets_open_number), not by reading each row.
        counted = session.scalar(select(func.count()).select_from(Ticket).where(*conds))
    return conds, int(counted or 0), False


def search_tickets(session: Session, user: User, f: TicketFilter, now: datetime) -> TicketPage:
    if f.sort not in SORTS:
        raise InputError(f"sort must be one of: {', '.join(SORTS)}")
    if f.page < 1:
        raise InputError("page starts at 1")
    if not 1 <= f.per_page <= MAX_PER_PAGE:
        raise InputError(f"per_page must be between 1 and {MAX_PER_PAGE}")
    conds, total, more = _counted(session, user, f, now)
    field = f.sort.lstrip("-")
    descending = f.sort.startswith("-")
    order: list[Any]
    if field == "deadline":
        order = deadline_order(deadline_expr(), Ticket.resolved_at, descending)
    elif field == "reaction":
        order = deadline_order(Ticket.reaction_due, Ticket.first_response_at, descending)
    elif field == "resolution":
        order = deadline_order(Ticket.resolution_due, Ticket.resolved_at, descending)
    else:
        column: ColumnElement[Any] = {
            "number": Ticket.number,
            "created": Ticket.created_at,
            "updated": Ticket.updated_at,
            "subject": func.lower(Ticket.subject),
        }[field]  # type: ignore[assignment]
        order = [column.desc() if descending else column.asc()]
        if field != "number":
            order[0] = order[0].nulls_last()
        # The number is never NULL: without NULLS LAST PostgreSQL walks the number's index
        # (ix_tickets_open_number for the open ones) backwards and stops at the page.
    stmt = select(Ticket)
    # With words to search and the default sort, the most relevant first (core.tickets.search).
    # Many hits are shown newest first: ranking them all would cost more than the page.
    ranking = f.q and f.sort == "-number" and not more and total <= search.RANK_LIMIT
    rank = search.ranked(session, f.q, user) if f.q and ranking else None
    if rank is not None:
        # Outer: "1042" also finds ticket 1042 by its number (no rank; shown first).
        stmt = stmt.outerjoin(rank, rank.c.ticket_id == Ticket.id)
        order = [rank.c.rank.desc().nulls_first()]
    elif f.q and f.sort == "-number":
        # Without NULLS LAST (numbers are never NULL) PostgreSQL walks the number index
        # backwards and stops at the 50th hit, instead of sorting every hit.
        order = []
    if rank is None and not f.q:
        # A deferred join: the page's numbers first, from the index alone where it can
        # (ix_tickets_open_number covers the filters' columns), then those 50 rows. A far
        # page or a filter that skips many rows then walks index entries, not table rows.
        numbers: Any = (
            select(Ticket.number)
            .where(*conds)
            .order_by(*order, Ticket.number.desc())
            .offset((f.page - 1) * f.per_page)
            .limit(f.per_page)
        )
        if f.sort == "deadline" and f.state == "all":
            numbers = _running_clocks_page(session, conds, order, f) or numbers
        stmt = stmt.where(Ticket.number.in_(numbers))
    else:
        stmt = stmt.where(*conds).offset((f.page - 1) * f.per_page).limit(f.per_page)
    stmt = stmt.order_by(*order, Ticket.number.desc()).options(
        selectinload(Ticket.contract),
        selectinload(Ticket.client),
        selectinload(Ticket.status),
        selectinload(Ticket.ticket_type),
        selectinload(Ticket.assignee),
        selectinload(Ticket.requester),
        selectinload(Ticket.subcontractor),
        selectinload(Ticket.product),
    )
    items = list(session.scalars(stmt))
    return TicketPage(items=items, total=total, page=f.page, per_page=f.per_page, more=more)
