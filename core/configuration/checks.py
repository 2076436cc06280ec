"""Rules that need the whole file or the database: references, durations, calendars, uniqueness.

A name may refer to something declared in the same file or already in the database, so a
small file (just ``users:``) can be applied to a configured instance. Every problem is
collected with the line of the reference; nothing is written here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.accounts import normalize_email, normalize_role
from core.access.permissions import PUBLIC_ACTIONS, SCOPE_ACTIONS, STAFF_ONLY_ACTIONS
from core.configuration.errors import Loc, Problem
from core.configuration.loader import Lines
from core.configuration.schema import (
    CalendarSpec,
    ConfigDocument,
    ContractSpec,
    CustomFieldSpec,
    Removal,
    Section,
    StatusSpec,
)
from core.contracts.models import Contract, CustomField, Status
from core.directory.models import (
    ROLE_ALIASES,
    ROLES,
    STAFF_ROLES,
    Client,
    Product,
    Role,
    Subcontractor,
    User,
)
from core.errors import N_, InputError, Phrase
from core.mail.models import Mailbox
from core.sla import clocks as sla_clock
from core.sla.calendar import BusinessCalendar, parse_duration
from core.sla.models import Calendar
from core.tickets.services import BUILTIN_STATUSES

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_DOMAIN = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")


@dataclass
class KnownField:
    type: str
    options: list[str] = field(default_factory=list)
    depends_on: dict[str, Any] | None = None
    min_value: float | None = None
    max_value: float | None = None


@dataclass
class KnownContract:
    calendar: BusinessCalendar | None  # None when the calendar itself is broken (reported)
    client: str
    types: set[str] = field(default_factory=set)  # casefolded, as ticket services look them up
    statuses: set[str] = field(default_factory=set)  # casefolded
    # Stored values, so that an entry leaving a key out is checked against what it keeps.
    calendar_name: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    targets: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    status_categories: dict[str, str] = field(default_factory=dict)  # casefolded name
    required_fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Known:
    """What the file may refer to: the database's natural keys overlaid with the file's, and
    the stored values a partial entry keeps."""

    calendars: dict[str, BusinessCalendar | None] = field(default_factory=dict)
    calendar_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: set[str] = field(default_factory=set)
    products: set[str] = field(default_factory=set)
    contracts: dict[str, KnownContract] = field(default_factory=dict)
    subcontractors: dict[str, set[str]] = field(default_factory=dict)  # name -> contract codes
    users: dict[str, str] = field(default_factory=dict)  # e-mail -> role
    user_subcontractor: dict[str, str | None] = field(default_factory=dict)
    default_statuses: set[str] = field(default_factory=set)  # casefolded
    default_status_categories: dict[str, str] = field(default_factory=dict)  # casefolded
    custom_fields: dict[str | None, set[str]] = field(default_factory=dict)
    field_definitions: dict[tuple[str | None, str], KnownField] = field(default_factory=dict)
    mailbox_imap: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # custom role name -> base role
    role_grants: dict[str, list[str]] = field(default_factory=dict)  # stored grants

    def statuses_for(self, code: str | None) -> set[str]:
        """The status names a ticket may take, as ``core.tickets.services.statuses_for`` will decide."""
        if code is not None and code in self.contracts and self.contracts[code].statuses:
            return self.contracts[code].statuses
        return self.default_statuses or {str(s["name"]).casefold() for s in BUILTIN_STATUSES}


class Checker:
    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        self.problems: list[Problem] = []
        # Where each custom field the file lists is written, by (contract code or None, name).
        self.field_locs: dict[tuple[str | None, str], Loc] = {}

    def add(self, loc: Loc, message: str, /, **params: Any) -> None:
        """A problem at ``loc``: ``message`` is a template marked with ``N_`` (so the console
        can say it in the admin's language), filled with ``params``."""
        self.problems.append(self.lines.problem(loc, message, **params))

    def refused(self, loc: Loc, exc: BaseException) -> None:
        """The problem an exception reports at ``loc`` (its template kept, when it has one)."""
        self.problems.append(self.lines.refused(loc, exc))

    def unique(self, entries: Iterable[tuple[Loc, str]], what: str) -> None:
        """Each key once; ``what`` names the kind of thing, a word marked with ``N_``
        (``N_("client")``), translated with the sentence."""
        first: dict[str, Loc] = {}
        for loc, key in entries:
            if key in first:
                line = self.lines.line_for(first[key])
                self.add(
                    loc,
                    N_("%(what)s %(key)r is listed twice (first on line %(line)s)"),
                    what=Phrase(what),
                    key=key,
                    line=line,
                )
            else:
                first[key] = loc

    def email(self, loc: Loc, value: str) -> str | None:
        try:
            email = normalize_email(value)
        except InputError as exc:
            self.refused(loc, exc)
            return None
        if not _EMAIL.fullmatch(email):
            self.add(loc, N_("%(email)r is not an e-mail address"), email=value)
            return None
        return email

    def reference(self, loc: Loc, value: str, known: Iterable[str], what: str) -> bool:
        """``value`` names something known; ``what`` is a word marked with ``N_``."""
        names = sorted(known)
        if value in names:
            return True
        listed: str | Phrase = (
            ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            if names
            else Phrase(N_("none"))
        )
        self.add(
            loc,
            N_("there is no %(what)s %(value)r in this file or the database; known: %(listed)s"),
            what=Phrase(what),
            value=value,
            listed=listed,
        )
        return False


def load_known(session: Session) -> Known:
    """Read the natural keys already in the database (reads only: the session stays clean)."""
    known = Known()
    for cal in session.scalars(select(Calendar)):
        known.calendars[cal.name] = sla_clock.business_calendar(cal)
        known.calendar_definitions[cal.name] = sla_clock.calendar_definition(cal)
    known.clients = set(session.scalars(select(Client.name)))
    known.products = set(session.scalars(select(Product.name)))
    for contract in session.scalars(select(Contract)):
        known.contracts[contract.code] = KnownContract(
            calendar=sla_clock.business_calendar(contract.calendar),
            client=contract.client.name,
            types={t.name.casefold() for t in contract.ticket_types},
            statuses={s.name.casefold() for s in contract.statuses},
            calendar_name=contract.calendar.name if contract.calendar else None,
            valid_from=contract.valid_from,
            valid_to=contract.valid_to,
            targets={t.name.casefold(): (t.reaction, t.resolution) for t in contract.ticket_types},
            status_categories={s.name.casefold(): s.category for s in contract.statuses},
            required_fields=dict(contract.required_fields or {}),
        )
    for sub in session.scalars(select(Subcontractor)):
        known.subcontractors[sub.name] = {c.code for c in sub.contracts}
    for user in session.scalars(select(User)):
        known.users[user.email] = user.role
        known.user_subcontractor[user.email] = (
            user.subcontractor.name if user.subcontractor else None
        )
    for status in session.scalars(select(Status).where(Status.contract_id.is_(None))):
        known.default_statuses.add(status.name.casefold())
        known.default_status_categories[status.name.casefold()] = status.category
    rows = session.execute(select(CustomField, Contract.code).outerjoin(Contract))
    for cf, code in rows:
        known.custom_fields.setdefault(code, set()).add(cf.name)
        known.field_definitions[(code, cf.name)] = KnownField(
            cf.type,
            list(cf.options or []),
            dict(cf.depends_on) if cf.depends_on else None,
            cf.min_value,
            cf.max_value,
        )
    for box in session.scalars(select(Mailbox)):
        known.mailbox_imap[box.address] = dict(box.imap) if box.imap else None
    for role in session.scalars(select(Role)):
        known.roles[role.name] = role.base
        known.role_grants[role.name] = list(role.grant or [])
    return known


def check_document(doc: ConfigDocument, lines: Lines, known: Known) -> Checker:
    """Every rule that needs more than one key. ``known`` starts as what the database holds
    (``load_known``) and gains what the file declares, for the ticket checks that follow.

    An entry for an object that exists is checked as it will be after applying: the keys it
    leaves out keep their stored values, so a contract entry without ``calendar`` has its
    durations read on the stored calendar."""
    check = Checker(lines)
    _check_calendars(check, doc, known)
    _check_clients(check, doc, known)
    known.products |= {p.name for p in doc.products}
    check.unique(
        ((("products", i, "name"), p.name) for i, p in enumerate(doc.products)), N_("product")
    )
    # The fields for every ticket first: a contract's fields may depend on them and its
    # required_fields may name them.
    _check_custom_fields(check, ("custom_fields",), doc.custom_fields, known, None)
    _check_contracts(check, doc, known)
    merged = _check_statuses(check, ("statuses",), doc.statuses, known.default_status_categories)
    known.default_status_categories = merged
    known.default_statuses |= set(merged)
    _check_mailboxes(check, doc, known)
    _check_subcontractors(check, doc, known)
    _check_roles(check, doc, known)
    _check_users(check, doc, known)
    _check_contract_coordinators(check, doc, known)
    _check_stored_dependents(check, known)
    return check


# What ``required`` says, by the kind of object: whole sentences, as Polish declines the noun.
_NOT_NULL = {
    "calendar": N_("%(key)s cannot be null: every calendar has one"),
    "contract": N_("%(key)s cannot be null: every contract has one"),
    "status": N_("%(key)s cannot be null: every status has one"),
    "user": N_("%(key)s cannot be null: every user has one"),
    "role": N_("%(key)s cannot be null: every role has one"),
}
_MISSING = {
    "calendar": N_("the key %(key)r is missing (a new calendar needs it)"),
    "contract": N_("the key %(key)r is missing (a new contract needs it)"),
    "status": N_("the key %(key)r is missing (a new status needs it)"),
    "user": N_("the key %(key)r is missing (a new user needs it)"),
    "role": N_("the key %(key)r is missing (a new role needs it)"),
}


def required(check: Checker, loc: Loc, spec: Section, key: str, *, exists: bool, what: str) -> bool:
    """A key an object cannot do without: a new one needs it, and null never resets it.
    ``what`` is the kind of object: calendar, contract, status, user or role."""
    if spec.states(key) and getattr(spec, key) is None:
        check.add(loc + (key,), _NOT_NULL[what], key=key)
        return False
    if not exists and not spec.states(key):
        check.add(loc, _MISSING[what], key=key)
        return False
    return True


def _values(
    check: Checker,
    loc: Loc,
    spec: Section,
    key: str,
    removal: Removal | None,
    normalize: Callable[[str], str] = str,
) -> tuple[list[str], list[str]]:
    """The values an entry adds to one of its lists and those its ``remove:`` takes out; a
    value in both is a mistake."""
    added = [normalize(v) for v in (getattr(spec, key) or [])]
    removed = [normalize(v) for v in (getattr(removal, key) if removal is not None else [])]
    for j, value in enumerate(removed):
        if value in added:
            check.add(
                loc + ("remove", key, j),
                N_("%(value)r is both listed under %(key)s and removed"),
                value=value,
                key=key,
            )
    return added, removed


def merged_list(
    stored: Iterable[str],
    spec: Section,
    key: str,
    removal: Removal | None,
    normalize: Callable[[str], str] = str,
) -> list[str]:
    """A list after applying an entry: ``null`` empties it; otherwise the values listed are
    added after the stored ones, and those under ``remove:`` are taken out."""
    values = [] if spec.states(key) and getattr(spec, key) is None else list(stored)
    for value in getattr(spec, key) or []:
        if normalize(value) not in values:
            values.append(normalize(value))
    taken = {normalize(v) for v in (getattr(removal, key) if removal is not None else [])}
    return [v for v in values if v not in taken]


def _check_contract_coordinators(check: Checker, doc: ConfigDocument, known: Known) -> None:
    for i, contract in enumerate(doc.contracts):
        loc: Loc = ("contracts", i)
        for j, email in enumerate(contract.coordinators or []):
            address = check.email(loc + ("coordinators", j), email)
            if not address:
                continue
            role = known.users.get(address)
            if role is None:
                check.add(
                    loc + ("coordinators", j),
                    N_("no user %(address)r; add it under users: first"),
                    address=address,
                )
            elif role not in ("coordinator", "admin"):
                check.add(
                    loc + ("coordinators", j),
                    N_("%(address)s is a %(role)s; only coordinators and admins can be named"),
                    address=address,
                    role=role,
                )
        if contract.remove is not None:
            for j, email in enumerate(contract.remove.coordinators):
                check.email(loc + ("remove", "coordinators", j), email)
        _values(check, loc, contract, "coordinators", contract.remove, _lower)
        _check_contract_technicians(check, loc, contract, known)


def _check_contract_technicians(
    check: Checker, loc: Loc, contract: ContractSpec, known: Known
) -> None:
    """``technicians:`` names staff who can be assigned tickets (technicians, coordinators,
    admins): a client or subcontractor user cannot serve a contract's queue."""
    for j, email in enumerate(contract.technicians or []):
        address = check.email(loc + ("technicians", j), email)
        if not address:
            continue
        role = known.users.get(address)
        if role is None:
            check.add(
                loc + ("technicians", j),
                N_("no user %(address)r; add it under users: first"),
                address=address,
            )
        elif role not in ("technician", "coordinator", "admin"):
            check.add(
                loc + ("technicians", j),
                N_("%(address)s is a %(role)s; only staff can serve a contract"),
                address=address,
                role=role,
            )
    if contract.remove is not None:
        for j, email in enumerate(contract.remove.technicians):
            check.email(loc + ("remove", "technicians", j), email)
    _values(check, loc, contract, "technicians", contract.remove, _lower)


def _lower(value: str) -> str:
    return value.strip().lower()


def effective_calendar(spec: CalendarSpec, stored: dict[str, Any] | None) -> dict[str, Any]:
    """The definition a calendar has after applying ``spec`` over the stored one (``stored``
    None: a new calendar), in the shape ``BusinessCalendar.from_config`` reads and the
    calendars table stores (``day_length``: as written, or the stored minutes)."""
    definition: dict[str, Any] = dict(stored) if stored else {"timezone": "Europe/Warsaw"}
    if spec.states("timezone"):
        definition["timezone"] = spec.value("timezone")
    if spec.states("hours"):
        definition["hours"] = spec.hours
    if spec.states("holidays"):
        definition["holidays"] = spec.holidays.strip().upper() if spec.holidays else None
    if spec.states("extra_holidays"):
        definition["extra_holidays"] = [d.isoformat() for d in spec.value("extra_holidays")]
    if spec.states("day_length"):
        definition["day_length"] = spec.day_length
    return definition


def _check_calendars(check: Checker, doc: ConfigDocument, known: Known) -> None:
    check.unique(
        ((("calendars", i, "name"), c.name) for i, c in enumerate(doc.calendars)), N_("calendar")
    )
    for i, spec in enumerate(doc.calendars):
        loc: Loc = ("calendars", i)
        stored = known.calendar_definitions.get(spec.name)
        if not required(check, loc, spec, "hours", exists=stored is not None, what="calendar"):
            known.calendars[spec.name] = None
            continue
        config = effective_calendar(spec, stored)
        known.calendar_definitions[spec.name] = config
        # Build it key by key, so an error is reported on the line of the key that caused it.
        steps: list[tuple[str, dict[str, Any]]] = [
            ("timezone", {"timezone": config["timezone"], "hours": "24/7"})
        ]
        partial: dict[str, Any] = {"timezone": config["timezone"], "hours": config["hours"]}
        steps.append(("hours", dict(partial)))
        for key in ("holidays", "extra_holidays", "day_length"):
            if config.get(key):
                partial[key] = config[key]
                steps.append((key, dict(partial)))
        built: BusinessCalendar | None = None
        for key, definition in steps:
            try:
                built = BusinessCalendar.from_config(definition)
            except (ValueError, TypeError) as exc:
                check.refused(loc + (key,), exc)
                built = None
                break
        known.calendars[spec.name] = built


def _check_clients(check: Checker, doc: ConfigDocument, known: Known) -> None:
    check.unique(
        ((("clients", i, "name"), c.name) for i, c in enumerate(doc.clients)), N_("client")
    )
    domains: list[tuple[Loc, str]] = []
    for i, client in enumerate(doc.clients):
        known.clients.add(client.name)
        loc: Loc = ("clients", i)
        removed = client.remove.domains if client.remove is not None else []
        at: tuple[Loc, Loc] = (("domains",), ("remove", "domains"))
        for where, values in zip(at, (client.domains or [], removed), strict=True):
            for j, value in enumerate(values):
                domain = _lower(value)
                if not _DOMAIN.fullmatch(domain):
                    check.add(
                        loc + where + (j,),
                        N_("%(domain)r is not a mail domain (write it like acme.example)"),
                        domain=domain,
                    )
                if where == ("domains",):
                    domains.append((loc + where + (j,), domain))
        _values(check, loc, client, "domains", client.remove, _lower)
        for j, contact in enumerate(client.contacts):
            cloc: Loc = loc + ("contacts", j)
            email = check.email(cloc + ("email",), contact.email)
            if email is None:
                continue
            role = known.users.get(email)
            if role not in (None, "client"):
                check.add(
                    cloc + ("email",),
                    N_("%(email)s is a %(role)s user, not a client contact"),
                    email=email,
                    role=role,
                )
            known.users[email] = "client"
            _check_password(check, cloc + ("password",), contact.password)
    check.unique(domains, N_("domain"))


def _check_password(check: Checker, loc: Loc, password: str | None) -> None:
    # core.access.accounts.hash_password's rule, checked up front so it fails before any write.
    if password is not None and len(password) < 4:
        check.add(loc, N_("a password must have at least 4 characters"))


def _check_contracts(check: Checker, doc: ConfigDocument, known: Known) -> None:
    check.unique(
        ((("contracts", i, "code"), c.code) for i, c in enumerate(doc.contracts)), N_("contract")
    )
    mailboxes: list[tuple[Loc, str]] = []
    for i, contract in enumerate(doc.contracts):
        loc: Loc = ("contracts", i)
        stored = known.contracts.get(contract.code)
        if contract.client is not None:
            check.reference(loc + ("client",), contract.client, known.clients, N_("client"))
        required(check, loc, contract, "client", exists=stored is not None, what="contract")
        client = contract.client or (stored.client if stored else "")
        calendar_name = stored.calendar_name if stored else None
        if contract.states("calendar"):
            calendar_name = contract.calendar
        calendar: BusinessCalendar | None = sla_clock.business_calendar(None)
        if calendar_name is not None:
            if contract.calendar is None or check.reference(
                loc + ("calendar",), calendar_name, known.calendars, N_("calendar")
            ):
                calendar = known.calendars.get(calendar_name)
            else:
                calendar = None
        for j, product in enumerate(contract.products or []):
            check.reference(loc + ("products", j), product, known.products, N_("product"))
        _values(check, loc, contract, "products", contract.remove)
        valid_from = contract.valid_from if contract.states("valid_from") else None
        valid_to = contract.valid_to if contract.states("valid_to") else None
        if stored is not None:
            valid_from = valid_from if contract.states("valid_from") else stored.valid_from
            valid_to = valid_to if contract.states("valid_to") else stored.valid_to
        if valid_from and valid_to and valid_to < valid_from:
            check.add(
                loc + ("valid_to",),
                N_("the contract ends before it starts (valid_to < valid_from)"),
            )
        for j, address in enumerate(contract.mailboxes or []):
            email = check.email(loc + ("mailboxes", j), address)
            if email:
                mailboxes.append((loc + ("mailboxes", j), email))
        if contract.remove is not None:
            for j, address in enumerate(contract.remove.mailboxes):
                check.email(loc + ("remove", "mailboxes", j), address)
        _values(check, loc, contract, "mailboxes", contract.remove, _lower)
        targets = _check_ticket_types(check, loc, contract, calendar, stored)
        _check_work_types(check, loc, contract)
        categories = _check_statuses(
            check,
            loc + ("statuses",),
            contract.statuses,
            stored.status_categories if stored else {},
        )
        _check_custom_fields(
            check, loc + ("custom_fields",), contract.custom_fields, known, contract.code
        )
        required_fields = _check_required_fields(
            check, loc, contract, known, stored.required_fields if stored else {}
        )
        known.contracts[contract.code] = KnownContract(
            calendar=calendar,
            client=client,
            types=set(targets),
            statuses=set(categories),
            calendar_name=calendar_name,
            valid_from=valid_from,
            valid_to=valid_to,
            targets=targets,
            status_categories=categories,
            required_fields=required_fields,
        )
    check.unique(mailboxes, N_("mailbox"))  # one address routes to one contract


def _check_ticket_types(
    check: Checker,
    loc: Loc,
    contract: ContractSpec,
    calendar: BusinessCalendar | None,
    stored: KnownContract | None,
) -> dict[str, tuple[str | None, str | None]]:
    """Checks the contract's ticket types as they will be; returns their targets by name."""
    types = contract.ticket_types
    check.unique(
        (((*loc, "ticket_types", j, "name"), t.name.casefold()) for j, t in enumerate(types)),
        N_("ticket type"),
    )
    defaults = [j for j, t in enumerate(types) if t.value("default")]
    for j in defaults[1:]:
        first = types[defaults[0]].name
        check.add(
            (*loc, "ticket_types", j, "default"),
            N_("only one ticket type may be the default (%(first)r already is)"),
            first=first,
        )
    targets = dict(stored.targets) if stored else {}
    for j, tt in enumerate(types):
        if tt.checklist is not None:
            _check_checklist(check, (*loc, "ticket_types", j, "checklist"), tt.checklist.items)
        reaction, resolution = targets.get(tt.name.casefold(), (None, None))
        if tt.states("reaction"):
            reaction = tt.reaction
        if tt.states("resolution"):
            resolution = tt.resolution
        targets[tt.name.casefold()] = (reaction, resolution)
        for key, value in (("reaction", reaction), ("resolution", resolution)):
            if value is None or calendar is None:
                continue
            try:
                parse_duration(value, calendar)
            except ValueError:
                check.add(
                    (*loc, "ticket_types", j, key),
                    N_("%(value)r is not a duration (use 30m, 2h, 1d, 1w)"),
                    value=value,
                )
    return targets


_WORK_TYPE_NAME_LENGTH = 100  # work_types.name


def _check_work_types(check: Checker, loc: Loc, contract: ContractSpec) -> None:
    """A work type's name is its key within the contract, matched as ticket types are
    (case-insensitively); rates and labels are checked by their shape (``schema``)."""
    types = contract.work_types
    check.unique(
        (((*loc, "work_types", j, "name"), t.name.strip().casefold()) for j, t in enumerate(types)),
        N_("work type"),
    )
    for j, wt in enumerate(types):
        if not wt.name.strip():
            check.add((*loc, "work_types", j, "name"), N_("a work type needs a name"))
        elif len(wt.name.strip()) > _WORK_TYPE_NAME_LENGTH:
            check.add(
                (*loc, "work_types", j, "name"),
                N_("a work type's name has at most %(length)s characters"),
                length=_WORK_TYPE_NAME_LENGTH,
            )


def _check_statuses(
    check: Checker, loc: Loc, statuses: list[StatusSpec], stored: dict[str, str]
) -> dict[str, str]:
    """Checks a status list as it will be after merging into the stored one; returns the
    categories by casefolded name."""
    check.unique(
        (((*loc, j, "name"), s.name.casefold()) for j, s in enumerate(statuses)), N_("status")
    )
    categories = dict(stored)
    for j, status in enumerate(statuses):
        key = status.name.casefold()
        exists = key in stored
        if required(check, loc + (j,), status, "category", exists=exists, what="status"):
            categories[key] = status.category or stored[key]
        if status.resume_on_client_reply and categories.get(key) != "paused":
            check.add(
                loc + (j, "resume_on_client_reply"),
                N_("only a paused status can resume on a client's reply"),
            )
    if statuses:
        missing = [c for c in ("new", "closed") if c not in categories.values()]
        if missing:
            check.add(
                loc,
                N_(
                    "the statuses need at least one of category new and one of category closed "
                    "(missing: %(missing)s)"
                ),
                missing=", ".join(missing),
            )
    return categories


def merged_required_fields(stored: dict[str, str], spec: ContractSpec) -> dict[str, str]:
    """A contract's required_fields after applying ``spec``: ``null`` empties them; a name
    stated takes its value (``null``: taken out), one under ``remove:`` is taken out, the
    rest stay."""
    merged = {} if spec.states("required_fields") and spec.required_fields is None else dict(stored)
    for name, moment in (spec.required_fields or {}).items():
        if moment is None:
            merged.pop(name, None)
        else:
            merged[name] = moment
    for name in spec.remove.required_fields if spec.remove is not None else []:
        merged.pop(name, None)
    return merged


def _check_required_fields(
    check: Checker, loc: Loc, contract: ContractSpec, known: Known, stored: dict[str, str]
) -> dict[str, str]:
    """Checks the names under required_fields; returns them as they will be."""
    fields = known.custom_fields.get(None, set()) | known.custom_fields.get(contract.code, set())
    for name, moment in (contract.required_fields or {}).items():
        if moment is not None and name not in fields:
            check.reference(loc + ("required_fields", name), name, fields, N_("custom field"))
    removed = contract.remove.required_fields if contract.remove is not None else []
    for j, name in enumerate(removed):
        if (contract.required_fields or {}).get(name) is not None:
            check.add(
                loc + ("remove", "required_fields", j),
                N_("%(name)r is both listed under required_fields and removed"),
                name=name,
            )
    return merged_required_fields(stored, contract)


_CHECKLIST_ITEM_LENGTH = 500  # ticket_checklist_items.text


def _check_checklist(check: Checker, loc: Loc, items: list[str]) -> None:
    if not items:
        check.add(
            loc + ("items",),
            N_("a checklist needs at least one item (checklist: null removes the checklist)"),
        )
    for k, text in enumerate(items):
        if not text.strip():
            check.add(loc + ("items", k), N_("a checklist item needs a text"))
        elif len(text) > _CHECKLIST_ITEM_LENGTH:
            check.add(
                loc + ("items", k),
                N_("a checklist item has at most %(length)s characters"),
                length=_CHECKLIST_ITEM_LENGTH,
            )


_CHOICES = ("select", "multiselect")


def _check_custom_fields(
    check: Checker, loc: Loc, fields: list[CustomFieldSpec], known: Known, code: str | None
) -> None:
    check.unique((((*loc, j, "name"), f.name) for j, f in enumerate(fields)), N_("custom field"))
    for j, cf in enumerate(fields):
        stored = known.field_definitions.get((code, cf.name))
        kind = cf.value("type") if cf.states("type") else (stored.type if stored else "text")
        _values(check, loc + (j,), cf, "options", cf.remove)
        options = merged_list(stored.options if stored else [], cf, "options", cf.remove)
        if kind in _CHOICES and not options:
            check.add(
                (*loc, j, "options"), N_("a %(kind)s field needs options to choose from"), kind=kind
            )
        if kind not in _CHOICES and options:
            message = (
                N_("options are for select fields, not %(kind)s")
                if cf.options
                else N_(
                    "options are for select fields, not %(kind)s "
                    "(options: null drops the stored ones)"
                )
            )
            check.add((*loc, j, "options"), message, kind=kind)
        bounds: dict[str, float | None] = {}
        for key, attr in (("min", "min_value"), ("max", "max_value")):
            value = getattr(cf, key) if cf.states(key) else getattr(stored, attr, None)
            bounds[key] = value
            if value is not None and kind != "number":
                message = (
                    N_("%(key)s is for number fields, not %(kind)s")
                    if cf.states(key)
                    else N_(
                        "%(key)s is for number fields, not %(kind)s "
                        "(%(key)s: null drops the stored one)"
                    )
                )
                check.add((*loc, j, key), message, key=key, kind=kind)
        low, high = bounds["min"], bounds["max"]
        if low is not None and high is not None and low > high:
            where = "max" if cf.states("max") else "min"
            check.add(
                (*loc, j, where),
                N_("min (%(low)g) is greater than max (%(high)g)"),
                low=low,
                high=high,
            )
        for k, role in enumerate(cf.edit or []):
            try:
                normalize_role(role)
            except InputError as exc:
                check.refused((*loc, j, "edit", k), exc)
        depends_on = cf.depends_on.stored() if cf.depends_on is not None else None
        if not cf.states("depends_on") and stored is not None:
            depends_on = stored.depends_on
        known.field_definitions[(code, cf.name)] = KnownField(kind, options, depends_on, low, high)
        known.custom_fields.setdefault(code, set()).add(cf.name)
    # Dependencies once every field of the list is known: a field may follow one listed later.
    for j, cf in enumerate(fields):
        check.field_locs[(code, cf.name)] = (*loc, j)
        for at, message, params in _dependency_problems(known, code, cf.name):
            check.add((*loc, j, "depends_on", *at), message, **params)


def _check_stored_dependents(check: Checker, known: Known) -> None:
    """A stored field the file leaves out, following one the file changes, is checked
    against the change: the problem is reported on the parent's entry."""
    for (scope, name), definition in known.field_definitions.items():
        if (scope, name) in check.field_locs or not definition.depends_on:
            continue
        found = _parent(known, scope, str(definition.depends_on.get("field")))
        if found is None or (found[0], definition.depends_on.get("field")) not in check.field_locs:
            continue
        parent_loc = check.field_locs[(found[0], str(definition.depends_on.get("field")))]
        owner = (
            Phrase(N_("contract %(code)s's field"), {"code": scope})
            if scope
            else Phrase(N_("the field"))
        )
        for _, message, params in _dependency_problems(known, scope, name):
            check.add(
                parent_loc,
                N_("%(owner)s %(name)r depends on this one: %(problem)s"),
                owner=owner,
                name=name,
                problem=Phrase(message, params),
            )


def _parent(known: Known, scope: str | None, name: str) -> tuple[str | None, KnownField] | None:
    """The field ``name`` as a field of ``scope`` sees it: its contract's own, else global."""
    for where in (scope, None) if scope is not None else (None,):
        found = known.field_definitions.get((where, name))
        if found is not None:
            return where, found
    return None


# A problem with a field's depends_on: the key path under depends_on, a template (``N_``) and
# its values.
_DependencyProblem = tuple[Loc, str, dict[str, Any]]


def _dependency_problems(known: Known, scope: str | None, name: str) -> list[_DependencyProblem]:
    """What is wrong with the depends_on of field ``name`` of ``scope`` (None: global), as
    (key path under depends_on, template, values)."""
    child = known.field_definitions[(scope, name)]
    if not child.depends_on:
        return []
    rule = child.depends_on
    parent_name = str(rule.get("field"))
    if parent_name == name:
        return [(("field",), N_("a field cannot depend on itself"), {})]
    found = _parent(known, scope, parent_name)
    if found is None:
        names = known.custom_fields.get(None, set())
        if scope is not None:
            names = names | known.custom_fields.get(scope, set())
        names = names - {name}
        listed: str | Phrase = ", ".join(sorted(names)) or Phrase(N_("none"))
        if scope is None:
            message = N_(
                "there is no field %(parent)r among every ticket's fields; known: %(listed)s"
            )
        else:
            message = N_(
                "there is no field %(parent)r among contract %(code)s's or every ticket's "
                "fields; known: %(listed)s"
            )
        return [(("field",), message, {"parent": parent_name, "code": scope, "listed": listed})]
    problems: list[_DependencyProblem] = []
    path = [name, parent_name]
    at: tuple[str | None, str] = (found[0], parent_name)
    while True:
        rule_at = known.field_definitions[at].depends_on
        if not rule_at:
            break
        following = _parent(known, at[0], str(rule_at.get("field")))
        if following is None:
            break
        path.append(str(rule_at.get("field")))
        if (following[0], path[-1]) == (scope, name):
            problems.append(
                (
                    ("field",),
                    N_("the dependencies make a cycle: %(path)s"),
                    {"path": " -> ".join(path)},
                )
            )
            break
        if len(path) > len(known.field_definitions) + 1:
            break  # a cycle that does not pass through this field: reported on its own fields
        at = (following[0], path[-1])
    parent = found[1]
    if "options" in rule:
        if parent.type not in (*_CHOICES, "bool"):
            problems.append(
                (
                    ("options",),
                    N_(
                        "options per value need a select or bool parent; %(parent)r is a "
                        "%(type)s field (use when: to show or hide this one)"
                    ),
                    {"parent": parent_name, "type": parent.type},
                )
            )
            return problems
        # A bool parent's values, as YAML keys (strings) and core.tickets.fields read them.
        values = parent.options if parent.type in _CHOICES else ["true", "false"]
        if child.type not in _CHOICES:
            problems.append(
                (
                    ("options",),
                    N_("options per value are for select fields, not %(type)s"),
                    {"type": child.type},
                )
            )
        for value, allowed in (rule.get("options") or {}).items():
            if value not in values:
                message = (
                    N_("%(value)r is not an option of %(parent)r (%(listed)s)")
                    if parent.type in _CHOICES
                    else N_("%(value)r is not a value of %(parent)r (%(listed)s)")
                )
                problems.append(
                    (
                        ("options", value),
                        message,
                        {"value": value, "parent": parent_name, "listed": ", ".join(values)},
                    )
                )
            if child.type not in _CHOICES:
                continue
            for k, option in enumerate(allowed or []):
                if option not in child.options:
                    problems.append(
                        (
                            ("options", value, k),
                            N_("%(option)r is not an option of this field (%(listed)s)"),
                            {"option": option, "listed": ", ".join(child.options)},
                        )
                    )
    else:
        for k, value in enumerate(rule.get("when") or []):
            if parent.type in _CHOICES:
                if value not in parent.options:
                    problems.append(
                        (
                            ("when", k),
                            N_("%(value)r is not an option of %(parent)r (%(listed)s)"),
                            {
                                "value": value,
                                "parent": parent_name,
                                "listed": ", ".join(parent.options),
                            },
                        )
                    )
            elif parent.type == "bool":
                if not isinstance(value, bool):
                    problems.append(
                        (
                            ("when", k),
                            N_("%(parent)r is a yes/no field: write true or false, not %(value)r"),
                            {"parent": parent_name, "value": value},
                        )
                    )
            else:
                problems.append(
                    (
                        ("when", k),
                        N_("when needs a select or bool parent; %(parent)r is a %(type)s field"),
                        {"parent": parent_name, "type": parent.type},
                    )
                )
                break
    return problems


def _check_mailboxes(check: Checker, doc: ConfigDocument, known: Known) -> None:
    listed = {_lower(a): c.code for c in doc.contracts for a in c.mailboxes or []}
    addresses: list[tuple[Loc, str]] = []
    for i, box in enumerate(doc.mailboxes):
        loc: Loc = ("mailboxes", i)
        email = check.email(loc + ("address",), box.address)
        if email:
            addresses.append((loc + ("address",), email))
        if box.contract is not None:
            check.reference(loc + ("contract",), box.contract, known.contracts, N_("contract"))
        other = listed.get(email or "")
        if box.states("contract") and other is not None and other != box.contract:
            check.add(
                loc + ("contract",),
                N_("contract %(other)s lists this mailbox too; a mailbox belongs to one contract"),
                other=other,
            )
        if box.imap is not None:
            stored = known.mailbox_imap.get(email or "") or {}
            for key in ("host", "user"):
                if getattr(box.imap, key) is None and (box.imap.states(key) or key not in stored):
                    check.add(loc + ("imap",), N_("the key %(key)r is missing"), key=key)
    check.unique(addresses, N_("mailbox"))


def _check_subcontractors(check: Checker, doc: ConfigDocument, known: Known) -> None:
    check.unique(
        ((("subcontractors", i, "name"), s.name) for i, s in enumerate(doc.subcontractors)),
        N_("subcontractor"),
    )
    for i, sub in enumerate(doc.subcontractors):
        loc: Loc = ("subcontractors", i)
        for j, code in enumerate(sub.contracts or []):
            check.reference(loc + ("contracts", j), code, known.contracts, N_("contract"))
        _values(check, loc, sub, "contracts", sub.remove)
        stored = known.subcontractors.get(sub.name, set())
        known.subcontractors[sub.name] = set(
            merged_list(sorted(stored), sub, "contracts", sub.remove)
        )


def _check_users(check: Checker, doc: ConfigDocument, known: Known) -> None:
    emails: list[tuple[Loc, str]] = [
        (("clients", i, "contacts", j, "email"), _lower(c.email))
        for i, client in enumerate(doc.clients)
        for j, c in enumerate(client.contacts)
    ]
    for i, user in enumerate(doc.users):
        loc: Loc = ("users", i)
        email = check.email(loc + ("email",), user.email)
        if email:
            emails.append((loc + ("email",), email))
        role: str | None = known.users.get(email or "")
        if user.role is not None:
            role = user_role(check, loc + ("role",), user.role, known)
        elif not required(check, loc, user, "role", exists=role is not None, what="user"):
            role = None
        if user.client is not None:
            check.reference(loc + ("client",), user.client, known.clients, N_("client"))
        if user.subcontractor is not None:
            check.reference(
                loc + ("subcontractor",),
                user.subcontractor,
                known.subcontractors,
                N_("subcontractor"),
            )
        company = (
            user.subcontractor
            if user.states("subcontractor")
            else known.user_subcontractor.get(email or "")
        )
        if role == "subcontractor" and not company:
            check.add(loc, N_("a subcontractor user needs 'subcontractor:' (the company's name)"))
        _check_password(check, loc + ("password",), user.password)
        if email and role:
            known.users[email] = role
            known.user_subcontractor[email] = company
    check.unique(emails, N_("e-mail"))


def is_staff(known: Known, email: str) -> bool:
    return known.users.get(email) in STAFF_ROLES


def user_role(check: Checker, loc: Loc, value: str, known: Known) -> str | None:
    """The base role a user's ``role:`` stands for: a built-in role, or a custom role's base."""
    if value.strip() in known.roles:
        return known.roles[value.strip()]
    try:
        return normalize_role(value)
    except InputError:
        if known.roles:
            check.add(
                loc,
                N_("unknown role %(value)r; use one of: %(listed)s, or a custom role: %(custom)s"),
                value=value,
                listed=", ".join(ROLES),
                custom=", ".join(sorted(known.roles)),
            )
        else:
            check.add(
                loc,
                N_("unknown role %(value)r; use one of: %(listed)s"),
                value=value,
                listed=", ".join(ROLES),
            )
        return None


def _check_roles(check: Checker, doc: ConfigDocument, known: Known) -> None:
    check.unique(
        ((("roles", i, "name"), r.name.strip()) for i, r in enumerate(doc.roles)), N_("role")
    )
    builtin = set(ROLES) | set(ROLE_ALIASES)
    actions = ", ".join(PUBLIC_ACTIONS)
    for i, spec in enumerate(doc.roles):
        loc: Loc = ("roles", i)
        name = spec.name.strip()
        if not name:
            check.add(loc + ("name",), N_("a role needs a name"))
            continue
        if name.casefold() in builtin:
            check.add(
                loc + ("name",),
                N_(
                    "%(name)r is a built-in role; name the custom role otherwise "
                    "(for example senior-technician)"
                ),
                name=name,
            )
            continue
        stored = known.roles.get(name)
        base = stored
        if required(check, loc, spec, "base", exists=stored is not None, what="role"):
            if spec.base is not None:
                base = spec.base.strip().lower()
                if base not in ROLES:
                    check.add(
                        loc + ("base",),
                        N_("unknown base role %(value)r; use one of: %(listed)s"),
                        value=spec.base,
                        listed=", ".join(ROLES),
                    )
                    base = None
        # Checked as they will be: a grant left out keeps the stored one (under a new base too).
        grants = spec.grant if spec.states("grant") else known.role_grants.get(name, [])
        lists = {"grant": grants or [], "deny": spec.deny or []}
        for key, names in lists.items():
            for j, action in enumerate(names):
                # A stored grant is reported on the new base that refuses it.
                where = loc + (key, j) if spec.states(key) else loc + ("base",)
                if action not in PUBLIC_ACTIONS:
                    check.add(
                        where,
                        N_("unknown action %(action)r; known actions: %(listed)s"),
                        action=action,
                        listed=actions,
                    )
                elif action in SCOPE_ACTIONS:
                    message = (
                        N_(
                            "%(action)r cannot be granted: "
                            "which tickets a role sees is its base role's"
                        )
                        if key == "grant"
                        else N_(
                            "%(action)r cannot be denied: "
                            "which tickets a role sees is its base role's"
                        )
                    )
                    check.add(where, message, action=action)
                elif (
                    key == "grant"
                    and base in ("client", "subcontractor")
                    and (action in STAFF_ONLY_ACTIONS)
                ):
                    check.add(
                        where,
                        N_("%(action)r is for staff; a %(base)s role cannot be granted it"),
                        action=action,
                        base=base,
                    )
                elif key == "grant" and action in lists["deny"]:
                    check.add(where, N_("%(action)r is both granted and denied"), action=action)
        if base is not None:
            known.roles[name] = base
