"""JSON shapes of the API (docs/api.md): tickets, events, users. Times are ISO 8601 in UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import object_session

from core.access.permissions import note_audience, visible_status_name
from core.directory.models import User
from core.sla import clocks as sla_clock
from core.tickets import checklists, fields
from core.tickets.contacts import copied
from core.tickets.fields import field_visible
from core.tickets.models import Ticket, TicketEvent
from core.tickets.visibility import EventView, custom_fields_for, visible_events


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def ticket_json(
    ticket: Ticket,
    viewer: User,
    now: datetime,
    base_url: str = "",
    readable: dict[int | None, set[str] | None] | None = None,
) -> dict[str, Any]:
    """A ticket as ``viewer`` may read it: the status by its visible name, only the custom
    fields they may read (``core.tickets.visibility``; ``readable``: the page's
    ``readable_names_by_contract``)."""
    return {
        "number": ticket.number,
        "subject": ticket.subject,
        "status": visible_status_name(viewer, ticket.status),
        "status_category": ticket.status_category,
        "contract": ticket.contract.code if ticket.contract else None,
        "client": ticket.client.name if ticket.client else None,
        "ticket_type": ticket.ticket_type.name if ticket.ticket_type else None,
        "requester": ticket.requester.email,
        "assignee": ticket.assignee.email if ticket.assignee else None,
        "subcontractor": ticket.subcontractor.name if ticket.subcontractor else None,
        "product": ticket.product.name if ticket.product else None,
        "key_contract": bool(ticket.contract and ticket.contract.key),
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "custom_fields": custom_fields_for(viewer, ticket, readable=readable),
        "checklist_progress": (
            {"done": ticket.checklist_done, "total": ticket.checklist_total}
            if viewer.role in checklists.TICKING_ROLES
            else None
        ),
        "source": ticket.source,
        # The ticket this one was merged into (core.tickets.merge), or null.
        "merged_into": (
            ticket.merged_into.number if ticket.merged_into_id and ticket.merged_into else None
        ),
        "url": f"{base_url.rstrip('/')}/tickets/{ticket.number}",
        "sla": {
            "reaction_due": iso(ticket.reaction_due),
            "resolution_due": iso(ticket.resolution_due),
            "first_response_at": iso(ticket.first_response_at),
            "resolved_at": iso(ticket.resolved_at),
            "overdue": sla_clock.is_overdue(ticket, now),
            "paused": bool(ticket.sla_paused),
            "reaction_breached_at": iso(ticket.reaction_breached_at),
            "resolution_breached_at": iso(ticket.resolution_breached_at),
            "ever_breached": bool(ticket.ever_breached),
        },
    }


def event_json(event: TicketEvent | EventView) -> dict[str, Any]:
    """An event; pass it as its viewer reads it (``core.tickets.visibility.visible_events``),
    or one the viewer wrote themselves. ``audience``: who an internal note is for (``staff``
    or ``subcontractor``), null for a public event."""
    return {
        "id": event.id,
        "type": event.type,
        "at": iso(event.at),
        "author": event.author.email if event.author else None,
        "public": bool(event.public),
        "audience": note_audience(event.event if isinstance(event, EventView) else event),
        "body_text": event.body_text,
        "body_html": event.body_html,
        "message_id": event.message_id,
        "data": event.data or {},
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in event.attachments
        ],
    }


def ticket_with_cc(
    ticket: Ticket, viewer: User, now: datetime, base_url: str = ""
) -> dict[str, Any]:
    """One ticket with ``cc``: the e-mails of the contacts copied on it (core.tickets.contacts),
    its ``checklist`` (core.tickets.checklists) and ``missing_fields``. Lists leave them out:
    they would cost queries per ticket (``checklist_progress`` is in every ticket)."""
    data = ticket_json(ticket, viewer, now, base_url)
    data["cc"] = [person.email for person in copied(ticket)]
    data["checklist"] = checklists.as_dicts(ticket, viewer)
    data["missing_fields"] = missing_field_names(ticket, viewer)
    return data


def missing_field_names(ticket: Ticket, viewer: User) -> dict[str, list[str]]:
    """The required fields still empty, by when they are needed (``open``: a ticket opened by
    mail could not ask for them; ``close``: every required one), among those the viewer reads."""
    session = object_session(ticket)
    if session is None:
        return {"open": [], "close": []}
    defs = [f for f in fields.definitions(session, ticket.contract) if field_visible(viewer, f)]
    return {
        phase: [
            f.name
            for f in fields.missing_fields(defs, ticket.contract, ticket.custom_fields, phase)
        ]
        for phase in fields.PHASES
    }


def ticket_with_events(
    ticket: Ticket, viewer: User, now: datetime, base_url: str = ""
) -> dict[str, Any]:
    data = ticket_with_cc(ticket, viewer, now, base_url)
    data["events"] = [event_json(e) for e in visible_events(viewer, ticket)]
    return data


def user_json(user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "client": user.client.name if user.client else None,
        "subcontractor": user.subcontractor.name if user.subcontractor else None,
        "manager": bool(user.manager),
        "language": user.language,
    }
