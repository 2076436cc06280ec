"""What of a ticket a viewer may read: its custom fields and its timeline, decided once.

Every door that shows a ticket to someone goes through here: the API's ticket and event
objects (``web.api.serializers``), the console and portal (``web.console.ticket_detail``), the
mails (``core.notify.notifications``) and the GDPR export. Which tickets and which events a
user may see at all is ``core.access.permissions`` (``ticket_scope``, ``can_see_event``); this
module decides what those visible things show.

Custom fields (:func:`custom_fields_for`, :func:`custom_field_rows`):

- staff (admins, coordinators, technicians) read every value, also one stored under a name no
  definition has any more;
- clients read only the defined fields that are ``visible_to_client``;
- subcontractors the ones ``visible_to_subcontractor``; unset, as ``visible_to_client`` (a
  field we keep from the client, a resolution code or an internal price, is ours, not the
  subcontractor's) (``core.tickets.fields.field_visible``).

Events (:func:`visible_events`, :func:`event_data_for`): a status change names the statuses
by what the viewer sees (``core.access.permissions.visible_status_name``: a hidden one by its
category), and a field change lists only the fields the viewer may read (none left: the event
is left out).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from core.access.permissions import CATEGORY_LABELS, can_see_event, status_visible
from core.contracts.models import CustomField, Status
from core.directory.models import User
from core.tickets import fields
from core.tickets.fields import field_visible
from core.tickets.models import Ticket, TicketEvent

STAFF_ROLES = ("admin", "coordinator", "technician")


def field_definitions(session: Session, ticket: Ticket) -> list[CustomField]:
    """The custom fields of this ticket: the instance's and its contract's, in form order."""
    return fields.definitions(session, ticket.contract_id)


def _session(ticket: Ticket, session: Session | None) -> Session:
    found = session or object_session(ticket)
    if found is None:
        raise ValueError("the ticket is not in a session; pass session=")
    return found


def readable_field_names(
    viewer: User, ticket: Ticket, *, session: Session | None = None
) -> set[str] | None:
    """The names of the custom fields this viewer may read on this ticket; None: every name
    (staff)."""
    if viewer.role in STAFF_ROLES:
        return None
    defs = field_definitions(_session(ticket, session), ticket)
    return {f.name for f in defs if field_visible(viewer, f)}


def readable_names_by_contract(
    session: Session, viewer: User, contract_ids: Iterable[int | None]
) -> dict[int | None, set[str] | None]:
    """:func:`readable_field_names` for the tickets of several contracts in one query (a page
    of a list), by contract id."""
    ids = set(contract_ids)
    if viewer.role in STAFF_ROLES:
        return dict.fromkeys(ids)
    return {
        cid: {f.name for f in defs if field_visible(viewer, f)}
        for cid, defs in fields.definitions_by_contract(session, ids).items()
    }


def custom_fields_for(
    viewer: User,
    ticket: Ticket,
    *,
    session: Session | None = None,
    readable: dict[int | None, set[str] | None] | None = None,
) -> dict[str, Any]:
    """The ticket's custom field values this viewer may read, by field name (the API's
    ``custom_fields``, the export's). ``readable``: :func:`readable_names_by_contract` for a
    list, so a page costs one query."""
    values = dict(ticket.custom_fields or {})
    if readable is not None and ticket.contract_id in readable:
        names = readable[ticket.contract_id]
    else:
        names = readable_field_names(viewer, ticket, session=session)
    if names is None:
        return values
    return {name: value for name, value in values.items() if name in names}


def custom_field_rows(
    viewer: User, ticket: Ticket, *, session: Session | None = None, lang: str = "en"
) -> list[tuple[str, Any]]:
    """(label, value) of the custom fields this viewer may read, for a page: every readable
    defined field (empty ones too, so staff see what is missing), then, for staff, values
    stored under names no definition has."""
    defs = field_definitions(_session(ticket, session), ticket)
    values = ticket.custom_fields or {}
    rows = [(fields.label(f, lang), values.get(f.name)) for f in defs if field_visible(viewer, f)]
    if viewer.role in STAFF_ROLES:
        known = {f.name for f in defs}
        rows += [(name, value) for name, value in sorted(values.items()) if name not in known]
    return rows


# --- The timeline ----------------------------------------------------------------------------


def _status_name(viewer: User, by_name: dict[str, Status], name: Any, category: Any) -> Any:
    """A status name as this viewer may read it: a hidden or unknown one (renamed, removed)
    by its category."""
    if viewer.role in STAFF_ROLES or not name:
        return name
    status = by_name.get(str(name))
    if status is not None and status_visible(viewer, status):
        return name
    category = category or (status.category if status is not None else None)
    return CATEGORY_LABELS.get(str(category), str(category or ""))


def event_data_for(
    viewer: User,
    event: TicketEvent,
    statuses: Sequence[Status] = (),
    readable_fields: set[str] | None = None,
) -> dict[str, Any] | None:
    """The event's ``data`` as this viewer may read it, or None when nothing of it is theirs.

    ``statuses``: the ticket's statuses (``core.tickets.services.statuses_for``);
    ``readable_fields``: :func:`readable_field_names` (None: all). The caller checked
    ``can_see_event`` first.
    """
    data = dict(event.data or {})
    if viewer.role in STAFF_ROLES:
        return data
    if event.type == "status":
        by_name = {s.name: s for s in statuses}
        for key in ("from", "to"):
            if key in data:
                data[key] = _status_name(viewer, by_name, data[key], data.get(f"{key}_category"))
    elif event.type == "field" and readable_fields is not None:
        changes = {
            name: change
            for name, change in (data.get("changes") or {}).items()
            if name == "ticket_type" or name in readable_fields
        }
        if not changes:
            return None
        data["changes"] = changes
    return data


class EventView:
    """An event as one viewer reads it: the event's own attributes, with ``data`` replaced by
    :func:`event_data_for` (templates and serialisers read it like the event)."""

    __slots__ = ("data", "event")

    def __init__(self, event: TicketEvent, data: dict[str, Any]) -> None:
        self.event = event
        self.data = data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.event, name)


def ticket_statuses(session: Session, ticket: Ticket) -> list[Status]:
    """The statuses the ticket's events may name: its contract's, else the instance's
    (as ``core.tickets.services.statuses_for``, without creating the built-in ones)."""
    if ticket.contract is not None and ticket.contract.statuses:
        return list(ticket.contract.statuses)
    return list(session.scalars(select(Status).where(Status.contract_id.is_(None))))


def visible_events(
    viewer: User,
    ticket: Ticket,
    events: Iterable[TicketEvent] | None = None,
    statuses: Sequence[Status] | None = None,
    *,
    session: Session | None = None,
) -> list[EventView]:
    """The events (default: the ticket's whole timeline) this viewer may read, as they may
    read them. ``statuses``: the ticket's (default: :func:`ticket_statuses`)."""
    db = _session(ticket, session)
    readable = readable_field_names(viewer, ticket, session=db)
    if statuses is None:
        statuses = ticket_statuses(db, ticket) if viewer.role not in STAFF_ROLES else []
    if events is None:
        events = ticket.events
    shown: list[EventView] = []
    for event in events:
        if not can_see_event(viewer, event):
            continue
        data = event_data_for(viewer, event, statuses, readable)
        if data is not None:
            shown.append(EventView(event, data))
    return shown
