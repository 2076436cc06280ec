"""Rules that need the whole file or the database: references, durations, calendars, uniqueness.

A name may refer to something declared in the same file or already in the database, so a
small file (just ``users:``) can be applied to a configured instance. Every problem is
collected with the line of the reference; nothing is written here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.accounts import normalize_email, normalize_role
from core.configuration.errors import Loc, Problem, sentence
from core.configuration.loader import Lines
from core.configuration.schema import (
    CalendarSpec,
    ConfigDocument,
    ContractSpec,
    CustomFieldSpec,
    StatusSpec,
)
from core.contracts.models import Contract, CustomField, Status
from core.directory.models import STAFF_ROLES, Client, Product, Subcontractor, User
from core.errors import InputError
from core.sla import clocks as sla_clock
from core.sla.calendar import BusinessCalendar, parse_duration
from core.sla.models import Calendar
from core.tickets.services import BUILTIN_STATUSES

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_DOMAIN = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")


@dataclass
class KnownContract:
    calendar: BusinessCalendar | None  # None when the calendar itself is broken (reported)
    client: str
    types: set[str] = field(default_factory=set)  # casefolded, as ticket services look them up
    statuses: set[str] = field(default_factory=set)  # casefolded


@dataclass
class Known:
    """What the file may refer to: the database's natural keys overlaid with the file's."""

    calendars: dict[str, BusinessCalendar | None] = field(default_factory=dict)
    clients: set[str] = field(default_factory=set)
    products: set[str] = field(default_factory=set)
    contracts: dict[str, KnownContract] = field(default_factory=dict)
    subcontractors: dict[str, set[str]] = field(default_factory=dict)  # name -> contract codes
    users: dict[str, str] = field(default_factory=dict)  # e-mail -> role
    user_subcontractor: dict[str, str | None] = field(default_factory=dict)
    default_statuses: set[str] = field(default_factory=set)  # casefolded
    custom_fields: dict[str | None, set[str]] = field(default_factory=dict)

    def statuses_for(self, code: str | None) -> set[str]:
        """The status names a ticket may take, as ``core.tickets.services.statuses_for`` will decide."""
        if code is not None and code in self.contracts and self.contracts[code].statuses:
            return self.contracts[code].statuses
        return self.default_statuses or {str(s["name"]).casefold() for s in BUILTIN_STATUSES}


class Checker:
    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append(self.lines.problem(loc, message))

    def unique(self, entries: Iterable[tuple[Loc, str]], what: str) -> None:
        first: dict[str, Loc] = {}
        for loc, key in entries:
            if key in first:
                line = self.lines.line_for(first[key])
                self.add(loc, f"{what} {key!r} is listed twice (first on line {line})")
            else:
                first[key] = loc

    def email(self, loc: Loc, value: str) -> str | None:
        try:
            email = normalize_email(value)
        except InputError as exc:
            self.add(loc, sentence(exc))
            return None
        if not _EMAIL.fullmatch(email):
            self.add(loc, f"{value!r} is not an e-mail address")
            return None
        return email

    def reference(self, loc: Loc, value: str, known: Iterable[str], what: str) -> bool:
        names = sorted(known)
        if value in names:
            return True
        listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "") if names else "none"
        self.add(loc, f"there is no {what} {value!r} in this file or the database; known: {listed}")
        return False


def load_known(session: Session) -> Known:
    """Read the natural keys already in the database (reads only: the session stays clean)."""
    known = Known()
    for cal in session.scalars(select(Calendar)):
        known.calendars[cal.name] = sla_clock.business_calendar(cal)
    known.clients = set(session.scalars(select(Client.name)))
    known.products = set(session.scalars(select(Product.name)))
    for contract in session.scalars(select(Contract)):
        known.contracts[contract.code] = KnownContract(
            calendar=sla_clock.business_calendar(contract.calendar),
            client=contract.client.name,
            types={t.name.casefold() for t in contract.ticket_types},
            statuses={s.name.casefold() for s in contract.statuses},
        )
    for sub in session.scalars(select(Subcontractor)):
        known.subcontractors[sub.name] = {c.code for c in sub.contracts}
    for user in session.scalars(select(User)):
        known.users[user.email] = user.role
        known.user_subcontractor[user.email] = (
            user.subcontractor.name if user.subcontractor else None
        )
    known.default_statuses = {
        name.casefold()
        for name in session.scalars(select(Status.name).where(Status.contract_id.is_(None)))
    }
    rows = session.execute(select(CustomField.name, Contract.code).outerjoin(Contract))
    for name, code in rows:
        known.custom_fields.setdefault(code, set()).add(name)
    return known


def check_document(doc: ConfigDocument, lines: Lines, known: Known) -> Checker:
    """Every rule that needs more than one key. ``known`` starts as what the database holds
    (``load_known``) and gains what the file declares, for the ticket checks that follow."""
    check = Checker(lines)
    _check_calendars(check, doc, known)
    _check_clients(check, doc, known)
    known.products |= {p.name for p in doc.products}
    check.unique(((("products", i, "name"), p.name) for i, p in enumerate(doc.products)), "product")
    _check_contracts(check, doc, known)
    _check_statuses(check, ("statuses",), doc.statuses, required=bool(doc.statuses))
    known.default_statuses |= {s.name.casefold() for s in doc.statuses}
    _check_custom_fields(check, ("custom_fields",), doc.custom_fields)
    known.custom_fields.setdefault(None, set()).update(f.name for f in doc.custom_fields)
    _check_mailboxes(check, doc, known)
    _check_subcontractors(check, doc, known)
    _check_users(check, doc, known)
    _check_contract_coordinators(check, doc, known)
    return check


def _check_contract_coordinators(check: Checker, doc: ConfigDocument, known: Known) -> None:
    for i, contract in enumerate(doc.contracts):
        for j, email in enumerate(contract.coordinators):
            loc: Loc = ("contracts", i, "coordinators", j)
            address = check.email(loc, email)
            if not address:
                continue
            role = known.users.get(address)
            if role is None:
                check.add(loc, f"no user {address!r}; add it under users: first")
            elif role not in ("coordinator", "admin"):
                check.add(loc, f"{address} is a {role}; only coordinators and admins can be named")


def calendar_config(spec: CalendarSpec) -> dict[str, Any]:
    """The definition core.sla.calendar reads, in the shape the calendars table stores."""
    config: dict[str, Any] = {"timezone": spec.timezone, "hours": spec.hours}
    if spec.holidays:
        config["holidays"] = spec.holidays.strip().upper()
    if spec.extra_holidays:
        config["extra_holidays"] = [d.isoformat() for d in spec.extra_holidays]
    if spec.day_length is not None:
        config["day_length"] = spec.day_length
    return config


def _check_calendars(check: Checker, doc: ConfigDocument, known: Known) -> None:
    check.unique(
        ((("calendars", i, "name"), c.name) for i, c in enumerate(doc.calendars)), "calendar"
    )
    for i, spec in enumerate(doc.calendars):
        loc: Loc = ("calendars", i)
        config = calendar_config(spec)
        # Build it key by key, so an error is reported on the line of the key that caused it.
        steps: list[tuple[str, dict[str, Any]]] = [
            ("timezone", {"timezone": spec.timezone, "hours": "24/7"})
        ]
        partial: dict[str, Any] = {"timezone": spec.timezone, "hours": spec.hours}
        steps.append(("hours", dict(partial)))
        for key in ("holidays", "extra_holidays", "day_length"):
            if key in config:
                partial[key] = config[key]
                steps.append((key, dict(partial)))
        built: BusinessCalendar | None = None
        for key, definition in steps:
            try:
                built = BusinessCalendar.from_config(definition)
            except (ValueError, TypeError) as exc:
                check.add(loc + (key,), sentence(exc))
                built = None
                break
        known.calendars[spec.name] = built


def _check_clients(check: Checker, doc: ConfigDocument, known: Known) -> None:
    check.unique(((("clients", i, "name"), c.name) for i, c in enumerate(doc.clients)), "client")
    domains: list[tuple[Loc, str]] = []
    for i, client in enumerate(doc.clients):
        known.clients.add(client.name)
        for j, domain in enumerate(client.domains):
            loc: Loc = ("clients", i, "domains", j)
            domain = domain.strip().lower()
            if not _DOMAIN.fullmatch(domain):
                check.add(loc, f"{domain!r} is not a mail domain (write it like acme.example)")
            domains.append((loc, domain))
        for j, contact in enumerate(client.contacts):
            loc = ("clients", i, "contacts", j)
            email = check.email(loc + ("email",), contact.email)
            if email is None:
                continue
            role = known.users.get(email)
            if role not in (None, "client"):
                check.add(loc + ("email",), f"{email} is a {role} user, not a client contact")
            known.users[email] = "client"
            _check_password(check, loc + ("password",), contact.password)
    check.unique(domains, "domain")


def _check_password(check: Checker, loc: Loc, password: str | None) -> None:
    # core.access.accounts.hash_password's rule, checked up front so it fails before any write.
    if password is not None and len(password) < 4:
        check.add(loc, "a password must have at least 4 characters")


def _check_contracts(check: Checker, doc: ConfigDocument, known: Known) -> None:
    check.unique(
        ((("contracts", i, "code"), c.code) for i, c in enumerate(doc.contracts)), "contract"
    )
    mailboxes: list[tuple[Loc, str]] = []
    for i, contract in enumerate(doc.contracts):
        loc: Loc = ("contracts", i)
        check.reference(loc + ("client",), contract.client, known.clients, "client")
        calendar: BusinessCalendar | None = sla_clock.business_calendar(None)
        if contract.calendar is not None:
            if check.reference(loc + ("calendar",), contract.calendar, known.calendars, "calendar"):
                calendar = known.calendars[contract.calendar]
            else:
                calendar = None
        for j, product in enumerate(contract.products):
            check.reference(loc + ("products", j), product, known.products, "product")
        if contract.valid_from and contract.valid_to and contract.valid_to < contract.valid_from:
            check.add(
                loc + ("valid_to",), "the contract ends before it starts (valid_to < valid_from)"
            )
        for j, address in enumerate(contract.mailboxes):
            email = check.email(loc + ("mailboxes", j), address)
            if email:
                mailboxes.append((loc + ("mailboxes", j), email))
        _check_ticket_types(check, loc, contract, calendar)
        _check_statuses(
            check, loc + ("statuses",), contract.statuses, required=bool(contract.statuses)
        )
        _check_custom_fields(check, loc + ("custom_fields",), contract.custom_fields)
        entry = known.contracts.get(contract.code)
        known.contracts[contract.code] = KnownContract(
            calendar=calendar,
            client=contract.client,
            types={t.name.casefold() for t in contract.ticket_types}
            | (entry.types if entry else set()),
            statuses={s.name.casefold() for s in contract.statuses}
            | (entry.statuses if entry else set()),
        )
        known.custom_fields.setdefault(contract.code, set()).update(
            f.name for f in contract.custom_fields
        )
    check.unique(mailboxes, "mailbox")  # one address routes to one contract


def _check_ticket_types(
    check: Checker, loc: Loc, contract: ContractSpec, calendar: BusinessCalendar | None
) -> None:
    types = contract.ticket_types
    check.unique(
        (((*loc, "ticket_types", j, "name"), t.name.casefold()) for j, t in enumerate(types)),
        "ticket type",
    )
    defaults = [j for j, t in enumerate(types) if t.default]
    for j in defaults[1:]:
        first = types[defaults[0]].name
        check.add(
            (*loc, "ticket_types", j, "default"),
            f"only one ticket type may be the default ({first!r} already is)",
        )
    for j, tt in enumerate(types):
        for key in ("reaction", "resolution"):
            value = getattr(tt, key)
            if value is None or calendar is None:
                continue
            try:
                parse_duration(value, calendar)
            except ValueError:
                check.add(
                    (*loc, "ticket_types", j, key),
                    f"{value!r} is not a duration (use 30m, 2h, 1d, 1w)",
                )


def _check_statuses(
    check: Checker, loc: Loc, statuses: list[StatusSpec], *, required: bool
) -> None:
    check.unique((((*loc, j, "name"), s.name.casefold()) for j, s in enumerate(statuses)), "status")
    if not required:
        return
    missing = [c for c in ("new", "closed") if not any(s.category == c for s in statuses)]
    if missing:
        check.add(
            loc,
            "the statuses need at least one of category new and one of category closed "
            f"(missing: {', '.join(missing)})",
        )


def _check_custom_fields(check: Checker, loc: Loc, fields: list[CustomFieldSpec]) -> None:
    check.unique((((*loc, j, "name"), f.name) for j, f in enumerate(fields)), "custom field")
    for j, cf in enumerate(fields):
        if cf.type == "select" and not cf.options:
            check.add((*loc, j, "options"), "a select field needs options to choose from")
        if cf.type != "select" and cf.options:
            check.add((*loc, j, "options"), f"options are for select fields, not {cf.type}")


def _check_mailboxes(check: Checker, doc: ConfigDocument, known: Known) -> None:
    listed = {a.strip().lower(): c.code for c in doc.contracts for a in c.mailboxes}
    addresses: list[tuple[Loc, str]] = []
    for i, box in enumerate(doc.mailboxes):
        loc: Loc = ("mailboxes", i)
        email = check.email(loc + ("address",), box.address)
        if email:
            addresses.append((loc + ("address",), email))
        if box.contract is not None:
            check.reference(loc + ("contract",), box.contract, known.contracts, "contract")
            other = listed.get(email or "")
            if other is not None and other != box.contract:
                check.add(
                    loc + ("contract",),
                    f"contract {other} lists this mailbox too; a mailbox belongs to one contract",
                )
    check.unique(addresses, "mailbox")


def _check_subcontractors(check: Checker, doc: ConfigDocument, known: Known) -> None:
    check.unique(
        ((("subcontractors", i, "name"), s.name) for i, s in enumerate(doc.subcontractors)),
        "subcontractor",
    )
    for i, sub in enumerate(doc.subcontractors):
        for j, code in enumerate(sub.contracts):
            check.reference(
                ("subcontractors", i, "contracts", j), code, known.contracts, "contract"
            )
        known.subcontractors[sub.name] = set(sub.contracts)


def _check_users(check: Checker, doc: ConfigDocument, known: Known) -> None:
    emails: list[tuple[Loc, str]] = [
        (("clients", i, "contacts", j, "email"), c.email.strip().lower())
        for i, client in enumerate(doc.clients)
        for j, c in enumerate(client.contacts)
    ]
    for i, user in enumerate(doc.users):
        loc: Loc = ("users", i)
        email = check.email(loc + ("email",), user.email)
        if email:
            emails.append((loc + ("email",), email))
        try:
            role = normalize_role(user.role)
        except InputError as exc:
            check.add(loc + ("role",), sentence(exc))
            role = None
        if user.client is not None:
            check.reference(loc + ("client",), user.client, known.clients, "client")
        if user.subcontractor is not None:
            check.reference(
                loc + ("subcontractor",), user.subcontractor, known.subcontractors, "subcontractor"
            )
        elif role == "subcontractor" and not known.user_subcontractor.get(email or ""):
            check.add(loc, "a subcontractor user needs 'subcontractor:' (the company's name)")
        _check_password(check, loc + ("password",), user.password)
        if email and role:
            known.users[email] = role
            if user.subcontractor is not None:
                known.user_subcontractor[email] = user.subcontractor
    check.unique(emails, "e-mail")


def is_staff(known: Known, email: str) -> bool:
    return known.users.get(email) in STAFF_ROLES
