"""Opening a ticket from the console: staff on the phone with a client, or a client in the portal.

Staff choose the requester by e-mail (a known contact, or any address, which becomes a client
contact of the client owning its domain, as for mail), the contract, type, product and
assignee. Clients write a subject and a description and pick one of their client's contracts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import get
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core.access.permissions import can, can_view
from core.clock import utcnow
from core.contracts.models import Contract
from core.directory.models import STAFF_ROLES, Product, User
from core.directory.services import default_contract
from core.errors import Forbidden, InputError
from core.tickets import fields as field_rules
from core.tickets.intake import TicketRequest, check_may_open, intake
from core.tickets.services import open_ticket
from web.console.common import form_str, form_uploads
from web.console.custom_fields import field_rows, fields_draft, posted_fields
from web.console.forms import Console, CurrentConsole, UploadFormDict, form_post

FIELDS = ("subject", "body", "requester", "contract", "ticket_type", "product", "assignee")


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


def _fields_contract(
    db: Session, user: User, contracts: list[Contract], code: str
) -> Contract | None:
    """The contract whose fields the form shows for the contract select's ``code``; empty: a
    client's default contract (the one ``core.tickets.intake`` will choose), none for staff
    (the requester decides it)."""
    for c in contracts:
        if c.code == code:
            return c
    if user.role == "client" and user.client is not None:
        return default_contract(user.client, utcnow().date())
    return None


def field_sets(
    console: Console,
    contracts: list[Contract],
    chosen: str,
    draft: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """The custom fields a person may fill in on open, one set per contract of the select
    (and one for its empty choice); ``web/static/fields.js`` shows the chosen contract's and
    disables the rest, and without it the set of the contract chosen when the page was drawn
    is the one sent. Only the fields the user may set on open are offered."""
    db, user, lang = console.db, console.user, console.tr.lang
    codes = [c.code for c in contracts]
    if chosen not in codes:
        chosen = ""
    sets = []
    for code in ["", *codes]:
        contract = _fields_contract(db, user, contracts, code)
        defs = field_rules.definitions(db, contract)
        rows = [
            r
            for r in field_rows(
                defs,
                user,
                {},
                contract=contract,
                lang=lang,
                opening=True,
                draft=draft if code == chosen else None,
            )
            if r["editable"]
        ]
        rules = [
            r
            for r in field_rules.form_rules(defs, user, contract=contract, lang=lang, opening=True)
            if r["editable"]
        ]
        sets.append({"code": code, "rows": rows, "rules": rules, "active": code == chosen})
    return sets


def new_page(
    console: Console,
    *,
    form: Mapping[str, str] | None = None,
    status_code: int = 200,
    error: str | None = None,
    draft: Mapping[str, Any] | None = None,
) -> Template:
    db, user = console.db, console.user
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
    can_assign = can(user, "assign")
    if form is None:
        form = {}
    contracts = _contracts(db, user)
    return console.render(
        "ticket_new.html",
        status_code=status_code,
        error=error,
        form=form,
        staff_view=staff_view,
        contracts=contracts,
        field_sets=field_sets(console, contracts, form.get("contract", ""), draft),
        contacts=contacts,
        # Only who may assign chooses the assignee (core.tickets.intake refuses the rest).
        can_assign=can_assign,
        staff=staff if can_assign else [],
        products=products,
    )


def _fields(data: Mapping[str, Any]) -> dict[str, str]:
    return {name: form_str(data, name) for name in FIELDS}


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    if isinstance(exc, Forbidden) and console.user.role == "subcontractor":
        return console.error_page(exc)  # no form to come back to
    return new_page(
        console,
        form=_fields(kwargs["data"]),
        status_code=exc.status_code,
        error=console.refusal(exc),
        draft=fields_draft(kwargs["data"]),
    )


@get("/tickets/new", sync_to_thread=True, name="ticket_new")
def ticket_new_form(console: CurrentConsole) -> Template:
    check_may_open(console.user)
    return new_page(console)


@form_post("/tickets/new", refused=_refused)
def ticket_new_submit(console: CurrentConsole, data: UploadFormDict) -> Template | Redirect:
    """Staff fill in the requester, type, product and assignee; a client's page has none of
    them. Who may open what for whom is ``core.tickets.intake``'s."""
    form = _fields(data)
    staff = console.user.is_staff
    assignee = form["assignee"] or None
    if console.user.role == "technician" and not can(console.user, "assign") and not assignee:
        # A technician sees only tickets assigned to them, so their new ticket starts theirs
        # (naming oneself is no assigning: core.tickets.intake).
        assignee = console.user.email
    contract = _fields_contract(
        console.db, console.user, _contracts(console.db, console.user), form["contract"]
    )
    custom = posted_fields(
        field_rules.definitions(console.db, contract),
        console.user,
        {},
        data,
        contract=contract,
        opening=True,
    )
    new = intake(
        console.db,
        console.user,
        TicketRequest(
            subject=form["subject"],
            requester=form["requester"] if staff else None,
            body=form["body"] or None,
            contract=form["contract"] or None,
            ticket_type=(form["ticket_type"] or None) if staff else None,
            assignee=assignee if staff else None,
            product=(form["product"] or None) if staff else None,
            custom_fields=custom or None,
            attachments=form_uploads(data, "files"),
            source="web",
        ),
    )
    ticket = open_ticket(console.db, new, blobs=console.request.app.state.blobs)
    message = console.gettext("Ticket #%(number)d opened.") % {"number": ticket.number}
    if not can_view(console.user, ticket):  # e.g. a technician who assigned it to a colleague
        return console.redirect("/tickets", message)
    return console.redirect(f"/tickets/{ticket.number}", message)
