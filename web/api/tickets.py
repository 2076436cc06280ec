"""Ticket endpoints of the JSON API (docs/api.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Request, delete, get, post
from litestar.params import Parameter, QueryParameter
from msgspec import Meta

from core.access.permissions import can
from core.clock import utcnow
from core.directory.services import contract_by_code, staff_user, subcontractor_by_name
from core.errors import Forbidden, InputError, NotFound
from core.tickets import checklists, contacts, queue, search
from core.tickets import services as svc
from core.tickets.handoff import suggest_subcontractors
from core.tickets.intake import TicketRequest, intake
from core.tickets.merge import merge_tickets, split_event
from core.tickets.queries import TicketFilter, search_tickets
from core.tickets.requester import change_requester
from core.tickets.visibility import readable_names_by_contract
from web.api.params import MAX_ID, Id
from web.api.serializers import event_json, ticket_json, ticket_with_cc, ticket_with_events
from web.api.worklog import worklog_handlers
from web.deps import DB, CurrentUser


def _base(request: Request[Any, Any, Any]) -> str:
    return str(request.app.state.settings.public_url)


@dataclass
class NewTicket:
    subject: str
    requester: str
    body: str | None = None
    contract: str | None = None
    ticket_type: str | None = None
    assignee: str | None = None
    product: str | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    cc: list[str] = field(default_factory=list)
    subcontractor: str | None = None


@dataclass
class CopiedContact:
    email: str


@dataclass
class NewComment:
    """``audience`` of an internal note: ``staff`` (default) or ``subcontractor``."""

    body: str
    public: bool = True
    audience: str | None = None


@dataclass
class StatusChange:
    status: str
    note: str | None = None


@dataclass
class BulkStatusChange:
    numbers: list[Annotated[int, Meta(ge=1, le=MAX_ID)]]
    status: str


@dataclass
class ContractChange:
    contract: str
    ticket_type: str | None = None


@dataclass
class RequesterChange:
    requester: str
    name: str | None = None


@dataclass
class TypeChange:
    """``add_checklist``: add the new type's checklist items the ticket lacks."""

    ticket_type: str
    add_checklist: bool = False


@dataclass
class ChecklistTick:
    done: bool


@dataclass
class NewChecklistItem:
    text: str
    required: bool = False


@dataclass
class FieldsChange:
    custom_fields: dict[str, Any]


def _flag(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    low = value.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise InputError(f"{name} must be true or false, not {value!r}")


def _field_filters(request: Request[Any, Any, Any]) -> dict[str, str]:
    """``?field.location=Warszawa``: custom field filters (core.tickets.queries)."""
    return {
        key.removeprefix("field."): value
        for key, value in request.query_params.items()
        if key.startswith("field.") and len(key) > len("field.")
    }


@get("/tickets", sync_to_thread=True, summary="List the tickets you may see")
def list_tickets(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    status: str | None = None,
    state_filter: Annotated[str, QueryParameter(name="state")] = "all",
    contract: str | None = None,
    client: str | None = None,
    assignee: str | None = None,
    subcontractor: str | None = None,
    ticket_type: Annotated[str | None, QueryParameter(name="type")] = None,
    key: str | None = None,
    overdue: str | None = None,
    q: str | None = None,
    message_id: str | None = None,
    sort: str = "-number",
    page: Annotated[int, Parameter(ge=1, le=MAX_ID)] = 1,
    per_page: Annotated[int, Parameter(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    now = utcnow()
    f = TicketFilter(
        status=status,
        state=state_filter,
        contract=contract,
        client=client,
        assignee=assignee,
        subcontractor=subcontractor,
        ticket_type=ticket_type,
        key=_flag(key, "key"),
        overdue=_flag(overdue, "overdue"),
        q=q,
        message_id=message_id,
        fields=_field_filters(request),
        sort=sort,
        page=page,
        per_page=per_page,
    )
    result = search_tickets(db, user, f, now)
    base = _base(request)
    readable = readable_names_by_contract(db, user, {t.contract_id for t in result.items})
    items = [ticket_json(t, user, now, base, readable) for t in result.items]
    if q and q.strip():
        # The matching text the user may read, as HTML: escaped, the words in <mark> (search.md).
        found = search.snippets(db, user, result.items, q)
        for t, item in zip(result.items, items, strict=True):
            item["snippet"] = str(found[t.id]) if t.id in found else None
    return {
        "items": items,
        "total": result.total,
        "page": result.page,
        "per_page": result.per_page,
        # A search counts up to 500 hits: true when there are more than ``total``.
        **({"more": result.more} if q and q.strip() else {}),
    }


@get("/tickets/{number:int}", sync_to_thread=True, summary="One ticket with its timeline")
def show_ticket(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id
) -> dict[str, Any]:
    ticket = svc.get_ticket(db, number, user)
    return ticket_with_events(ticket, user, utcnow(), _base(request))


@post("/tickets", sync_to_thread=True, status_code=201, summary="Open a ticket")
def create_ticket(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, data: NewTicket
) -> dict[str, Any]:
    now = utcnow()
    new = intake(
        db,
        user,
        TicketRequest(
            subject=data.subject,
            requester=data.requester,
            body=data.body,
            contract=data.contract,
            ticket_type=data.ticket_type,
            assignee=data.assignee,
            product=data.product,
            custom_fields=data.custom_fields,
            cc=data.cc or [],
            subcontractor=data.subcontractor,
            source="api",
        ),
        at=now,
    )
    ticket = svc.open_ticket(db, new)
    db.commit()
    return ticket_with_events(ticket, user, now, _base(request))


@post(
    "/tickets/{number:int}/comments",
    sync_to_thread=True,
    status_code=201,
    summary="Comment or note",
)
def add_comment(db: DB, user: CurrentUser, number: Id, data: NewComment) -> dict[str, Any]:
    ticket = svc.get_ticket(db, number, user)
    event = svc.add_comment(
        db, ticket, author=user, body=data.body, public=data.public, audience=data.audience
    )
    db.commit()
    return event_json(event)


@post(
    "/tickets/{number:int}/status",
    sync_to_thread=True,
    status_code=200,
    summary="Change the status",
)
def set_status(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: StatusChange
) -> dict[str, Any]:
    ticket = svc.get_ticket(db, number, user)
    svc.change_status(db, ticket, data.status, actor=user, note=data.note)
    db.commit()
    return ticket_json(ticket, user, utcnow(), _base(request))


@post("/tickets/bulk-status", sync_to_thread=True, status_code=200, summary="Change many statuses")
def bulk_status(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, data: BulkStatusChange
) -> dict[str, Any]:
    changed = svc.bulk_change_status(db, data.numbers, data.status, actor=user)
    db.commit()
    now = utcnow()
    return {
        "changed": len(changed),
        "items": [ticket_json(t, user, now, _base(request)) for t in changed],
    }


@post("/tickets/{number:int}/assign", sync_to_thread=True, status_code=200, summary="Assign")
def assign_ticket(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: dict[str, Any]
) -> dict[str, Any]:
    """``assignee`` (e-mail or null) and ``subcontractor`` (name or null); an omitted key
    leaves that side unchanged."""
    unknown = set(data) - {"assignee", "subcontractor"}
    if unknown:
        raise InputError(
            f"unknown field(s): {', '.join(sorted(unknown))}; use assignee, subcontractor"
        )
    ticket = svc.get_ticket(db, number, user)
    if not (can(user, "assign", ticket) or can(user, "hand_over", ticket)):
        raise Forbidden(f"you may not assign ticket #{number}")
    assignee = ticket.assignee
    if "assignee" in data:
        value = data["assignee"]
        if value is not None and not isinstance(value, str):
            raise InputError("assignee must be an e-mail address or null")
        assignee = staff_user(db, value) if value else None
    sub = ticket.subcontractor
    if "subcontractor" in data:
        value = data["subcontractor"]
        if value is not None and not isinstance(value, str):
            raise InputError("subcontractor must be a name or null")
        sub = subcontractor_by_name(db, value) if value else None
    svc.assign(db, ticket, actor=user, assignee=assignee, subcontractor=sub)
    db.commit()
    return ticket_json(ticket, user, utcnow(), _base(request))


@post("/tickets/{number:int}/take", sync_to_thread=True, status_code=200, summary="Take")
def take_ticket(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id
) -> dict[str, Any]:
    """Take an unassigned ticket of a contract you serve (``core.tickets.queue``): 409 when
    someone else has taken it meanwhile, 403 when you do not serve its contract."""
    ticket = svc.get_ticket(db, number, user)
    queue.take_ticket(db, user, ticket)
    db.commit()
    return ticket_json(ticket, user, utcnow(), _base(request))


@dataclass
class MergeRequest:
    into: Annotated[int, Meta(ge=1, le=MAX_ID)]


@dataclass
class SplitRequest:
    event: Annotated[int, Meta(ge=1, le=MAX_ID)]


@post("/tickets/{number:int}/merge", sync_to_thread=True, status_code=200, summary="Merge")
def merge_ticket(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: MergeRequest
) -> dict[str, Any]:
    """Merge this ticket into #``into`` (``core.tickets.merge``, docs/merge.md); answers the
    target (the end of ``into``'s chain when that one was merged too)."""
    ticket = svc.get_ticket(db, number, user)
    target = merge_tickets(db, ticket, data.into, actor=user)
    db.commit()
    return ticket_json(target, user, utcnow(), _base(request))


@post("/tickets/{number:int}/split", sync_to_thread=True, status_code=201, summary="Split")
def split_ticket(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: SplitRequest
) -> dict[str, Any]:
    """Split the received mail ``event`` out of this ticket into a new ticket
    (``core.tickets.merge``, docs/merge.md); answers the new ticket."""
    ticket = svc.get_ticket(db, number, user)
    new = split_event(db, ticket, data.event, actor=user)
    db.commit()
    return ticket_json(new, user, utcnow(), _base(request))


@get(
    "/tickets/{number:int}/subcontractor-suggestions",
    sync_to_thread=True,
    summary="Whom to hand the ticket to",
)
def subcontractor_suggestions(
    db: DB,
    user: CurrentUser,
    number: Id,
    include_all: Annotated[str | None, QueryParameter(name="all")] = None,
) -> list[dict[str, Any]]:
    """The subcontractors serving the ticket's contract, best first: fewest open tickets
    handed to them, then who had this client's latest ticket, then name; ``reason`` says why,
    in English. ``all=true`` lists those not serving the contract after them. A ticket
    without a contract: everyone (nobody serves it, anyone may take it)."""
    ticket = svc.get_ticket(db, number, user)
    if not (can(user, "assign", ticket) or can(user, "hand_over", ticket)):
        raise Forbidden(f"you may not assign ticket #{number}")
    everyone = bool(_flag(include_all, "all")) or ticket.contract_id is None
    return [
        {
            "name": s.subcontractor.name,
            "reason": s.reason(),
            "serves_contract": s.serves_contract,
            "open_tickets": s.open_tickets,
        }
        for s in suggest_subcontractors(db, ticket)
        if s.serves_contract or everyone
    ]


@post(
    "/tickets/{number:int}/fields",
    sync_to_thread=True,
    status_code=200,
    summary="Set custom fields",
)
def set_fields(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: FieldsChange
) -> dict[str, Any]:
    ticket = svc.get_ticket(db, number, user)
    svc.set_fields(db, ticket, actor=user, custom_fields=data.custom_fields)
    db.commit()
    return ticket_with_cc(ticket, user, utcnow(), _base(request))


@post(
    "/tickets/{number:int}/contract",
    sync_to_thread=True,
    status_code=200,
    summary="Move to a contract",
)
def set_contract(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: ContractChange
) -> dict[str, Any]:
    """Sort a ticket (often one in triage) into a contract; its clocks are re-targeted."""
    ticket = svc.get_ticket(db, number, user)
    svc.change_contract(
        db, ticket, contract_by_code(db, data.contract), actor=user, ticket_type=data.ticket_type
    )
    db.commit()
    return ticket_json(ticket, user, utcnow(), _base(request))


@post(
    "/tickets/{number:int}/requester",
    sync_to_thread=True,
    status_code=200,
    summary="Name the requester",
)
def set_requester(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: RequesterChange
) -> dict[str, Any]:
    """Name the person the ticket is for (a contact is made for an unknown address); a ticket
    in triage takes their client. For mail whose From could not be read (docs/mail.md)."""
    ticket = svc.get_ticket(db, number, user)
    change_requester(db, ticket, data.requester, actor=user, name=data.name)
    db.commit()
    return ticket_json(ticket, user, utcnow(), _base(request))


@post("/tickets/{number:int}/type", sync_to_thread=True, status_code=200, summary="Change the type")
def set_type(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: TypeChange
) -> dict[str, Any]:
    """Re-type a ticket; its SLA clocks are re-targeted from creation (docs/sla.md)."""
    ticket = svc.get_ticket(db, number, user)
    svc.change_type(db, ticket, data.ticket_type, actor=user, add_checklist=data.add_checklist)
    db.commit()
    return ticket_with_cc(ticket, user, utcnow(), _base(request))


@post(
    "/tickets/{number:int}/checklist/{item_id:int}",
    sync_to_thread=True,
    status_code=200,
    summary="Tick or untick a checklist item",
)
def tick_checklist_item(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    number: Id,
    item_id: Id,
    data: ChecklistTick,
) -> dict[str, Any]:
    """Staff and the subcontractor the ticket is handed to tick items; each tick is a
    ``checklist`` event. Answers the ticket with its ``checklist``."""
    ticket = svc.get_ticket(db, number, user)
    checklists.tick(db, ticket, item_id, data.done, actor=user)
    db.commit()
    return ticket_with_cc(ticket, user, utcnow(), _base(request))


@post(
    "/tickets/{number:int}/checklist",
    sync_to_thread=True,
    status_code=201,
    summary="Add a checklist item to one ticket",
)
def add_checklist_item(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    number: Id,
    data: NewChecklistItem,
) -> dict[str, Any]:
    """Staff add a step to this ticket's checklist (``required``: closing waits for it)."""
    ticket = svc.get_ticket(db, number, user)
    checklists.add_item(db, ticket, data.text, actor=user, required=data.required)
    db.commit()
    return ticket_with_cc(ticket, user, utcnow(), _base(request))


@post(
    "/tickets/{number:int}/cc",
    sync_to_thread=True,
    status_code=200,
    summary="Copy a contact on the ticket",
)
def add_cc(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: CopiedContact
) -> dict[str, Any]:
    """The contact (an existing one of the ticket's client, or a new address in its domain)
    gets the requester's mail about the ticket and sees it in the portal."""
    ticket = svc.get_ticket(db, number, user)
    if not can(user, "cc", ticket):
        raise Forbidden(f"you may not change who is copied on ticket #{number}")
    contacts.add_contact(db, ticket, contacts.contact_for(db, ticket, data.email), actor=user)
    db.commit()
    return ticket_with_cc(ticket, user, utcnow(), _base(request))


@delete(
    "/tickets/{number:int}/cc/{email:str}",
    sync_to_thread=True,
    status_code=200,
    summary="Stop copying a contact on the ticket",
)
def remove_cc(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, email: str
) -> dict[str, Any]:
    ticket = svc.get_ticket(db, number, user)
    if contacts.remove_contact(db, ticket, email, actor=user) is None:
        raise NotFound(f"{email} is not copied on ticket #{number}")
    db.commit()
    return ticket_with_cc(ticket, user, utcnow(), _base(request))


ticket_handlers = [
    add_cc,
    remove_cc,
    set_contract,
    set_requester,
    set_type,
    list_tickets,
    show_ticket,
    create_ticket,
    add_comment,
    set_status,
    bulk_status,
    assign_ticket,
    take_ticket,
    merge_ticket,
    split_ticket,
    subcontractor_suggestions,
    *worklog_handlers,
    set_fields,
    tick_checklist_item,
    add_checklist_item,
]
