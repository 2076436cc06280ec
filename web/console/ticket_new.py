"""Opening a ticket from the console: staff on the phone with a client, or a client in the portal.

Staff choose the requester by e-mail (a known contact, or any address, which becomes a client
contact of the client owning its domain, as for mail), the contract, type, product and
assignee. Clients write a subject and a description and pick one of their client's contracts.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core.access.models import WebSession
from core.access.permissions import can_view
from core.clock import utcnow
from core.contracts.models import Contract
from core.directory.models import STAFF_ROLES, Product, User
from core.directory.services import (
    contract_by_code,
    default_contract,
    find_or_create_contact,
    product_by_name,
    staff_user,
)
from core.errors import Forbidden, InputError, localized
from core.tickets.services import NewTicket, open_ticket
from web.console.common import (
    console_session,
    error_page,
    form_str,
    form_uploads,
    redirect,
    render,
    translator,
)
from web.deps import DB, CurrentUser, check_csrf

FIELDS = ("subject", "body", "requester", "contract", "ticket_type", "product", "assignee")


def _refusal(request: Request[Any, Any, Any], user: User) -> Forbidden | None:
    # Subcontractors work tickets handed to them; new work reaches them through a coordinator.
    if user.role == "subcontractor":
        tr = translator(request, user)
        return Forbidden(tr.gettext("Subcontractors cannot open tickets; ask the coordinator."))
    return None


def _contracts(db: Session, user: User) -> list[Contract]:
    today = utcnow().date()
    stmt = (
        select(Contract)
        .options(selectinload(Contract.client), selectinload(Contract.ticket_types))
        .order_by(Contract.code)
    )
    if user.role == "client":
        stmt = stmt.where(Contract.client_id == (user.client_id or -1))
    return [c for c in db.scalars(stmt) if c.is_active(today)]


def new_page(
    request: Request[Any, Any, Any],
    db: Session,
    user: User,
    web_session: WebSession | None,
    *,
    form: dict[str, str] | None = None,
    status_code: int = 200,
    error: str | None = None,
) -> Template:
    staff_view = user.is_staff
    contacts: list[User] = []
    staff: list[User] = []
    products: list[Product] = []
    if staff_view:
        contacts = list(
            db.scalars(
                select(User)
                .where(User.role == "client", User.active.is_(True))
                .order_by(User.email)
                .options(selectinload(User.client))
            )
        )
        staff = list(
            db.scalars(
                select(User)
                .where(User.role.in_(STAFF_ROLES), User.active.is_(True))
                .order_by(User.name, User.email)
            )
        )
        products = list(db.scalars(select(Product).order_by(Product.name)))
    if form is None:
        # A technician sees only tickets assigned to them, so their new ticket starts theirs.
        form = {"assignee": user.email if user.role == "technician" else ""}
    return render(
        request,
        "ticket_new.html",
        user=user,
        web_session=web_session,
        status_code=status_code,
        error=error,
        form=form,
        staff_view=staff_view,
        contracts=_contracts(db, user),
        contacts=contacts,
        staff=staff,
        products=products,
    )


@get("/tickets/new", sync_to_thread=True, name="ticket_new")
def ticket_new_form(request: Request[Any, Any, Any], db: DB, user: CurrentUser) -> Template:
    web_session = console_session(request, db)
    if refusal := _refusal(request, user):
        return error_page(request, user, web_session, refusal)
    return new_page(request, db, user, web_session)


@post("/tickets/new", sync_to_thread=True, status_code=303)
def ticket_new_submit(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
) -> Template | Redirect:
    web_session = console_session(request, db)
    check_csrf(request, web_session, data)
    if refusal := _refusal(request, user):
        return error_page(request, user, web_session, refusal)
    form = {name: form_str(data, name) for name in FIELDS}
    tr = translator(request, user)
    now = utcnow()
    try:
        if user.is_staff:
            requester = find_or_create_contact(db, form["requester"]) if form["requester"] else user
            assignee = staff_user(db, form["assignee"]) if form["assignee"] else None
            product = product_by_name(db, form["product"]) if form["product"] else None
        else:
            requester, assignee, product = user, None, None
        if form["contract"]:
            contract = contract_by_code(db, form["contract"])
            if user.role == "client" and contract.client_id != user.client_id:
                raise Forbidden(tr.gettext("Choose one of your own contracts."))
        else:
            contract = default_contract(requester.client, now.date())
        ticket = open_ticket(
            db,
            NewTicket(
                subject=form["subject"],
                requester=requester,
                body=form["body"] or None,
                contract=contract,
                ticket_type=(form["ticket_type"] or None) if user.is_staff else None,
                assignee=assignee,
                product=product,
                author=user,
                source="web",
                at=now,
                attachments=form_uploads(data, "files"),
            ),
            blobs=request.app.state.blobs,
        )
    except InputError as exc:
        db.rollback()
        return new_page(
            request,
            db,
            user,
            web_session,
            form=form,
            status_code=exc.status_code,
            error=localized(exc, tr.gettext),
        )
    db.commit()
    message = tr.gettext("Ticket #%(number)d opened.") % {"number": ticket.number}
    if not can_view(user, ticket):  # e.g. a technician who assigned it to a colleague
        return redirect(request, "/tickets", message)
    return redirect(request, f"/tickets/{ticket.number}", message)
