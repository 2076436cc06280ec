"""Which configured objects a change touched, and what it did to each: one audit entry per
object, whichever door the change came through (``pulpit config apply`` or the console).

An object is snapshot in its exported form (``core.configuration.export``'s per-object
functions, so the history speaks the words of the YAML) before and after applying, and the
two are compared key by key: ``{"ticket_types.failure.reaction": ["2h", "4h"]}``. A list of
entries with a natural key (ticket types, statuses, contacts, custom fields) is compared entry
by entry, under that key; any other list (domains, products, grants) is compared whole.

Only what the document speaks of is snapshot (plus what it moves: the contracts a mailbox
leaves or joins, the client of a contact listed under ``users:``), so a small change to a
large instance reads a few rows, not the whole configuration.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import core.configuration.export as export
from core.access.accounts import normalize_email
from core.audit import AuditEntry
from core.configuration.schema import ConfigDocument
from core.contracts.models import Contract, Status
from core.directory.models import Client, Product, Role, Subcontractor, User
from core.mail.models import Mailbox
from core.sla.models import Calendar

#: The configured objects with a history, as ``AuditEntry.object_type`` names them.
OBJECT_TYPES = (
    "calendar",
    "client",
    "product",
    "contract",
    "status",
    "custom_field",
    "mailbox",
    "subcontractor",
    "role",
    "user",
)

Keys = dict[str, set[str]]
Snapshot = dict[tuple[str, str], dict[str, Any]]


def _email(value: str) -> str:
    try:
        return normalize_email(value)
    except Exception:  # checked before; a broken one is simply not snapshot
        return value.strip().lower()


def touched(session: Session, doc: ConfigDocument) -> Keys:
    """The natural keys, per object type, of what applying ``doc`` may change."""
    keys: Keys = {kind: set() for kind in OBJECT_TYPES}
    keys["calendar"] = {c.name for c in doc.calendars}
    keys["client"] = {c.name for c in doc.clients}
    keys["product"] = {p.name for p in doc.products}
    keys["contract"] = {c.code for c in doc.contracts}
    keys["status"] = {s.name for s in doc.statuses}
    keys["custom_field"] = {f.name for f in doc.custom_fields}
    keys["subcontractor"] = {s.name for s in doc.subcontractors}
    keys["role"] = {r.name.strip() for r in doc.roles}
    keys["user"] = {_email(u.email) for u in doc.users}
    keys["client"] |= {u.client for u in doc.users if u.client}
    addresses = {_email(m.address) for m in doc.mailboxes}
    for spec in doc.contracts:
        addresses |= {_email(a) for a in spec.mailboxes or []}
        addresses |= {_email(a) for a in (spec.remove.mailboxes if spec.remove else [])}
    keys["contract"] |= {m.contract for m in doc.mailboxes if m.contract}
    if keys["contract"]:
        # Every mailbox of a contract the document speaks of (mailboxes: null unlinks them all).
        addresses |= set(
            session.scalars(
                select(Mailbox.address)
                .join(Contract, Mailbox.contract_id == Contract.id)
                .where(Contract.code.in_(keys["contract"]))
            )
        )
    keys["mailbox"] = addresses
    if addresses:
        # A mailbox moving leaves one contract for another: both change.
        keys["contract"] |= set(
            session.scalars(
                select(Contract.code)
                .join(Mailbox, Mailbox.contract_id == Contract.id)
                .where(Mailbox.address.in_(addresses))
            )
        )
    if keys["user"]:
        # A contact listed under users: is part of its client's entry.
        keys["client"] |= set(
            session.scalars(
                select(Client.name)
                .join(User, User.client_id == Client.id)
                .where(User.email.in_(keys["user"]))
            )
        )
    return keys


def snapshot(session: Session, keys: Keys) -> Snapshot:
    """The exported form of every object named in ``keys`` that exists."""
    out: Snapshot = {}

    def rows(model: Any, column: Any, names: set[str]) -> list[Any]:
        if not names:
            return []
        return list(session.scalars(select(model).where(column.in_(names))))

    for cal in rows(Calendar, Calendar.name, keys["calendar"]):
        out[("calendar", cal.name)] = export._calendar(cal)
    for client in rows(Client, Client.name, keys["client"]):
        out[("client", client.name)] = export._client(session, client)
    for product in rows(Product, Product.name, keys["product"]):
        out[("product", product.name)] = {"name": product.name}
    for contract in rows(Contract, Contract.code, keys["contract"]):
        out[("contract", contract.code)] = export._contract(session, contract)
    if keys["status"]:
        statuses = session.scalars(
            select(Status).where(Status.contract_id.is_(None), Status.name.in_(keys["status"]))
        )
        for status in statuses:
            out[("status", status.name)] = export._status(status)
    if keys["custom_field"]:
        for item in export._fields(session, None):
            if item["name"] in keys["custom_field"]:
                out[("custom_field", item["name"])] = item
    for box in rows(Mailbox, Mailbox.address, keys["mailbox"]):
        out[("mailbox", box.address)] = {
            "address": box.address,
            "contract": box.contract.code if box.contract else None,
            **({"imap": dict(box.imap)} if box.imap else {}),
        }
    for sub in rows(Subcontractor, Subcontractor.name, keys["subcontractor"]):
        out[("subcontractor", sub.name)] = {
            "name": sub.name,
            "contracts": sorted(c.code for c in sub.contracts),
        }
    for role in rows(Role, Role.name, keys["role"]):
        out[("role", role.name)] = export._role(role)
    for user in rows(User, User.email, keys["user"]):
        out[("user", user.email)] = export._user(user)
    return {key: _plain(value) for key, value in out.items()}


def _plain(value: Any) -> Any:
    """JSON-ready: dates as ISO text, amounts as their decimal text, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):  # an amount (hourly_rate, a work type's rate), as written
        return f"{value:.2f}"
    return value


def _entry_key(item: Any) -> str | None:
    if isinstance(item, dict):
        for key in ("name", "email", "code", "address"):
            if isinstance(item.get(key), str):
                return str(item[key])
    return None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested object as ``{dotted.path: value}``; lists of named entries by their name."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and all(_entry_key(item) for item in value):
        names = [_entry_key(item) for item in value]
        if len(set(names)) == len(names):
            for name, item in zip(names, value, strict=True):
                out.update(flatten(item, f"{prefix}.{name}"))
            return out
    out[prefix] = value
    return out


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, list[Any]]:
    """``{path: [before, after]}`` for every path whose value differs (None: absent)."""
    old, new = flatten(before or {}), flatten(after or {})
    return {
        path: [old.get(path), new.get(path)]
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    }


def record(
    session: Session,
    before: Snapshot,
    after: Snapshot,
    *,
    actor: str | None,
    source: str,
    at: datetime,
) -> int:
    """One ``config.change`` entry per object that changed; returns how many."""
    written = 0
    for kind, key in sorted(before.keys() | after.keys()):
        old, new = before.get((kind, key)), after.get((kind, key))
        changes = diff(old, new)
        if not changes:
            continue
        session.add(
            AuditEntry(
                action="config.change",
                actor=actor,
                at=at,
                object_type=kind,
                object_key=key,
                data={"source": source, "created": old is None, "changes": changes},
            )
        )
        written += 1
    return written
