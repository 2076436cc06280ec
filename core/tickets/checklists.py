"""Checklists: the steps a ticket type's work follows (``ticket_types[].checklist``).

- A new ticket gets its type's items (:func:`seed`); a ticket re-typed may get the new type's
  items too (:func:`add_type_items`, asked in the console; the API's type change says
  ``add_checklist``). Staff may add an item to one ticket (:func:`add_item`).
- Staff who work the ticket and the subcontractor it is handed to tick and untick items
  (:func:`tick`); each is a ``checklist`` event on the timeline (who, when, which item).
  Clients do not see the checklist: it is how we work, not what we promise.
- An item is ``required`` when its type's checklist says ``required_to_close`` (or staff added
  it as required); closing with one unticked is refused (409) naming them
  (:func:`unticked_required`, checked by ``core.tickets.services``).
- ``tickets.checklist_done`` / ``checklist_total`` keep the progress for the list (3/5).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.access.permissions import can, can_view
from core.clock import utcnow
from core.contracts.models import TicketType
from core.directory.models import User
from core.errors import N_, Forbidden, InputError, NotFound
from core.tickets.models import ChecklistItem, Ticket, TicketEvent
from core.tickets.timeline import append_event

TICKING_ROLES = ("admin", "coordinator", "technician", "subcontractor")
ADDING_ROLES = ("admin", "coordinator", "technician")
ITEM_LIMIT = 500


def template_items(ticket_type: TicketType | None) -> tuple[list[str], bool]:
    """A type's checklist: its item texts and whether they are required to close."""
    spec = (ticket_type.checklist if ticket_type is not None else None) or {}
    items = [str(i).strip() for i in spec.get("items") or [] if str(i).strip()]
    return items, bool(spec.get("required_to_close"))


def _recount(ticket: Ticket) -> None:
    ticket.checklist_total = len(ticket.checklist)
    ticket.checklist_done = sum(1 for i in ticket.checklist if i.done)


def _append(
    ticket: Ticket, texts: list[str], *, required: bool, type_name: str | None, at: datetime
) -> list[ChecklistItem]:
    start = max((i.position for i in ticket.checklist), default=-1) + 1
    added = [
        ChecklistItem(
            text=text[:ITEM_LIMIT],
            position=start + n,
            required=required,
            ticket_type=type_name,
            done=False,
            created_at=at,
        )
        for n, text in enumerate(texts)
    ]
    ticket.checklist.extend(added)
    _recount(ticket)
    return added


def seed(ticket: Ticket, *, at: datetime | None = None) -> list[ChecklistItem]:
    """Give a new ticket its type's checklist (nothing when the type has none)."""
    texts, required = template_items(ticket.ticket_type)
    if not texts:
        return []
    name = ticket.ticket_type.name if ticket.ticket_type is not None else None
    return _append(ticket, texts, required=required, type_name=name, at=at or utcnow())


def add_type_items(
    session: Session, ticket: Ticket, *, actor: User | None, at: datetime | None = None
) -> list[ChecklistItem]:
    """Add the current type's items the ticket does not have yet (after a type change)."""
    texts, required = template_items(ticket.ticket_type)
    have = {i.text for i in ticket.checklist}
    texts = [t for t in texts if t not in have]
    if not texts:
        return []
    at = at or utcnow()
    name = ticket.ticket_type.name if ticket.ticket_type is not None else None
    added = _append(ticket, texts, required=required, type_name=name, at=at)
    append_event(
        session,
        ticket,
        "checklist",
        author=actor,
        at=at,
        public=False,
        data={"added": texts, "ticket_type": name},
    )
    session.flush()
    return added


def add_item(
    session: Session,
    ticket: Ticket,
    text: str,
    *,
    actor: User,
    required: bool = False,
    at: datetime | None = None,
) -> ChecklistItem:
    """Staff add a step to this one ticket's checklist."""
    if actor.role not in ADDING_ROLES or not can_view(actor, ticket):
        raise Forbidden(
            N_("you may not add checklist items to ticket #%(number)s"), number=ticket.number
        )
    text = " ".join(str(text or "").split())
    if not text:
        raise InputError(N_("a checklist item needs a text"))
    if len(text) > ITEM_LIMIT:
        raise InputError(
            N_("a checklist item takes at most %(limit)s characters"), limit=ITEM_LIMIT
        )
    at = at or utcnow()
    (item,) = _append(ticket, [text], required=bool(required), type_name=None, at=at)
    append_event(
        session,
        ticket,
        "checklist",
        author=actor,
        at=at,
        public=False,
        data={"added": [text], "required": bool(required)},
    )
    session.flush()
    return item


def find_item(ticket: Ticket, item_id: int) -> ChecklistItem:
    for item in ticket.checklist:
        if item.id == item_id:
            return item
    raise NotFound(
        N_("ticket #%(number)s has no checklist item %(item)s"), number=ticket.number, item=item_id
    )


def may_tick(actor: User, ticket: Ticket) -> bool:
    return actor.role in TICKING_ROLES and can(actor, "view", ticket)


def tick(
    session: Session,
    ticket: Ticket,
    item_id: int,
    done: bool,
    *,
    actor: User,
    at: datetime | None = None,
) -> TicketEvent | None:
    """Tick (or untick) one item; None when it already was."""
    if not may_tick(actor, ticket):
        raise Forbidden(
            N_("you may not tick the checklist of ticket #%(number)s"), number=ticket.number
        )
    if not isinstance(done, bool):
        raise InputError(N_("done must be true or false"))
    item = find_item(ticket, item_id)
    if item.done == done:
        return None
    at = at or utcnow()
    item.done = done
    item.done_by = actor if done else None
    item.done_at = at if done else None
    _recount(ticket)
    event = append_event(
        session,
        ticket,
        "checklist",
        author=actor,
        at=at,
        public=False,
        data={"item": item.text, "item_id": item.id, "done": done},
    )
    session.flush()
    return event


def unticked_required(ticket: Ticket) -> list[ChecklistItem]:
    return [i for i in ticket.checklist if i.required and not i.done]


def as_dicts(ticket: Ticket, viewer: User) -> list[dict[str, Any]]:
    """The API's ``checklist``: every item for those who tick them, none for clients."""
    if viewer.role not in TICKING_ROLES:
        return []
    return [
        {
            "id": i.id,
            "text": i.text,
            "done": i.done,
            "required": i.required,
            "done_by": i.done_by.email if i.done_by is not None else None,
            "done_at": i.done_at.isoformat() if i.done_at is not None else None,
        }
        for i in ticket.checklist
    ]
