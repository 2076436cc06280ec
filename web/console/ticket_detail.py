"""One ticket: its fields, its whole timeline and the forms that work it.

Every form posts to its own URL and answers with a redirect back (POST/redirect/GET, so a
reload never repeats a comment); a refusal from core re-renders the page with the sentence
and the 4xx status core chose, keeping what the person typed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core.access.models import WebSession
from core.access.permissions import can, can_see_event, can_view, settable_statuses
from core.clock import utcnow
from core.contracts.models import Contract, CustomField
from core.directory.models import STAFF_ROLES, Subcontractor, User
from core.directory.services import contract_by_code, staff_user, subcontractor_by_name
from core.errors import InputError, NotFound
from core.mail.models import InboundMessage
from core.sla import clocks as sla_clock
from core.sla.clocks import is_overdue
from core.tickets.contacts import copied
from core.tickets.models import Ticket, TicketEvent
from core.tickets.services import (
    add_comment,
    assign,
    change_contract,
    change_status,
    get_ticket,
    log_work,
    statuses_for,
)
from web.console.common import (
    category_word,
    console_session,
    error_page,
    form_str,
    form_uploads,
    redirect,
    refusal,
    render,
    translator,
)
from web.deps import DB, CurrentUser, check_csrf

URLENCODED = Body(media_type=RequestEncodingType.URL_ENCODED)
MULTIPART = Body(media_type=RequestEncodingType.MULTI_PART)


def timeline(db: Session, user: User, ticket: Ticket) -> list[TicketEvent]:
    """The events this user may read, oldest first, with authors and files loaded up front
    (templates render after the handler's thread is done, so nothing may load lazily)."""
    events = db.scalars(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id)
        .order_by(TicketEvent.at, TicketEvent.id)
        .options(selectinload(TicketEvent.author), selectinload(TicketEvent.attachments))
    )
    return [e for e in events if can_see_event(user, e)]


def custom_field_rows(db: Session, user: User, ticket: Ticket) -> list[tuple[str, Any]]:
    """(label, value) of the ticket's custom fields this user may read."""
    defs = list(
        db.scalars(
            select(CustomField)
            .where(
                (CustomField.contract_id.is_(None))
                | (CustomField.contract_id == (ticket.contract_id or -1))
            )
            .order_by(CustomField.name)
        )
    )
    values = ticket.custom_fields or {}
    rows: list[tuple[str, Any]] = []
    for field in defs:
        if user.role == "client" and not field.visible_to_client:
            continue
        rows.append((field.label or field.name, values.get(field.name)))
    if user.role != "client":
        known = {f.name for f in defs}
        rows += [(name, value) for name, value in sorted(values.items()) if name not in known]
    return rows


def detail_context(db: Session, user: User, ticket: Ticket, now: datetime) -> dict[str, Any]:
    statuses = statuses_for(db, ticket.contract)
    by_name = {s.name: s for s in statuses}
    client_view = user.role == "client"

    def status_hidden(name: str | None) -> bool:
        """Clients see a status that is not ``visible_to_client`` only by its category."""
        if not client_view:
            return False
        status = by_name.get(name or "")
        return status is None or not status.visible_to_client

    can_assign = can(user, "assign", ticket)
    staff: list[User] = []
    subcontractors: list[Subcontractor] = []
    if can_assign:
        staff = list(
            db.scalars(
                select(User)
                .where(User.role.in_(STAFF_ROLES), User.active.is_(True))
                .order_by(User.name, User.email)
            )
        )
        subs = select(Subcontractor).order_by(Subcontractor.name)
        subcontractors = [
            s
            for s in db.scalars(subs.options(selectinload(Subcontractor.contracts)))
            if ticket.contract is None or ticket.contract in s.contracts
        ]
    events = timeline(db, user, ticket)
    # Assignment events record e-mails (stable); the timeline shows people's names.
    emails = {
        e.data.get(k)
        for e in events
        if e.type == "assignment"
        for k in ("assignee", "from_assignee")
        if e.data.get(k)
    }
    people = {u.email: u.display for u in db.scalars(select(User).where(User.email.in_(emails)))}
    worked = sum(int(e.data.get("minutes") or 0) for e in events if e.type == "worklog")
    return {
        "ticket": ticket,
        "events": events,
        "people": people,
        "overdue": is_overdue(ticket, now),
        "client_view": client_view,
        "status_hidden": status_hidden,
        "settable": settable_statuses(user, statuses) if can(user, "status", ticket) else [],
        "can_comment": can(user, "comment", ticket),
        "can_note": can(user, "note", ticket),
        "can_assign": can_assign,
        "can_worklog": can(user, "worklog", ticket),
        # Contacts copied on the ticket (core.tickets.contacts), loaded here, not in the template.
        "copied": copied(ticket),
        "can_cc": can(user, "cc", ticket),
        "staff": staff,
        "subcontractors": subcontractors,
        "fields": custom_field_rows(db, user, ticket),
        "worked_minutes": worked,
        "clock_periods": clock_periods(ticket, now),
        # Sorting a ticket (above all one in triage) into a contract and type.
        "contracts": list(
            db.scalars(
                select(Contract)
                .order_by(Contract.code)
                .options(selectinload(Contract.ticket_types))
            )
        )
        if can(user, "edit", ticket)
        else [],
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
    rows = []
    for i, (since, category) in enumerate(periods):
        until = periods[i + 1][0] if i + 1 < len(periods) else None
        state = {"new": "running", "open": "running", "paused": "paused"}.get(category, "stopped")
        if rows and rows[-1]["state"] == state:
            rows[-1]["until"] = until  # new -> open is one stretch of a running clock
            continue
        rows.append({"since": since, "until": until, "state": state})
    return rows


def detail_page(
    request: Request[Any, Any, Any],
    db: Session,
    user: User,
    web_session: WebSession | None,
    number: int,
    *,
    status_code: int = 200,
    error: str | None = None,
    draft: dict[str, str] | None = None,
) -> Template:
    try:
        ticket = get_ticket(db, number, user)
    except NotFound as exc:  # not visible is answered like not there: numbers cannot be probed
        return error_page(request, user, web_session, exc)
    return render(
        request,
        "ticket_detail.html",
        user=user,
        web_session=web_session,
        status_code=status_code,
        error=error,
        draft=draft or {},
        **detail_context(db, user, ticket, utcnow()),
    )


def form_done(
    request: Request[Any, Any, Any],
    db: Session,
    user: User,
    ticket: Ticket,
    event: TicketEvent | None,
    message: str,
) -> Redirect:
    db.commit()
    if not can_view(user, ticket):  # e.g. handed away from the person who did it
        return redirect(request, "/tickets", message)
    anchor = f"#e{event.id}" if event is not None else ""
    return redirect(request, f"/tickets/{ticket.number}{anchor}", message)


def form_refused(
    request: Request[Any, Any, Any],
    db: Session,
    user: User,
    web_session: WebSession | None,
    number: int,
    exc: InputError,
    draft: dict[str, str] | None = None,
) -> Template:
    db.rollback()
    return detail_page(
        request,
        db,
        user,
        web_session,
        number,
        status_code=exc.status_code,
        error=refusal(request, user, exc),
        draft=draft,
    )


@get("/tickets/{number:int}", sync_to_thread=True, name="ticket")
def ticket_detail(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    number: int,
) -> Template:
    web_session = console_session(request, db)
    return detail_page(request, db, user, web_session, number)


def acting_on(
    request: Request[Any, Any, Any], db: Session, user: User, number: int, data: dict[str, Any]
) -> tuple[WebSession | None, Ticket, Any]:
    """What every form on the ticket page starts with: the session, its CSRF check, the
    ticket as this user may see it, and the user's translator."""
    web_session = console_session(request, db)
    check_csrf(request, web_session, data)
    return web_session, get_ticket(db, number, user), translator(request, user)


@post("/tickets/{number:int}/comment", sync_to_thread=True, status_code=303)
def post_comment(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    number: int,
    data: Annotated[dict[str, Any], MULTIPART],
) -> Template | Redirect:
    web_session, ticket, tr = acting_on(request, db, user, number, data)
    body = form_str(data, "body")
    public = form_str(data, "visibility") != "internal"
    try:
        event = add_comment(
            db,
            ticket,
            author=user,
            body=body,
            public=public,
            attachments=form_uploads(data, "files"),
            blobs=request.app.state.blobs,
        )
    except InputError as exc:
        draft = {"body": body, "visibility": "public" if public else "internal"}
        return form_refused(request, db, user, web_session, number, exc, draft)
    message = tr.gettext("Comment added.") if public else tr.gettext("Internal note added.")
    return form_done(request, db, user, ticket, event, message)


@post("/tickets/{number:int}/status", sync_to_thread=True, status_code=303)
def post_status(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    number: int,
    data: Annotated[dict[str, Any], URLENCODED],
) -> Template | Redirect:
    web_session, ticket, tr = acting_on(request, db, user, number, data)
    try:
        status = form_str(data, "status")
        if not status:
            raise InputError(tr.gettext("Choose the status to set."))
        event = change_status(db, ticket, status, actor=user)
    except InputError as exc:
        return form_refused(request, db, user, web_session, number, exc)
    if event is None:
        message = tr.gettext("The ticket already has this status.")
    else:
        label = ticket.status.name
        if user.role == "client" and not ticket.status.visible_to_client:
            label = category_word(tr, ticket.status.category)
        message = tr.gettext("Status changed to %(status)s.") % {"status": label}
    return form_done(request, db, user, ticket, event, message)


@post("/tickets/{number:int}/assign", sync_to_thread=True, status_code=303)
def post_assign(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    number: int,
    data: Annotated[dict[str, Any], URLENCODED],
) -> Template | Redirect:
    web_session, ticket, tr = acting_on(request, db, user, number, data)
    try:
        email = form_str(data, "assignee")
        sub_name = form_str(data, "subcontractor")
        event = assign(
            db,
            ticket,
            actor=user,
            assignee=staff_user(db, email) if email else None,
            subcontractor=subcontractor_by_name(db, sub_name) if sub_name else None,
        )
    except InputError as exc:
        return form_refused(request, db, user, web_session, number, exc)
    message = (
        tr.gettext("Assignment saved.")
        if event is not None
        else tr.gettext("The assignment has not changed.")
    )
    return form_done(request, db, user, ticket, event, message)


@post("/tickets/{number:int}/worklog", sync_to_thread=True, status_code=303)
def post_worklog(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    number: int,
    data: Annotated[dict[str, Any], URLENCODED],
) -> Template | Redirect:
    web_session, ticket, tr = acting_on(request, db, user, number, data)
    note = form_str(data, "note")
    raw = form_str(data, "minutes")
    try:
        if not raw.isdigit():
            raise InputError(tr.gettext("Enter the work time in whole minutes, e.g. 45."))
        minutes = int(raw)
        event = log_work(db, ticket, actor=user, minutes=minutes, note=note or None)
    except InputError as exc:
        return form_refused(
            request, db, user, web_session, number, exc, {"minutes": raw, "note": note}
        )
    message = tr.ngettext(
        "Logged %(n)d minute of work.", "Logged %(n)d minutes of work.", minutes
    ) % {"n": minutes}
    return form_done(request, db, user, ticket, event, message)


@post("/tickets/{number:int}/contract", sync_to_thread=True, status_code=303)
def post_contract(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    number: int,
    data: Annotated[dict[str, Any], URLENCODED],
) -> Template | Redirect:
    """Move the ticket to a contract and type; its SLA clocks are re-targeted from creation."""
    web_session, ticket, tr = acting_on(request, db, user, number, data)
    try:
        code = form_str(data, "contract")
        if not code:
            raise InputError(tr.gettext("Choose the contract."))
        type_name = form_str(data, "ticket_type") or None
        event = change_contract(
            db, ticket, contract_by_code(db, code), actor=user, ticket_type=type_name
        )
    except InputError as exc:
        return form_refused(request, db, user, web_session, number, exc)
    message = (
        tr.gettext("Contract and type saved.")
        if event is not None
        else tr.gettext("The contract has not changed.")
    )
    return form_done(request, db, user, ticket, event, message)
