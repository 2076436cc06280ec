"""One ticket: its fields, its whole timeline and the forms that work it.

Every form posts to its own URL and answers with a redirect back (POST/redirect/GET, so a
reload never repeats a comment); a refusal from core re-renders the page with the sentence
and the 4xx status core chose, keeping what the person typed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from litestar import get
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core.access.permissions import can, can_view, settable_statuses, status_visible
from core.clock import utcnow
from core.contracts.models import Contract
from core.directory.models import STAFF_ROLES, User
from core.directory.services import (
    UNKNOWN_SENDER,
    contract_by_code,
    staff_user,
    subcontractor_by_name,
)
from core.errors import InputError
from core.mail.models import InboundMessage
from core.sla import clocks as sla_clock
from core.sla.clocks import is_overdue
from core.tickets import checklists
from core.tickets import fields as field_rules
from core.tickets.contacts import copied
from core.tickets.handoff import OutsideContract, Suggestion, suggest_subcontractors
from core.tickets.merge import merge_view
from core.tickets.models import Ticket, TicketEvent
from core.tickets.queue import may_take
from core.tickets.requester import change_requester
from core.tickets.services import (
    add_comment,
    assign,
    change_contract,
    change_status,
    change_type,
    get_ticket,
    set_fields,
    statuses_for,
)
from core.tickets.visibility import EventView, custom_field_rows, visible_events
from core.worklog.services import EDIT_DAYS
from web.console.common import category_word, form_str, form_uploads
from web.console.custom_fields import fields_draft, form_context, posted_fields
from web.console.forms import (
    URLENCODED,
    ActingTicket,
    Console,
    CurrentConsole,
    Form,
    FormDict,
    Refused,
    UploadFormDict,
    form_post,
)
from web.console.reply_box import changes_while_writing, reply_box_context
from web.console.worklog_view import change_rows, worklog_context
from web.i18n import Translator


def timeline(db: Session, user: User, ticket: Ticket) -> list[EventView]:
    """The events this user may read, oldest first, as they may read them
    (``core.tickets.visibility``), with authors and files loaded up front (templates render
    after the handler's thread is done, so nothing may load lazily)."""
    events = db.scalars(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id)
        .order_by(TicketEvent.at, TicketEvent.id)
        .options(selectinload(TicketEvent.author), selectinload(TicketEvent.attachments))
    )
    return visible_events(user, ticket, events, statuses_for(db, ticket.contract), session=db)


def detail_context(
    db: Session,
    user: User,
    ticket: Ticket,
    now: datetime,
    lang: str = "en",
    draft: Mapping[str, Any] | None = None,
    edit_days: int = EDIT_DAYS,
) -> dict[str, Any]:
    statuses = statuses_for(db, ticket.contract)
    by_name = {s.name: s for s in statuses}
    client_view = user.role == "client"
    names_hidden = user.role in ("client", "subcontractor")

    def status_hidden(name: str | None) -> bool:
        """Clients see a status that is not ``visible_to_client`` only by its category,
        subcontractors one not ``visible_to_subcontractor`` (the events name them so already:
        ``core.tickets.visibility``)."""
        if not names_hidden:
            return False
        status = by_name.get(name or "")
        return status is None or not status_visible(user, status)

    can_assign = can(user, "assign", ticket)
    # Handing over to a subcontractor is its own action where core has it (custom roles).
    can_hand_over = can(user, "hand_over", ticket)
    staff: list[User] = []
    subcontractors: list[Suggestion] = []
    if can_assign:
        staff = list(
            db.scalars(
                select(User)
                .where(User.role.in_(STAFF_ROLES), User.active.is_(True))
                .order_by(User.name, User.email)
            )
        )
    if can_hand_over:
        # Best first (core.tickets.handoff); those not serving the contract come last, in
        # their own group, and handing to one of them asks for a confirmation.
        subcontractors = suggest_subcontractors(db, ticket)
    events = timeline(db, user, ticket)
    contracts = (
        list(
            db.scalars(
                select(Contract)
                .order_by(Contract.code)
                .options(selectinload(Contract.ticket_types))
            )
        )
        if can(user, "edit", ticket)
        else []
    )
    # Assignment events record e-mails (stable); the timeline shows people's names.
    emails = {
        e.data.get(k)
        for e in events
        if e.type in ("assignment", "worklog")
        for k in ("assignee", "from_assignee", "user", "for")
        if isinstance(e.data.get(k), str)
    }
    people = {u.email: u.display for u in db.scalars(select(User).where(User.email.in_(emails)))}
    return {
        "may_take": may_take(user, ticket),  # the "Take" button (core.tickets.queue)
        **merge_view(db, user, ticket),  # "Merge into…", "Split", the banner (core.tickets.merge)
        "ticket": ticket,
        "events": events,
        # Canned replies, macros, drafts, "changed while you were writing" (issue 15).
        **reply_box_context(db, user, ticket, events),
        "people": people,
        "overdue": is_overdue(ticket, now),
        "client_view": client_view,
        "status_hidden": status_hidden,
        "settable": settable_statuses(user, statuses) if can(user, "status", ticket) else [],
        "can_comment": can(user, "comment", ticket),
        "can_note": can(user, "note", ticket),
        # A note's audience is chosen by our staff, on a ticket handed to a subcontractor.
        "can_choose_audience": can(user, "note", ticket)
        and user.role != "subcontractor"
        and ticket.subcontractor_id is not None,
        "can_assign": can_assign,
        "can_hand_over": can_hand_over,
        "can_worklog": can(user, "worklog", ticket),
        # Contacts copied on the ticket (core.tickets.contacts), loaded here, not in the template.
        "copied": copied(ticket),
        "can_cc": can(user, "cc", ticket),
        "staff": staff,
        "subcontractors": subcontractors,
        "serving": [s for s in subcontractors if s.serves_contract or ticket.contract is None],
        "not_serving": [
            s for s in subcontractors if not s.serves_contract and ticket.contract is not None
        ],
        # The best one is preselected while the ticket is with no subcontractor yet.
        "suggested": next(
            (
                s.subcontractor.id
                for s in subcontractors
                if s.serves_contract and ticket.subcontractor_id is None
            ),
            None,
        ),
        # Why each is offered, in the page's language (``lang`` of the template).
        "reason": lambda s, lang: s.reason(Translator(lang)),
        "fields": custom_field_rows(user, ticket, session=db, lang=lang),
        **form_context(db, user, ticket, lang, contracts, draft),
        "worked_minutes": ticket.worked_minutes or 0,
        # The work log card (web.console.worklog) and its events on the timeline.
        **worklog_context(db, user, ticket, now, lang, edit_days),
        "worklog_changes": lambda e: change_rows(e, Translator(lang)),
        "clock_periods": clock_periods(ticket, now),
        "can_edit": can(user, "edit", ticket),
        "unknown_requester": ticket.requester.email == UNKNOWN_SENDER,
        # Sorting a ticket (above all one in triage) into a contract and type.
        "contracts": contracts,
        # Events whose original mail is stored: one query, not one per event.
        "raw_events": set()
        if client_view
        else set(
            db.scalars(
                select(InboundMessage.event_id).where(
                    InboundMessage.ticket_id == ticket.id, InboundMessage.event_id.is_not(None)
                )
            )
        ),
    }


def clock_periods(ticket: Ticket, now: datetime) -> list[dict[str, Any]]:
    """The SLA clock's history for the side panel: when it ran, paused or stood still."""
    periods = sla_clock.category_periods(ticket)
    rows: list[dict[str, Any]] = []
    for i, (since, category) in enumerate(periods):
        until = periods[i + 1][0] if i + 1 < len(periods) else None
        state = {"new": "running", "open": "running", "paused": "paused"}.get(category, "stopped")
        if rows and rows[-1]["state"] == state:
            rows[-1]["until"] = until  # new -> open is one stretch of a running clock
            continue
        rows.append({"since": since, "until": until, "state": state})
    return rows


def detail_page(
    console: Console,
    number: int,
    *,
    status_code: int = 200,
    error: str | None = None,
    draft: Mapping[str, Any] | None = None,
) -> Template:
    # Not visible is answered like not there (NotFound, 404): numbers cannot be probed.
    ticket = get_ticket(console.db, number, console.user)
    return console.render(
        "ticket_detail.html",
        status_code=status_code,
        error=error,
        draft=draft or {},
        **detail_context(
            console.db,
            console.user,
            ticket,
            utcnow(),
            console.tr.lang,
            draft,
            edit_days=console.request.app.state.settings.worklog_edit_days,
        ),
    )


def ticket_refused(draft: Callable[[Any], Mapping[str, Any]] | None = None) -> Refused:
    """A refused form of the ticket page: the page again, with the sentence and what the
    person typed (``draft`` picks it from the form)."""

    def refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
        return detail_page(
            console,
            int(console.request.path_params["number"]),
            status_code=exc.status_code,
            error=console.refusal(exc),
            draft=draft(kwargs["data"]) if draft is not None else None,
        )

    return refused


def ticket_done(
    console: Console,
    ticket: Ticket,
    event: TicketEvent | None,
    message: str,
    *,
    unchanged: str | None = None,
) -> Redirect:
    """Back to the ticket, at the new event, saying ``message`` (``unchanged`` instead when
    there is no event: nothing changed); to the list when the user may no longer see it (e.g.
    handed away from the person who did it)."""
    if event is None and unchanged is not None:
        message = unchanged
    if not can_view(console.user, ticket):
        return console.redirect("/tickets", message)
    anchor = f"#e{event.id}" if event is not None else ""
    return console.redirect(f"/tickets/{ticket.number}{anchor}", message)


@get("/tickets/{number:int}", sync_to_thread=True, name="ticket")
def ticket_detail(console: CurrentConsole, number: int) -> Template:
    return detail_page(console, number)


def _comment_draft(data: Mapping[str, Any]) -> dict[str, str]:
    internal = form_str(data, "visibility") == "internal"
    return {
        "body": form_str(data, "body"),
        "visibility": "internal" if internal else "public",
        "audience": form_str(data, "audience"),
    }


@form_post("/tickets/{number:int}/comment", refused=ticket_refused(_comment_draft))
def post_comment(
    console: CurrentConsole, ticket: ActingTicket, data: UploadFormDict
) -> Template | Redirect:
    # Someone else changed the ticket since the page was shown: the page again, with the
    # warning and the kept text, and nothing sent (web.console.reply_box).
    changed = changes_while_writing(console.db, console.user, ticket, data, console.tr)
    if changed:
        return detail_page(
            console,
            ticket.number,
            status_code=409,
            draft={**_comment_draft(data), "changed": changed},
        )
    public = form_str(data, "visibility") != "internal"
    event = add_comment(
        console.db,
        ticket,
        author=console.user,
        body=form_str(data, "body"),
        public=public,
        attachments=form_uploads(data, "files"),
        blobs=console.request.app.state.blobs,
        # The checkbox "also visible to the subcontractor" (notes only; ignored on a comment).
        audience=None if public else (form_str(data, "audience") or None),
    )
    if public:
        message = console.gettext("Comment added.")
    elif event.data.get("audience") == "subcontractor" and console.user.role != "subcontractor":
        message = console.gettext("Internal note added, visible to the subcontractor too.")
    else:
        message = console.gettext("Internal note added.")
    return ticket_done(console, ticket, event, message)


@dataclass
class StatusForm(Form):
    status: str = ""


@form_post("/tickets/{number:int}/status", refused=ticket_refused())
def post_status(
    console: CurrentConsole, ticket: ActingTicket, data: Annotated[StatusForm, URLENCODED]
) -> Template | Redirect:
    if not data.status:
        raise InputError(console.gettext("Choose the status to set."))
    event = change_status(console.db, ticket, data.status, actor=console.user)
    if event is None:
        message = console.gettext("The ticket already has this status.")
    else:
        label = ticket.status.name
        if console.user.role == "client" and not ticket.status.visible_to_client:
            label = category_word(console.tr, ticket.status.category)
        message = console.gettext("Status changed to %(status)s.") % {"status": label}
    return ticket_done(console, ticket, event, message)


@dataclass
class AssignForm(Form):
    assignee: str = ""
    subcontractor: str = ""
    # "1" once the person confirmed handing the ticket to a subcontractor outside its contract.
    confirm_outside: str = ""


def _assign_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    """The page again with what was chosen; for a subcontractor outside the contract, the
    form asks to confirm (``draft["outside"]``) instead of just saying no."""
    data: AssignForm = kwargs["data"]
    draft = {"assign": "1", "assignee": data.assignee, "subcontractor": data.subcontractor}
    if isinstance(exc, OutsideContract):
        draft["outside"] = "1"
    return detail_page(
        console,
        int(console.request.path_params["number"]),
        status_code=exc.status_code,
        error=console.refusal(exc),
        draft=draft,
    )


@form_post("/tickets/{number:int}/assign", refused=_assign_refused)
def post_assign(
    console: CurrentConsole, ticket: ActingTicket, data: Annotated[AssignForm, URLENCODED]
) -> Template | Redirect:
    db = console.db
    event = assign(
        db,
        ticket,
        actor=console.user,
        assignee=staff_user(db, data.assignee) if data.assignee else None,
        subcontractor=subcontractor_by_name(db, data.subcontractor) if data.subcontractor else None,
        allow_outside_contract=data.confirm_outside == "1",
    )
    return ticket_done(
        console,
        ticket,
        event,
        console.gettext("Assignment saved."),
        unchanged=console.gettext("The assignment has not changed."),
    )


@dataclass
class ContractForm(Form):
    contract: str = ""
    ticket_type: str = ""
    # "1": add the chosen type's checklist items (the form asks when the type has some).
    add_checklist: str = ""


@form_post("/tickets/{number:int}/contract", refused=ticket_refused())
def post_contract(
    console: CurrentConsole, ticket: ActingTicket, data: Annotated[ContractForm, URLENCODED]
) -> Template | Redirect:
    """Move the ticket to a contract and type; its SLA clocks are re-targeted from creation."""
    if not data.contract:
        raise InputError(console.gettext("Choose the contract."))
    contract = contract_by_code(console.db, data.contract)
    add = data.add_checklist == "1"
    event: TicketEvent | None
    if contract.id == ticket.contract_id and data.ticket_type:
        # Only the type changes: a ``field`` event, and the new type's checklist if asked.
        event = change_type(
            console.db, ticket, data.ticket_type, actor=console.user, add_checklist=add
        )
    else:
        event = change_contract(
            console.db,
            ticket,
            contract,
            actor=console.user,
            ticket_type=data.ticket_type or None,
        )
        if event is not None and add:
            checklists.add_type_items(console.db, ticket, actor=console.user)
    return ticket_done(
        console,
        ticket,
        event,
        console.gettext("Contract and type saved."),
        unchanged=console.gettext("The contract has not changed."),
    )


@dataclass
class RequesterForm(Form):
    requester: str = ""
    name: str = ""


@form_post("/tickets/{number:int}/requester", refused=ticket_refused())
def post_requester(
    console: CurrentConsole, ticket: ActingTicket, data: Annotated[RequesterForm, URLENCODED]
) -> Template | Redirect:
    """Name the ticket's requester (above all on a ticket from an unreadable From)."""
    if "@" not in data.requester:
        raise InputError(console.gettext("Enter the requester's e-mail address."))
    event = change_requester(
        console.db, ticket, data.requester, actor=console.user, name=data.name.strip() or None
    )
    return ticket_done(
        console,
        ticket,
        event,
        console.gettext("Requester saved."),
        unchanged=console.gettext("The requester has not changed."),
    )


# --- Custom fields and the checklist (issue 12) ----------------------------------------------


@form_post("/tickets/{number:int}/fields", refused=ticket_refused(fields_draft))
def post_fields(
    console: CurrentConsole, ticket: ActingTicket, data: FormDict
) -> Template | Redirect:
    """Save the ticket's custom fields (``core.tickets.services.set_fields`` checks rights,
    types and dependencies)."""
    defs = field_rules.definitions(console.db, ticket.contract)
    requested = posted_fields(
        defs, console.user, dict(ticket.custom_fields or {}), data, contract=ticket.contract
    )
    event = (
        set_fields(console.db, ticket, actor=console.user, custom_fields=requested)
        if requested
        else None
    )
    return ticket_done(
        console,
        ticket,
        event,
        console.gettext("Fields saved."),
        unchanged=console.gettext("The fields have not changed."),
    )


@dataclass
class TickForm(Form):
    done: str = ""


@form_post("/tickets/{number:int}/checklist/{item:int}", refused=ticket_refused())
def post_tick(
    console: CurrentConsole, ticket: ActingTicket, item: int, data: Annotated[TickForm, URLENCODED]
) -> Template | Redirect:
    """Tick (done=1) or untick (done=0) one checklist item; back at the item, focused."""
    if data.done not in ("0", "1"):
        raise InputError(console.gettext("Choose whether the item is done."))
    event = checklists.tick(console.db, ticket, item, data.done == "1", actor=console.user)
    if event is None:
        message = console.gettext("The checklist has not changed.")
    elif data.done == "1":
        message = console.gettext("Item ticked.")
    else:
        message = console.gettext("Item unticked.")
    return console.redirect(f"/tickets/{ticket.number}#ci-{item}", message)


@dataclass
class ChecklistItemForm(Form):
    text: str = ""
    required: str = ""


@form_post(
    "/tickets/{number:int}/checklist",
    refused=ticket_refused(lambda data: {"item_text": data.text, "item_required": data.required}),
)
def post_checklist_item(
    console: CurrentConsole,
    ticket: ActingTicket,
    data: Annotated[ChecklistItemForm, URLENCODED],
) -> Template | Redirect:
    """Staff add a step to this ticket's checklist."""
    checklists.add_item(
        console.db, ticket, data.text, actor=console.user, required=data.required == "1"
    )
    return console.redirect(
        f"/tickets/{ticket.number}#checklist", console.gettext("Checklist item added.")
    )
