"""Deleting a configured object from the console: only what nothing refers to.

``pulpit config apply`` never deletes (``core.configuration.apply``); the console may, but
only an object nothing refers to: no ticket, no contract, no user, no other field. Otherwise
the answer is a ``Conflict`` (409) whose sentence says what refers to it and what to do
instead: a contract with tickets is ended with an end date (``valid_to``) and keeps its
history, a user is never deleted but deactivated (``active: false``), a role held by users is
first taken off them. Every deletion writes an audit entry (``config.delete``) with the
object's exported form before it went, so its history still says what it was.

Objects: ``calendar``, ``client``, ``contract``, ``custom_field``, ``mailbox``, ``product``,
``role``, ``status``, ``subcontractor``, ``ticket_type``, ``work_type`` and ``user`` (always
refused). A status, ticket type, work type or custom field of a contract is named with
``contract=CODE`` (or as ``CODE/name``); the entry of such a part goes to the contract's
history. A work type on a work log entry stays: the entry is priced and reported by it.
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
from core.errors import N_, Conflict, InputError, NotFound
from core.mail.models import ImapFolderState, Mailbox
from core.sla.models import Calendar
from core.tickets.models import Ticket
from core.worklog.models import WorkLogEntry, WorkType

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
    "work_type",
)
#: The parts of a contract (or, for statuses and custom fields, of the whole instance).
_PARTS = ("custom_field", "status", "ticket_type", "work_type")


def _count(session: Session, *where: Any) -> int:
    return int(session.scalar(select(func.count(Ticket.id)).where(*where)) or 0)


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
            N_("unknown kind of object %(kind)s; use one of: %(kinds)s"),
            kind=object_type,
            kinds=", ".join(OBJECT_TYPES),
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
        raise NotFound(N_("there is no contract %(name)s"), name=code)
    return found


def _one(session: Session, model: Any, column: Any, key: str, missing: str) -> Any:
    found = session.scalar(select(model).where(column == key))
    if found is None:
        raise NotFound(missing, name=key)
    return found


def _refuse(one: str, many: str, n: int, **params: Any) -> Conflict:
    """A refusal whose sentence counts ``n`` things (``one`` for a single one)."""
    return Conflict(one if n == 1 else many, n=n, **params)


def _delete_calendar(session: Session, name: str) -> dict[str, Any]:
    cal = _one(session, Calendar, Calendar.name, name, N_("there is no calendar %(name)s"))
    users = list(session.scalars(select(Contract.code).where(Contract.calendar_id == cal.id)))
    if users:
        raise _refuse(
            N_("calendar %(name)s is the calendar of contract %(list)s: give it another calendar "
               "first"),
            N_("calendar %(name)s is the calendar of %(n)s contracts (%(list)s): give them "
               "another calendar first"),
            len(users), name=name, list=_names(sorted(users)),
        )  # fmt: skip
    before = export._calendar(cal)
    session.delete(cal)
    return before


def _delete_client(session: Session, name: str) -> dict[str, Any]:
    client = _one(session, Client, Client.name, name, N_("there is no client %(name)s"))
    contracts = sorted(c.code for c in client.contracts)
    if contracts:
        raise _refuse(
            N_("client %(name)s has a contract (%(list)s): end it with an end date (valid_to) "
               "instead; the client stays with its history"),
            N_("client %(name)s has %(n)s contracts (%(list)s): end them with an end date "
               "(valid_to) instead; the client stays with its history"),
            len(contracts), name=name, list=_names(contracts),
        )  # fmt: skip
    n = _count(session, Ticket.client_id == client.id)
    if n:
        raise _refuse(
            N_("client %(name)s has a ticket: keep it, the ticket refers to it"),
            N_("client %(name)s has %(n)s tickets: keep it, its tickets refer to it"),
            n, name=name,
        )  # fmt: skip
    people = list(session.scalars(select(User.email).where(User.client_id == client.id)))
    if people:
        raise _refuse(
            N_("client %(name)s has a contact (%(list)s), and people are never deleted: "
               "deactivate them (active: false) and keep the client"),
            N_("client %(name)s has %(n)s contacts (%(list)s), and people are never deleted: "
               "deactivate them (active: false) and keep the client"),
            len(people), name=name, list=_names(sorted(people)),
        )  # fmt: skip
    before = export._client(session, client)
    session.delete(client)
    return before


def _delete_contract(session: Session, code: str) -> dict[str, Any]:
    contract = _contract(session, code)
    n = _count(session, Ticket.contract_id == contract.id)
    if n:
        raise _refuse(
            N_("contract %(name)s has a ticket: end it with an end date (valid_to) instead; a "
               "contract past its validity receives no tickets and keeps its history"),
            N_("contract %(name)s has %(n)s tickets: end it with an end date (valid_to) "
               "instead; a contract past its validity receives no tickets and keeps its "
               "history"),
            n, name=code,
        )  # fmt: skip
    boxes = sorted(
        session.scalars(select(Mailbox.address).where(Mailbox.contract_id == contract.id))
    )
    if boxes:
        raise Conflict(
            N_("contract %(name)s receives mail at %(list)s: take the mailboxes off it (or "
               "delete them) first, so their mail does not silently land in triage"),
            name=code, list=_names(boxes),
        )  # fmt: skip
    before = export._contract(session, contract)
    for sub in session.scalars(select(Subcontractor)):
        if contract in sub.contracts:
            sub.contracts.remove(contract)
    session.delete(contract)
    return before


def _delete_mailbox(session: Session, address: str) -> dict[str, Any]:
    box = _one(
        session, Mailbox, Mailbox.address, address.strip().lower(),
        N_("there is no mailbox %(name)s"),
    )  # fmt: skip
    before = export._mailbox(box)
    before["contract"] = box.contract.code if box.contract else None
    session.execute(delete(ImapFolderState).where(ImapFolderState.mailbox == box.address))
    if box.contract is not None:
        box.contract.mailboxes.remove(box)
    session.delete(box)
    return before


def _delete_product(session: Session, name: str) -> dict[str, Any]:
    product = _one(session, Product, Product.name, name, N_("there is no product %(name)s"))
    n = _count(session, Ticket.product_id == product.id)
    if n:
        raise _refuse(
            N_("product %(name)s is named on a ticket: keep it"),
            N_("product %(name)s is named on %(n)s tickets: keep it"),
            n, name=name,
        )  # fmt: skip
    codes = sorted(
        session.scalars(
            select(Contract.code)
            .join(contract_products, contract_products.c.contract_id == Contract.id)
            .where(contract_products.c.product_id == product.id)
        )
    )
    if codes:
        raise Conflict(
            N_("product %(name)s is on contract %(list)s: take it off first "
               "(remove: {products: [...]})"),
            name=name, list=_names(codes),
        )  # fmt: skip
    session.delete(product)
    return {"name": name}


def _delete_role(session: Session, name: str) -> dict[str, Any]:
    role = _one(session, Role, Role.name, name, N_("there is no role %(name)s"))
    holders = sorted(session.scalars(select(User.email).where(User.custom_role_id == role.id)))
    if holders:
        raise _refuse(
            N_("role %(name)s is held by 1 user (%(list)s): give them another role first"),
            N_("role %(name)s is held by %(n)s users (%(list)s): give them another role first"),
            len(holders), name=name, list=_names(holders),
        )  # fmt: skip
    before = export._role(role)
    session.delete(role)
    return before


def _delete_subcontractor(session: Session, name: str) -> dict[str, Any]:
    sub = _one(
        session, Subcontractor, Subcontractor.name, name,
        N_("there is no subcontractor %(name)s"),
    )  # fmt: skip
    n = _count(session, Ticket.subcontractor_id == sub.id)
    if n:
        raise _refuse(
            N_("subcontractor %(name)s has been handed a ticket: take it off its contracts "
               "instead (remove: {contracts: [...]}); it keeps its history"),
            N_("subcontractor %(name)s has been handed %(n)s tickets: take it off its "
               "contracts instead (remove: {contracts: [...]}); it keeps its history"),
            n, name=name,
        )  # fmt: skip
    people = sorted(session.scalars(select(User.email).where(User.subcontractor_id == sub.id)))
    if people:
        raise _refuse(
            N_("subcontractor %(name)s has 1 user (%(list)s), and people are never deleted: "
               "deactivate them (active: false) and take the company off its contracts"),
            N_("subcontractor %(name)s has %(n)s users (%(list)s), and people are never "
               "deleted: deactivate them (active: false) and take the company off its "
               "contracts"),
            len(people), name=name, list=_names(people),
        )  # fmt: skip
    before = {"name": sub.name, "contracts": sorted(c.code for c in sub.contracts)}
    session.delete(sub)
    return before


def _delete_user(session: Session, email: str) -> dict[str, Any]:
    raise Conflict(
        N_("%(name)s is a person, and people are never deleted (their history names them): "
           "deactivate them instead (active: false)"),
        name=email,
    )  # fmt: skip


def _delete_top_part(kind: str) -> Any:
    def run(session: Session, key: str) -> dict[str, Any]:
        return _delete_part(session, kind, key, None)

    return run


def _delete_part(
    session: Session, kind: str, name: str, contract: Contract | None
) -> dict[str, Any]:
    """A status, ticket type, work type or custom field of ``contract`` (None: of the
    instance)."""
    code = contract.code if contract is not None else ""
    if kind == "work_type":
        return _delete_work_type(session, name, contract)
    if kind == "ticket_type":
        if contract is None:
            raise InputError(N_("a ticket type belongs to a contract: name the contract"))
        tt = next((t for t in contract.ticket_types if t.name.casefold() == name.casefold()), None)
        if tt is None:
            raise NotFound(
                N_("there is no ticket type %(name)s on contract %(code)s"), name=name, code=code
            )
        n = _count(session, Ticket.ticket_type_id == tt.id)
        if n:
            raise _refuse(
                N_("ticket type %(name)s of contract %(code)s is the type of a ticket: keep it "
                   "(take its keywords away so new mail does not pick it)"),
                N_("ticket type %(name)s of contract %(code)s is the type of %(n)s tickets: "
                   "keep it (take its keywords away so new mail does not pick it)"),
                n, name=tt.name, code=code,
            )  # fmt: skip
        before = export._ticket_type(tt)
        contract.ticket_types.remove(tt)
        session.delete(tt)
        return before
    if kind == "status":
        scope = Status.contract_id == contract.id if contract else Status.contract_id.is_(None)
        rows = list(session.scalars(select(Status).where(scope)))
        status = next((s for s in rows if s.name.casefold() == name.casefold()), None)
        if status is None:
            raise NotFound(
                N_("there is no status %(name)s on contract %(code)s")
                if contract is not None
                else N_("there is no status %(name)s among the default statuses"),
                name=name,
                code=code,
            )
        n = _count(session, Ticket.status_id == status.id)
        if n:
            raise _refuse(
                N_("status %(name)s is the status of a ticket: move it to another status "
                   "first, or keep the status"),
                N_("status %(name)s is the status of %(n)s tickets: move them to another "
                   "status first, or keep it"),
                n, name=status.name,
            )  # fmt: skip
        others = {s.category for s in rows if s is not status}
        if status.category in ("new", "closed") and status.category not in others:
            raise Conflict(
                N_("status %(name)s is the only one of category %(category)s, and every "
                   "status list needs one: add another first"),
                name=status.name, category=status.category,
            )  # fmt: skip
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
        raise NotFound(
            N_("there is no custom field %(name)s on contract %(code)s")
            if contract is not None
            else N_("there is no custom field %(name)s among every ticket's fields"),
            name=name,
            code=code,
        )
    ticket_scope: list[Any] = [Ticket.custom_fields[name].as_string().is_not(None)]
    if contract is not None:
        ticket_scope.append(Ticket.contract_id == contract.id)
    n = _count(session, *ticket_scope)
    if n:
        raise _refuse(
            N_("custom field %(name)s has a value on a ticket: keep it (hide it from clients, "
               "or let nobody edit it with edit: [] if it should no longer be filled)"),
            N_("custom field %(name)s has a value on %(n)s tickets: keep it (hide it from "
               "clients, or let nobody edit it with edit: [] if it should no longer be "
               "filled)"),
            n, name=name,
        )  # fmt: skip
    dependents = sorted(
        f.name
        for f in session.scalars(select(CustomField).where(CustomField.id != field.id))
        if (f.depends_on or {}).get("field") == name
        and (contract is None or f.contract_id in (None, contract.id))
    )
    if dependents:
        raise Conflict(
            N_("custom field %(name)s is followed by %(list)s (depends_on): take that "
               "dependency away first"),
            name=name, list=_names(dependents),
        )  # fmt: skip
    requiring = sorted(
        c.code
        for c in session.scalars(select(Contract))
        if name in (c.required_fields or {}) and (contract is None or c.id == contract.id)
    )
    if requiring:
        raise Conflict(
            N_("custom field %(name)s is required on contract %(list)s (required_fields): "
               "take it out there first"),
            name=name, list=_names(requiring),
        )  # fmt: skip
    before = next(
        (item for item in export._fields(session, contract) if item["name"] == name),
        {"name": name},
    )
    session.delete(field)
    return before


def _delete_work_type(session: Session, name: str, contract: Contract | None) -> dict[str, Any]:
    if contract is None:
        raise InputError(N_("a work type belongs to a contract: name the contract"))
    rows = session.scalars(select(WorkType).where(WorkType.contract_id == contract.id))
    wt = next((w for w in rows if w.name.casefold() == name.casefold()), None)
    if wt is None:
        raise NotFound(
            N_("there is no work type %(name)s on contract %(code)s"), name=name, code=contract.code
        )
    n = int(
        session.scalar(
            select(func.count(WorkLogEntry.id)).where(WorkLogEntry.work_type_id == wt.id)
        )
        or 0
    )
    if n:
        raise _refuse(
            N_("work type %(name)s of contract %(code)s is on a work log entry: keep it, the "
               "entry is priced and reported by it"),
            N_("work type %(name)s of contract %(code)s is on %(n)s work log entries: keep it, "
               "the entries are priced and reported by it"),
            n, name=wt.name, code=contract.code,
        )  # fmt: skip
    before = export._work_type(wt)
    session.delete(wt)
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
    "work_type": _delete_top_part("work_type"),
}
