"""Exporting the current configuration as YAML that ``apply`` accepts.

Applying the export to the same database changes nothing. Never exported: password hashes,
TOTP secrets, API tokens (there is no key for them, and an export is meant to be shared and
versioned), and tickets (they are data, not configuration). Values equal to their default
are left out to keep the file short: applied to the same database they change nothing (a key
left out keeps its value); applied to another instance, objects it creates get the same
defaults, while existing ones keep any non-default value the export does not state.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.contracts.models import Contract, CustomField, Status
from core.directory.models import Client, Product, Role, Subcontractor, User
from core.mail.models import Mailbox
from core.sla.calendar import format_duration
from core.sla.models import Calendar
from core.worklog.models import WorkType

HEADER = (
    "# Pulpit configuration, written by `pulpit config export`.\n"
    "# Apply it with `pulpit config apply FILE`. Passwords, secrets and tickets are not exported.\n"
)


def export_config(session: Session) -> str:
    """The current configuration as a YAML document."""
    doc: dict[str, Any] = {
        "calendars": [
            _calendar(c) for c in session.scalars(select(Calendar).order_by(Calendar.name))
        ],
        "clients": [
            _client(session, c) for c in session.scalars(select(Client).order_by(Client.name))
        ],
        "products": [
            {"name": p.name} for p in session.scalars(select(Product).order_by(Product.name))
        ],
        "contracts": [
            _contract(session, c) for c in session.scalars(select(Contract).order_by(Contract.code))
        ],
        "statuses": [
            _status(s)
            for s in session.scalars(
                select(Status)
                .where(Status.contract_id.is_(None))
                .order_by(Status.position, Status.id)
            )
        ],
        "custom_fields": _fields(session, None),
        "mailboxes": [
            _mailbox(m)
            for m in session.scalars(select(Mailbox).order_by(Mailbox.address))
            # A mailbox of a contract is listed under the contract; here only what adds to that.
            if m.contract_id is None or m.imap
        ],
        "subcontractors": [
            {"name": s.name, "contracts": sorted(c.code for c in s.contracts)}
            for s in session.scalars(select(Subcontractor).order_by(Subcontractor.name))
        ],
        "roles": [_role(r) for r in session.scalars(select(Role).order_by(Role.name))],
        "users": [
            _user(u)
            for u in session.scalars(select(User).order_by(User.email))
            if not _is_contact(u)
        ],
    }
    doc = {key: value for key, value in doc.items() if value}
    body = yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    return HEADER + (body if doc else "{}\n")


def _calendar(cal: Calendar) -> dict[str, Any]:
    out: dict[str, Any] = {"name": cal.name, "timezone": cal.timezone}
    if cal.holidays:
        out["holidays"] = cal.holidays
    if cal.extra_holidays:
        out["extra_holidays"] = [str(d) for d in cal.extra_holidays]
    out["hours"] = cal.hours
    if cal.day_length_minutes is not None:
        out["day_length"] = format_duration(timedelta(minutes=cal.day_length_minutes))
    return out


def _is_contact(user: User) -> bool:
    return user.role == "client" and user.client_id is not None and user.custom_role_id is None


def _client(session: Session, client: Client) -> dict[str, Any]:
    out: dict[str, Any] = {"name": client.name}
    if client.language != "pl":
        out["language"] = client.language
    if client.domains:
        out["domains"] = [d.domain for d in client.domains]
    contacts = session.scalars(
        select(User)
        .where(User.client_id == client.id, User.role == "client", User.custom_role_id.is_(None))
        .order_by(User.email)
    )
    out["contacts"] = [_person(u, {"email": u.email}) for u in contacts]
    if not out["contacts"]:
        del out["contacts"]
    return out


def _person(user: User, out: dict[str, Any]) -> dict[str, Any]:
    if user.name:
        out["name"] = user.name
    if user.language != "pl":
        out["language"] = user.language
    if user.manager:
        out["manager"] = True
    if not user.active:
        out["active"] = False
    return out


def _user(user: User) -> dict[str, Any]:
    role = user.custom_role.name if user.custom_role is not None else user.role
    out: dict[str, Any] = {"email": user.email, "role": role}
    if user.client is not None:
        out["client"] = user.client.name
    if user.subcontractor is not None:
        out["subcontractor"] = user.subcontractor.name
    return _person(user, out)


def _role(role: Role) -> dict[str, Any]:
    out: dict[str, Any] = {"name": role.name, "base": role.base}
    if role.grant:
        out["grant"] = list(role.grant)
    if role.deny:
        out["deny"] = list(role.deny)
    labels = dict(role.labels or {})
    if labels:
        texts = set(labels.values())
        out["label"] = texts.pop() if len(texts) == 1 and len(labels) > 1 else labels
    return out


def _contract(session: Session, contract: Contract) -> dict[str, Any]:
    out: dict[str, Any] = {"code": contract.code, "client": contract.client.name}
    optional = {
        "name": contract.name,
        "key": contract.key or None,
        "calendar": contract.calendar.name if contract.calendar else None,
        "valid_from": contract.valid_from,
        "valid_to": contract.valid_to,
        "warning_threshold": contract.warning_threshold
        if contract.warning_threshold != 0.8
        else None,
        "products": sorted(p.name for p in contract.products),
        "coordinators": sorted(u.email for u in contract.coordinators),
        "technicians": sorted(u.email for u in contract.technicians),
        "mailboxes": sorted(m.address for m in contract.mailboxes),
        "ticket_types": [_ticket_type(t) for t in contract.ticket_types],
        "statuses": [_status(s) for s in contract.statuses],
        "custom_fields": _fields(session, contract),
        "required_fields": dict(contract.required_fields or {}),
        "worklog_billable": False if not contract.worklog_billable else None,
        "hourly_rate": _money(contract.hourly_rate),
        "currency": contract.currency if contract.currency != "PLN" else None,
        "worklog_visible_to_client": True if contract.worklog_visible_to_client else None,
        "work_types": [
            _work_type(w)
            for w in session.scalars(
                select(WorkType)
                .where(WorkType.contract_id == contract.id)
                .order_by(WorkType.position, WorkType.id)
            )
        ],
    }
    out.update({key: value for key, value in optional.items() if value not in (None, [], {})})
    return out


def _money(minor: int | None) -> Decimal | None:
    """An amount stored in minor units as the decimal written in the file (15000 -> 150.00)."""
    return None if minor is None else Decimal(minor) / 100


def _work_type(wt: WorkType) -> dict[str, Any]:
    out: dict[str, Any] = {"name": wt.name}
    labels = dict(wt.labels or {})
    if labels:
        texts = set(labels.values())
        out["label"] = texts.pop() if len(texts) == 1 and len(labels) > 1 else labels
    if wt.rate is not None:
        out["rate"] = _money(wt.rate)
    if wt.billable is not None:
        out["billable"] = wt.billable
    return out


def _ticket_type(tt: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tt.name}
    if tt.default:
        out["default"] = True
    for key in ("reaction", "resolution"):
        if getattr(tt, key):
            out[key] = getattr(tt, key)
    if tt.subject_keywords:
        out["subject_keywords"] = list(tt.subject_keywords)
    if tt.checklist:
        checklist: dict[str, Any] = {"items": list(tt.checklist.get("items") or [])}
        if tt.checklist.get("required_to_close"):
            checklist["required_to_close"] = True
        out["checklist"] = checklist
    return out


def _status(status: Status) -> dict[str, Any]:
    out: dict[str, Any] = {"name": status.name, "category": status.category}
    if not status.visible_to_client:
        out["visible_to_client"] = False
    if not status.visible_to_subcontractor:
        out["visible_to_subcontractor"] = False
    if status.client_can_set:
        out["client_can_set"] = True
    if status.resume_on_client_reply is not None:  # None: the default rule, left unwritten
        out["resume_on_client_reply"] = status.resume_on_client_reply
    return out


def _fields(session: Session, contract: Contract | None) -> list[dict[str, Any]]:
    scope = (
        CustomField.contract_id == contract.id if contract else CustomField.contract_id.is_(None)
    )
    out = []
    rows = session.scalars(
        select(CustomField).where(scope).order_by(CustomField.position, CustomField.id)
    )
    for index, cf in enumerate(rows):
        item: dict[str, Any] = {"name": cf.name}
        if cf.labels:
            item["label"] = dict(cf.labels)
        elif cf.label:
            item["label"] = cf.label
        if cf.type != "text":
            item["type"] = cf.type
        if cf.options:
            item["options"] = list(cf.options)
        if cf.help:
            item["help"] = dict(cf.help) if isinstance(cf.help, dict) else cf.help
        if cf.position != index * 10:  # apply gives a new field its place in the list
            item["order"] = cf.position
        if cf.edit is not None:
            item["edit"] = list(cf.edit)
        if cf.min_value is not None:
            item["min"] = _number(cf.min_value)
        if cf.max_value is not None:
            item["max"] = _number(cf.max_value)
        if cf.depends_on:
            item["depends_on"] = dict(cf.depends_on)
        if cf.required:
            item["required"] = True
        if not cf.visible_to_client:
            item["visible_to_client"] = False
        if cf.visible_to_subcontractor is not None:
            item["visible_to_subcontractor"] = cf.visible_to_subcontractor
        out.append(item)
    return out


def _number(value: float) -> int | float:
    """1.0 as 1, the way people write it."""
    return int(value) if float(value).is_integer() else value


def _mailbox(box: Mailbox) -> dict[str, Any]:
    out: dict[str, Any] = {"address": box.address}
    if box.imap:
        out["imap"] = dict(box.imap)
    return out


class _Dumper(yaml.SafeDumper):
    """Short lists and small mappings of plain values on one line, the way people write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as the examples in docs/configuration.md do.
        return super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(_plain(item) for item in data) and len(str(data)) < 70
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flow = all(_plain(value) for value in data.values()) and len(str(data)) < 70
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_money(dumper: yaml.SafeDumper, data: Decimal) -> yaml.Node:
    # Written as people write money (150.00); YAML reads it back as the number 150.0.
    return dumper.represent_scalar("tag:yaml.org,2002:float", f"{data:.2f}")


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | Decimal)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(Decimal, _represent_money)
