"""Deleting a configured object from the console: only what nothing refers to.

``pulpit config apply`` never deletes (``core.configuration.apply``); the console may, but
only an object nothing refers to: no ticket, no contract, no user, no other field. Otherwise
the answer is a ``Conflict`` (409) whose sentence says what refers to it and what to do
instead: a contract with tickets is ended with an end date (``valid_to``) and keeps its
history, a user is never deleted but deactivated (``active: false``), a role held by users is
first taken off them. Every deletion writes an audit entry (``config.delete``) with the
object's exported form before it went, so its history still says what it was.

Objects: ``calendar``, ``client``, ``contract``, ``custom_field``, ``mailbox``, ``product``,
``role``, ``status``, ``subcontractor``, ``ticket_type`` and ``user`` (always refused). A
status, ticket type or custom field of a contract is named with ``contract=CODE`` (or as
``CODE/name``); the entry of such a part goes to the contract's history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

import core.configuration.audit as config_audit
import core.configuration.export as export
from core.audit import AuditEntry
from core.clock import utcnow
from core.configuration.edit import check_configure
from core.contracts.models import Contract, CustomField, Status, contract_products
from core.directory.models import Client, Product, Role, Subcontractor, User
from core.errors import Conflict, InputError, NotFound
from core.mail.models import ImapFolderState, Mailbox
from core.sla.models import Calendar
from core.tickets.models import Ticket

OBJECT_TYPES = (
    "calendar",
    "client",
    "contract",
    "custom_field",
    "mailbox",
    "product",
    "role",
    "status",
    "subcontractor",
    "ticket_type",
    "user",
)
#: The parts of a contract (or, for statuses and custom fields, of the whole instance).
_PARTS = ("custom_field", "status", "ticket_type")


def _count(session: Session, *where: Any) -> int:
    return int(session.scalar(select(func.count(Ticket.id)).where(*where)) or 0)


def _tickets(n: int) -> str:
    return f"{n} ticket{'s' if n != 1 else ''}"


def _names(values: list[str], limit: int = 5) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def delete_object(
    session: Session,
    object_type: str,
    key: str,
    actor: User,
    *,
    contract: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Delete one configured object, or raise ``Conflict`` saying what refers to it.

    Returns the object's exported form before it went (what the audit entry keeps). The
    caller commits."""
    check_configure(actor)
    if object_type not in OBJECT_TYPES:
        raise InputError(
            f"unknown kind of object {object_type!r}; use one of: {', '.join(OBJECT_TYPES)}"
        )
    if object_type in _PARTS and contract is None and "/" in key:
        code, _, name = key.partition("/")
        if session.scalar(select(Contract.id).where(Contract.code == code)) is not None:
            contract, key = code, name
    at = now or utcnow()
    owner = _contract(session, contract) if contract is not None else None
    if object_type in _PARTS and owner is not None:
        before = export._contract(session, owner)
        _delete_part(session, object_type, key, owner)
        session.flush()
        session.expire_all()
        owner = _contract(session, owner.code)
        after = export._contract(session, owner)
        session.add(
            AuditEntry(
                action="config.delete",
                actor=actor.email,
                at=at,
                object_type="contract",
                object_key=owner.code,
                data={
                    "deleted": True,
                    "what": object_type,
                    "name": key,
                    "before": config_audit._plain(before),
                    "changes": config_audit.diff(
                        config_audit._plain(before), config_audit._plain(after)
                    ),
                },
            )
        )
        session.flush()
        return dict(config_audit._plain(before))
    before = _DELETERS[object_type](session, key)
    plain = config_audit._plain(before)
    session.add(
        AuditEntry(
            action="config.delete",
            actor=actor.email,
            at=at,
            object_type=object_type,
            object_key=key,
            data={"deleted": True, "before": plain, "changes": config_audit.diff(plain, None)},
        )
    )
    session.flush()
    return dict(plain)


def _contract(session: Session, code: str) -> Contract:
    found = session.scalar(select(Contract).where(Contract.code == code))
    if found is None:
        raise NotFound(f"there is no contract {code!r}")
    return found


def _one(session: Session, model: Any, column: Any, key: str, what: str) -> Any:
    found = session.scalar(select(model).where(column == key))
    if found is None:
        raise NotFound(f"there is no {what} {key!r}")
    return found


def _delete_calendar(session: Session, name: str) -> dict[str, Any]:
    cal = _one(session, Calendar, Calendar.name, name, "calendar")
    users = list(session.scalars(select(Contract.code).where(Contract.calendar_id == cal.id)))
    if users:
        raise Conflict(
            f"calendar {name} is the calendar of {len(users)} contract"
            f"{'s' if len(users) != 1 else ''} ({_names(sorted(users))}): give them another "
            "calendar first"
        )
    before = export._calendar(cal)
    session.delete(cal)
    return before


def _delete_client(session: Session, name: str) -> dict[str, Any]:
    client = _one(session, Client, Client.name, name, "client")
    contracts = sorted(c.code for c in client.contracts)
    if contracts:
        raise Conflict(
            f"client {name} has {len(contracts)} contract{'s' if len(contracts) != 1 else ''} "
            f"({_names(contracts)}): end them with an end date (valid_to) instead; the client "
            "stays with their history"
        )
    n = _count(session, Ticket.client_id == client.id)
    if n:
        raise Conflict(f"client {name} has {_tickets(n)}: keep it, its tickets refer to it")
    people = list(session.scalars(select(User.email).where(User.client_id == client.id)))
    if people:
        raise Conflict(
            f"client {name} has {len(people)} contact{'s' if len(people) != 1 else ''} "
            f"({_names(sorted(people))}), and people are never deleted: deactivate them "
            "(active: false) and keep the client"
        )
    before = export._client(session, client)
    session.delete(client)
    return before


def _delete_contract(session: Session, code: str) -> dict[str, Any]:
    contract = _contract(session, code)
    n = _count(session, Ticket.contract_id == contract.id)
    if n:
        raise Conflict(
            f"contract {code} has {_tickets(n)}: end it with an end date (valid_to) instead; "
            "a contract past its validity receives no tickets and keeps its history"
        )
    boxes = sorted(
        session.scalars(select(Mailbox.address).where(Mailbox.contract_id == contract.id))
    )
    if boxes:
        raise Conflict(
            f"contract {code} receives mail at {_names(boxes)}: take the mailbox"
            f"{'es' if len(boxes) != 1 else ''} off it (or delete them) first, so mail to "
            "them does not silently land in triage"
        )
    before = export._contract(session, contract)
    for sub in session.scalars(select(Subcontractor)):
        if contract in sub.contracts:
            sub.contracts.remove(contract)
    session.delete(contract)
    return before


def _delete_mailbox(session: Session, address: str) -> dict[str, Any]:
    box = _one(session, Mailbox, Mailbox.address, address.strip().lower(), "mailbox")
    before = export._mailbox(box)
    before["contract"] = box.contract.code if box.contract else None
    session.execute(delete(ImapFolderState).where(ImapFolderState.mailbox == box.address))
    if box.contract is not None:
        box.contract.mailboxes.remove(box)
    session.delete(box)
    return before


def _delete_product(session: Session, name: str) -> dict[str, Any]:
    product = _one(session, Product, Product.name, name, "product")
    n = _count(session, Ticket.product_id == product.id)
    if n:
        raise Conflict(f"product {name} is named on {_tickets(n)}: keep it")
    codes = sorted(
        session.scalars(
            select(Contract.code)
            .join(contract_products, contract_products.c.contract_id == Contract.id)
            .where(contract_products.c.product_id == product.id)
        )
    )
    if codes:
        raise Conflict(
            f"product {name} is on contract{'s' if len(codes) != 1 else ''} {_names(codes)}: "
            "take it off them first (remove: {products: [...]})"
        )
    session.delete(product)
    return {"name": name}


def _delete_role(session: Session, name: str) -> dict[str, Any]:
    role = _one(session, Role, Role.name, name, "role")
    holders = sorted(session.scalars(select(User.email).where(User.custom_role_id == role.id)))
    if holders:
        raise Conflict(
            f"role {name} is held by {len(holders)} user{'s' if len(holders) != 1 else ''} "
            f"({_names(holders)}): give them another role first"
        )
    before = export._role(role)
    session.delete(role)
    return before


def _delete_subcontractor(session: Session, name: str) -> dict[str, Any]:
    sub = _one(session, Subcontractor, Subcontractor.name, name, "subcontractor")
    n = _count(session, Ticket.subcontractor_id == sub.id)
    if n:
        raise Conflict(
            f"subcontractor {name} has been handed {_tickets(n)}: take it off its contracts "
            "instead (remove: {contracts: [...]}); it keeps its history"
        )
    people = sorted(session.scalars(select(User.email).where(User.subcontractor_id == sub.id)))
    if people:
        raise Conflict(
            f"subcontractor {name} has {len(people)} user{'s' if len(people) != 1 else ''} "
            f"({_names(people)}), and people are never deleted: deactivate them "
            "(active: false) and take the company off its contracts"
        )
    before = {"name": sub.name, "contracts": sorted(c.code for c in sub.contracts)}
    session.delete(sub)
    return before


def _delete_user(session: Session, email: str) -> dict[str, Any]:
    raise Conflict(
        f"{email} is a person, and people are never deleted (their history names them): "
        "deactivate them instead (active: false)"
    )


def _delete_top_part(kind: str) -> Any:
    def run(session: Session, key: str) -> dict[str, Any]:
        return _delete_part(session, kind, key, None)

    return run


def _delete_part(
    session: Session, kind: str, name: str, contract: Contract | None
) -> dict[str, Any]:
    """A status, ticket type or custom field of ``contract`` (None: of the instance)."""
    where = f"contract {contract.code}'s" if contract is not None else "the"
    if kind == "ticket_type":
        if contract is None:
            raise InputError("a ticket type belongs to a contract: name it (contract=CODE)")
        tt = next((t for t in contract.ticket_types if t.name.casefold() == name.casefold()), None)
        if tt is None:
            raise NotFound(f"there is no ticket type {name!r} on contract {contract.code}")
        n = _count(session, Ticket.ticket_type_id == tt.id)
        if n:
            raise Conflict(
                f"ticket type {tt.name} of contract {contract.code} is the type of "
                f"{_tickets(n)}: keep it (take its keywords away so new mail does not pick it)"
            )
        before = export._ticket_type(tt)
        contract.ticket_types.remove(tt)
        session.delete(tt)
        return before
    if kind == "status":
        scope = Status.contract_id == contract.id if contract else Status.contract_id.is_(None)
        rows = list(session.scalars(select(Status).where(scope)))
        status = next((s for s in rows if s.name.casefold() == name.casefold()), None)
        if status is None:
            raise NotFound(f"there is no status {name!r} among {where} statuses")
        n = _count(session, Ticket.status_id == status.id)
        if n:
            raise Conflict(
                f"status {status.name} is the status of {_tickets(n)}: move them to another "
                "status first, or keep it"
            )
        others = {s.category for s in rows if s is not status}
        if status.category in ("new", "closed") and status.category not in others:
            raise Conflict(
                f"status {status.name} is the only one of category {status.category}, and "
                "every status list needs one: add another first"
            )
        before = export._status(status)
        if contract is not None:
            contract.statuses.remove(status)
        session.delete(status)
        return before
    scope = (
        CustomField.contract_id == contract.id if contract else CustomField.contract_id.is_(None)
    )
    field = session.scalar(select(CustomField).where(scope, CustomField.name == name))
    if field is None:
        raise NotFound(f"there is no custom field {name!r} among {where} custom fields")
    ticket_scope: list[Any] = [Ticket.custom_fields[name].as_string().is_not(None)]
    if contract is not None:
        ticket_scope.append(Ticket.contract_id == contract.id)
    n = _count(session, *ticket_scope)
    if n:
        raise Conflict(
            f"custom field {name} has a value on {_tickets(n)}: keep it (hide it from clients, "
            "or take it off the form with edit: [] if it should no longer be filled)"
        )
    dependents = sorted(
        f.name
        for f in session.scalars(select(CustomField).where(CustomField.id != field.id))
        if (f.depends_on or {}).get("field") == name
        and (contract is None or f.contract_id in (None, contract.id))
    )
    if dependents:
        raise Conflict(
            f"custom field {name} is followed by {_names(dependents)} (depends_on): take "
            "that dependency away first"
        )
    requiring = sorted(
        c.code
        for c in session.scalars(select(Contract))
        if name in (c.required_fields or {}) and (contract is None or c.id == contract.id)
    )
    if requiring:
        raise Conflict(
            f"custom field {name} is required on contract{'s' if len(requiring) != 1 else ''} "
            f"{_names(requiring)} (required_fields): take it out there first"
        )
    before = next(
        (item for item in export._fields(session, contract) if item["name"] == name),
        {"name": name},
    )
    session.delete(field)
    return before


_DELETERS = {
    "calendar": _delete_calendar,
    "client": _delete_client,
    "contract": _delete_contract,
    "custom_field": _delete_top_part("custom_field"),
    "mailbox": _delete_mailbox,
    "product": _delete_product,
    "role": _delete_role,
    "status": _delete_top_part("status"),
    "subcontractor": _delete_subcontractor,
    "ticket_type": _delete_top_part("ticket_type"),
    "user": _delete_user,
}
