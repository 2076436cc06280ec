"""Applying a declarative configuration: validate the whole file, then upsert by natural keys.

Natural keys: calendars, clients, products and subcontractors by name, contracts by code,
ticket types and statuses by name within their contract (case-insensitively, as
``core.tickets.services`` looks them up), custom fields by name within their contract (or the
instance), mailboxes by address, users and contacts by e-mail.

Decisions (docs/configuration.md, docs/decisions.md):

- **Apply never deletes.** A calendar, client, contract, ticket type, status, custom field,
  mailbox, subcontractor or user that the file leaves out stays as it is. Tickets point at
  most of these, and removing one in use would orphan or silently change live tickets
  (their statuses, SLA targets, routing); a deliberate removal belongs in the console,
  where it can be refused while in use.
- **A file changes exactly the keys it states.** A key an entry leaves out keeps its stored
  value, so ``{code: ACME-2026, client: Acme, key: false}`` changes ``key`` and nothing else;
  a new object gets the defaults of the keys left out. A key stated as ``null`` is reset to
  its default (``calendar: null``: 24/7; ``holidays: null``: none). Partial entries are
  checked as they will be after applying (``checks``), against the stored values they keep.
- **Lists inside an entry are merged, never emptied by omission.** Contacts, ticket types
  and statuses merge by name or e-mail, each changing by the keys it states; values and links
  (a client's domains, a contract's products, mailboxes and coordinators, a subcontractor's
  contracts, a select field's options) are added to the stored ones. Taking one out is said
  explicitly: ``remove: {domains: [old.example]}`` on the entry, or ``domains: null`` to
  empty the list. A value that is one thing's setting rather than a collection (a calendar's
  ``hours`` and ``extra_holidays``, a ticket type's ``subject_keywords``) is replaced when
  stated. Statuses keep their order unless the file names them (``_apply_statuses``).
- **People are like the rest:** on an existing contact or user, a key left out keeps its
  stored value, so a deactivation, a language or a password set in the console survives a
  re-apply of the demo file. A password is re-hashed only when the given one does not verify
  against the stored hash, so re-applying changes nothing; ``password: null`` removes it.
- **Nothing changed, nothing written.** Every value is compared before it is assigned, so
  applying the same file twice leaves the session clean and adds no audit entry.
- The caller owns the transaction; a ``ConfigError`` means nothing should be committed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

import core.configuration.audit as config_audit
from core.access.accounts import hash_password, normalize_email, normalize_role
from core.audit import AuditEntry
from core.clock import utcnow
from core.configuration.checks import (
    effective_calendar,
    load_known,
    merged_list,
    merged_required_fields,
)
from core.configuration.errors import ConfigError, Problem
from core.configuration.result import ApplyResult, Outcome
from core.configuration.schema import (
    CONTRACT_KEYS,
    FIELD_KEYS,
    PERSON_KEYS,
    ROLE_KEYS,
    STATUS_KEYS,
    TEXT_LANGUAGES,
    TICKET_TYPE_KEYS,
    WORK_TYPE_KEYS,
    WORKLOG_KEYS,
    ConfigDocument,
    ContactSpec,
    ContractSpec,
    CustomFieldSpec,
    ImapSpec,
    StatusSpec,
    TicketTypeSpec,
    UserSpec,
    WorkTypeSpec,
    minor_units,
)
from core.configuration.seed import seed_tickets
from core.configuration.validate import validate_config
from core.contracts.models import Contract, CustomField, Status, TicketType
from core.directory.models import Client, ClientDomain, Product, Role, Subcontractor, User
from core.errors import N_
from core.mail.models import Mailbox
from core.sla import clocks as sla_clock
from core.sla import watch as sla_watch
from core.sla.calendar import BusinessCalendar
from core.sla.models import Calendar
from core.worklog.models import WorkType

_verifier = PasswordHasher()


def apply_config_file(
    session: Session, path: Path, *, actor: str | None = None, now: datetime | None = None
) -> ApplyResult:
    """Apply the YAML file at ``path``; problems are reported as ``path:line: key: sentence``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem.of(
            1, str(path), "", N_("cannot read the file (%(error)s)"), error=exc.strerror or str(exc)
        )
        raise ConfigError([problem]) from None
    except UnicodeDecodeError:
        problem = Problem.of(1, str(path), "", N_("the file is not UTF-8 text"))
        raise ConfigError([problem]) from None
    return apply_config_text(session, text, source=str(path), actor=actor, now=now)


def apply_config_text(
    session: Session,
    text: str,
    *,
    source: str = "<string>",
    actor: str | None = None,
    now: datetime | None = None,
) -> ApplyResult:
    """Validate the whole document, then upsert it; raises ConfigError listing every problem."""
    now = now or utcnow()
    doc, lines = validate_config(text, source=source, known=load_known(session), now=now)
    result = ApplyResult(source=source)
    keys = config_audit.touched(session, doc)
    before = config_audit.snapshot(session, keys)
    _Applier(session, result).apply(doc)
    if result.changed_calendars or result.changed_contracts:
        # Targets or working hours may have changed: the open tickets under them are
        # recomputed from their history (docs/sla.md, rule 8) by the SLA worker once this
        # commits, so the change's own transaction stays short.
        result.rescheduled = sla_watch.reschedule(
            session,
            contract_codes=result.changed_contracts,
            calendar_names=result.changed_calendars,
            now=now,
        )
    seed_tickets(session, doc, lines, result, now)
    if result.changed:
        # Read back as stored (collections in their stored order), for the per-object history.
        session.flush()
        session.expire_all()
        after = config_audit.snapshot(session, keys)
        config_audit.record(session, before, after, actor=actor, source=source, at=now)
        session.add(AuditEntry(action="config.apply", actor=actor, at=now, data=result.summary()))
        session.flush()
    return result


def _set(obj: Any, **values: Any) -> bool:
    """Assign only the values that differ, so an unchanged row never becomes dirty."""
    changed = False
    for attr, value in values.items():
        if getattr(obj, attr) != value:
            setattr(obj, attr, value)
            changed = True
    return changed


def _verifies(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return bool(_verifier.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


class _Applier:
    def __init__(self, session: Session, result: ApplyResult) -> None:
        self.session = session
        self.result = result

    def _all(self, model: Any, key: str) -> dict[str, Any]:
        return {getattr(row, key): row for row in self.session.scalars(select(model))}

    def _upsert(
        self,
        section: str | None,
        existing: dict[str, Any],
        natural_key: str,
        factory: Any,
        create: dict[str, Any],
        update: dict[str, Any],
    ) -> tuple[Any, Outcome]:
        """Create a row from ``create`` (every key, defaults included), or change an existing
        one by ``update`` (only the keys the file states). Counts it under ``section`` unless
        that is None (the caller counts it, after changes to its children)."""
        row = existing.get(natural_key)
        outcome: Outcome = "unchanged"
        if row is None:
            row = factory(**create)
            self.session.add(row)
            existing[natural_key] = row
            outcome = "created"
        elif _set(row, **update):
            outcome = "updated"
        if section is not None:
            self.result.record(section, outcome)
        return row, outcome

    def apply(self, doc: ConfigDocument) -> None:
        """Upsert every section, in dependency order (contracts need clients and calendars)."""
        self._apply_calendars(doc)
        emails = [c.email for cl in doc.clients for c in cl.contacts] + [u.email for u in doc.users]
        wanted = [normalize_email(e) for e in emails]
        self.users = {
            u.email: u for u in self.session.scalars(select(User).where(User.email.in_(wanted)))
        }
        self.clients = self._all(Client, "name")
        self._apply_clients(doc)
        self.products = self._all(Product, "name")
        for product in doc.products:
            values = {"name": product.name}
            self._upsert("products", self.products, product.name, Product, values, values)
        self.contracts = self._all(Contract, "code")
        for contract_spec in doc.contracts:
            self._apply_contract(contract_spec)
        self.session.flush()  # contract ids, for their custom fields
        for contract_spec in doc.contracts:
            contract = self.contracts[contract_spec.code]
            if self._apply_fields(contract, contract_spec.custom_fields):
                self.result.changed_contracts.add(contract_spec.code)
            self._apply_work_types(contract, contract_spec.work_types)
        defaults = list(
            self.session.scalars(
                select(Status)
                .where(Status.contract_id.is_(None))
                .order_by(Status.position, Status.id)
            )
        )
        self._apply_statuses(defaults, doc.statuses, lambda: Status(contract_id=None))
        self._apply_fields(None, doc.custom_fields)
        self._apply_mailboxes(doc)
        self._apply_subcontractors(doc)
        self._apply_roles(doc)
        for user in doc.users:
            refs: dict[str, Any] = {}
            if user.states("client"):
                refs["client"] = self.clients[user.client] if user.client else None
            if user.states("subcontractor"):
                refs["subcontractor"] = (
                    self.subcontractors[user.subcontractor] if user.subcontractor else None
                )
            role: str | None = None
            if user.role:
                custom = self.roles.get(user.role.strip())
                role = custom.base if custom is not None else normalize_role(user.role)
                refs["custom_role"] = custom
            self._person("users", user, role, refs)
        self._apply_contract_coordinators(doc)
        self.session.flush()  # ids and foreign keys, for the ticket services that follow

    def _apply_roles(self, doc: ConfigDocument) -> None:
        self.roles = roles = self._all(Role, "name")
        for spec in doc.roles:
            name = spec.name.strip()
            labels = {"labels": _labels(spec.label)} if spec.states("label") else {}
            values = {
                key: (value.strip().lower() if key == "base" else list(value))
                for key, value in spec.stated(*ROLE_KEYS).items()
            }
            before = roles[name].base if name in roles else None
            row, _ = self._upsert(
                "roles", roles, name, Role,
                {"name": name, "grant": [], "deny": [], "labels": {}, **values, **labels},
                {**values, **labels},
            )  # fmt: skip
            if before is not None and row.base != before:
                # The users of the role take its new base: every rule of the base roles holds.
                self.session.flush()
                holders = self.session.scalars(select(User).where(User.custom_role_id == row.id))
                for user in holders:
                    _set(user, role=row.base)

    def _apply_contract_coordinators(self, doc: ConfigDocument) -> None:
        self.session.flush()
        for spec in doc.contracts:
            contract = self.contracts[spec.code]
            current = [u.email for u in contract.coordinators]
            wanted = merged_list(current, spec, "coordinators", spec.remove, normalize_email)
            if set(current) == set(wanted):
                continue
            by_email = {
                u.email: u for u in self.session.scalars(select(User).where(User.email.in_(wanted)))
            }
            contract.coordinators = [by_email[e] for e in wanted]
            self.result.record("contract coordinators", "updated")
        for spec in doc.contracts:
            contract = self.contracts[spec.code]
            current = [u.email for u in contract.technicians]
            wanted = merged_list(current, spec, "technicians", spec.remove, normalize_email)
            if set(current) == set(wanted):
                continue
            by_email = {
                u.email: u for u in self.session.scalars(select(User).where(User.email.in_(wanted)))
            }
            contract.technicians = [by_email[e] for e in wanted]
            self.result.record("contract technicians", "updated")

    def _apply_calendars(self, doc: ConfigDocument) -> None:
        self.calendars = self._all(Calendar, "name")
        for spec in doc.calendars:
            row = self.calendars.get(spec.name)
            stored = sla_clock.calendar_definition(row) if row is not None else None
            config = effective_calendar(spec, stored)
            day_length = config.get("day_length")
            if day_length is not None:
                # Stored in minutes, as core.sla.clocks hands it back to the engine.
                built = BusinessCalendar.from_config(config)
                day_length = built.day_length // timedelta(minutes=1)
            values = {
                "name": spec.name,
                "timezone": config["timezone"],
                "hours": config["hours"],
                "holidays": config.get("holidays"),
                "extra_holidays": list(config.get("extra_holidays") or []),
                "day_length_minutes": day_length,
            }
            _, outcome = self._upsert(
                "calendars", self.calendars, spec.name, Calendar, values, values
            )
            if outcome != "unchanged":
                self.result.changed_calendars.add(spec.name)

    def _apply_subcontractors(self, doc: ConfigDocument) -> None:
        self.subcontractors = subs = self._all(Subcontractor, "name")
        for sub in doc.subcontractors:
            row = subs.get(sub.name)
            current = [c.code for c in row.contracts] if row is not None else []
            wanted = merged_list(current, sub, "contracts", sub.remove)
            contracts = [self.contracts[code] for code in wanted]
            if row is None:
                row = Subcontractor(name=sub.name, contracts=contracts)
                self.session.add(row)
                subs[sub.name] = row
                self.result.record("subcontractors", "created")
            elif set(current) != set(wanted):
                row.contracts = contracts
                self.result.record("subcontractors", "updated")
            else:
                self.result.record("subcontractors", "unchanged")

    def _apply_clients(self, doc: ConfigDocument) -> None:
        domains = {d.domain: d for d in self.session.scalars(select(ClientDomain))}
        for spec in doc.clients:
            client, outcome = self._upsert(
                None, self.clients, spec.name, Client,
                {"name": spec.name, **spec.full("language")}, spec.stated("language"),
            )  # fmt: skip
            current = [d.domain for d in client.domains]
            wanted = merged_list(current, spec, "domains", spec.remove, _domain)
            if set(current) != set(wanted):
                for row in list(client.domains):
                    if row.domain not in wanted:
                        # delete-orphan removes the row: a domain is a value, not an entity.
                        client.domains.remove(row)
                for domain in wanted:
                    row = domains.get(domain)
                    if row is None:
                        domains[domain] = row = ClientDomain(domain=domain)
                    if row.client is not client:
                        client.domains.append(row)  # moves it from another client, if any
                outcome = "updated" if outcome == "unchanged" else outcome
            self.result.record("clients", outcome)
            for contact in spec.contacts:
                self._person("contacts", contact, "client", {"client": client})

    def _person(
        self, section: str, spec: ContactSpec | UserSpec, role: str | None, refs: dict[str, Any]
    ) -> None:
        """Upsert a contact or user: a new one gets the defaults of the keys left out, an
        existing one changes only the keys stated (``null`` resets one to its default)."""
        email = normalize_email(spec.email)
        user = self.users.get(email)
        if user is None:
            user = User(email=email, role=role, **spec.full(*PERSON_KEYS), **refs)
            if spec.password is not None:
                user.password_hash = hash_password(spec.password)
            self.session.add(user)
            self.users[email] = user
            self.result.record(section, "created")
            return
        values = {**spec.stated(*PERSON_KEYS), **refs}
        if role is not None:
            values["role"] = role
        changed = _set(user, **values)
        if spec.states("password"):
            if spec.password is None:
                changed = _set(user, password_hash=None) or changed
            elif not _verifies(user.password_hash, spec.password):
                user.password_hash = hash_password(spec.password)
                changed = True
        self.result.record(section, "updated" if changed else "unchanged")

    def _apply_contract(self, spec: ContractSpec) -> None:
        refs: dict[str, Any] = {}
        if spec.client is not None:
            refs["client"] = self.clients[spec.client]
        if spec.states("calendar"):
            refs["calendar"] = self.calendars[spec.calendar] if spec.calendar else None
        contract, outcome = self._upsert(
            None, self.contracts, spec.code, Contract,
            {
                "code": spec.code, "calendar": None, **spec.full(*CONTRACT_KEYS),
                **_worklog_columns(spec.full(*WORKLOG_KEYS)), **refs,
            },
            {**spec.stated(*CONTRACT_KEYS), **refs},
        )  # fmt: skip
        # The work log's keys price work and move no deadline: a change to them alone does
        # not send the contract's open tickets to the SLA worker.
        billing = outcome != "created" and _set(
            contract, **_worklog_columns(spec.stated(*WORKLOG_KEYS))
        )
        current = [p.name for p in contract.products]
        wanted = merged_list(current, spec, "products", spec.remove)
        if set(current) != set(wanted):
            contract.products = [self.products[name] for name in wanted]
            outcome = "updated" if outcome == "unchanged" else outcome
        required = merged_required_fields(dict(contract.required_fields or {}), spec)
        if _set(contract, required_fields=required):
            outcome = "updated" if outcome == "unchanged" else outcome
        changed = outcome != "unchanged"
        if billing and outcome == "unchanged":
            outcome = "updated"
        self.result.record("contracts", outcome)
        if self._apply_ticket_types(contract, spec.ticket_types):
            changed = True
        if self._apply_statuses(
            list(contract.statuses), spec.statuses, lambda: _new_status(contract)
        ):
            changed = True
        if changed:
            self.result.changed_contracts.add(spec.code)

    def _apply_ticket_types(self, contract: Contract, specs: list[TicketTypeSpec]) -> bool:
        changed = False
        types = {t.name.casefold(): t for t in contract.ticket_types}
        for tt in specs:
            row = types.get(tt.name.casefold())
            checklist = {"checklist": tt.checklist.stored() if tt.checklist else None}
            if row is None:
                row = TicketType(name=tt.name, **tt.full(*TICKET_TYPE_KEYS), **checklist)
                contract.ticket_types.append(row)
                types[tt.name.casefold()] = row
                self.result.record("ticket types", "created")
                changed = True
            elif _set(
                row,
                name=tt.name,
                **tt.stated(*TICKET_TYPE_KEYS),
                **(checklist if tt.states("checklist") else {}),
            ):
                self.result.record("ticket types", "updated")
                changed = True
            else:
                self.result.record("ticket types", "unchanged")
        chosen = {tt.name.casefold() for tt in specs if tt.value("default")}
        if chosen:
            # One default per contract: the type made the default takes over from another.
            for row in contract.ticket_types:
                if row.default and row.name.casefold() not in chosen:
                    row.default = False
                    self.result.record("ticket types", "updated")
                    changed = True
        return changed

    def _apply_work_types(self, contract: Contract, specs: list[WorkTypeSpec]) -> None:
        """Merge the work types into the stored ones by name (case-insensitively, as ticket
        types). The list's order is the order offered on the ticket: the types the file
        names take, among themselves, the file's order in the places they held; a new one
        goes after the one listed before it (the first: before the others), as statuses do."""
        if not specs:
            return
        rows = list(
            self.session.scalars(
                select(WorkType)
                .where(WorkType.contract_id == contract.id)
                .order_by(WorkType.position, WorkType.id)
            )
        )
        by_name = {row.name.casefold(): row for row in rows}
        stored = set(by_name)
        listed = [
            by_name[s.name.strip().casefold()] for s in specs if s.name.strip().casefold() in stored
        ]
        order = list(rows)
        slots = [i for i, row in enumerate(rows) if row in listed]
        for slot, row in zip(slots, listed, strict=True):
            order[slot] = row
        outcomes: dict[WorkType, Outcome] = {}
        for k, spec in enumerate(specs):
            name = spec.name.strip()
            found = by_name.get(name.casefold())
            if found is not None:
                changed = _set(found, name=name, **_work_type_columns(spec.stated(*WORK_TYPE_KEYS)))
                outcomes[found] = "updated" if changed else "unchanged"
                continue
            row = WorkType(
                contract_id=contract.id,
                name=name,
                **_work_type_columns(spec.full(*WORK_TYPE_KEYS)),
            )
            self.session.add(row)
            by_name[name.casefold()] = row
            outcomes[row] = "created"
            place = (
                order.index(by_name[specs[k - 1].name.strip().casefold()]) + 1
                if k > 0
                else min((order.index(r) for r in listed), default=len(order))
            )
            order.insert(place, row)
        for position, row in enumerate(order):
            if row.position != position:
                row.position = position
                if outcomes.get(row, "unchanged") == "unchanged":
                    outcomes[row] = "updated"
        for outcome in outcomes.values():
            self.result.record("work types", outcome)

    def _apply_statuses(
        self, rows: list[Status], specs: list[StatusSpec], make: Callable[[], Status]
    ) -> bool:
        """Merge a status list into the stored one (``rows``, in order). A status listed
        changes by the keys it states; one left out stays. Order: the statuses the file lists
        that exist already take, among themselves, the order of the file, in the places they
        held; a new status goes right after the one listed before it in the file (the first
        listed: before the next one that exists, else at the end). A list given in full thus
        sets the whole order, and a partial list moves nothing it does not name."""
        if not specs:
            return False
        by_name = {row.name.casefold(): row for row in rows}
        stored = set(by_name)
        listed = [by_name[s.name.casefold()] for s in specs if s.name.casefold() in stored]
        order = list(rows)
        slots = [i for i, row in enumerate(rows) if row in listed]
        for slot, row in zip(slots, listed, strict=True):
            order[slot] = row
        outcomes: dict[Status, Outcome] = {}
        for k, spec in enumerate(specs):
            found = by_name.get(spec.name.casefold())
            if found is not None:
                changed = _set(found, name=spec.name, **spec.stated(*STATUS_KEYS))
                outcomes[found] = "updated" if changed else "unchanged"
                continue
            row = make()
            for key, value in {"name": spec.name, **spec.full(*STATUS_KEYS)}.items():
                setattr(row, key, value)
            self.session.add(row)
            by_name[spec.name.casefold()] = row
            outcomes[row] = "created"
            if k > 0:
                place = order.index(by_name[specs[k - 1].name.casefold()]) + 1
            else:
                following = [
                    by_name[s.name.casefold()] for s in specs if s.name.casefold() in stored
                ]
                place = order.index(following[0]) if following else len(order)
            order.insert(place, row)
        if order != rows:
            for position, row in enumerate(order):
                if row.position != position:
                    row.position = position
                    if outcomes.get(row, "unchanged") == "unchanged":
                        outcomes[row] = "updated"
        for outcome in outcomes.values():
            self.result.record("statuses", outcome)
        return any(outcome != "unchanged" for outcome in outcomes.values())

    def _apply_fields(self, contract: Contract | None, specs: list[CustomFieldSpec]) -> bool:
        if not specs:
            return False
        scope = (
            CustomField.contract_id == contract.id
            if contract
            else CustomField.contract_id.is_(None)
        )
        existing = {f.name: f for f in self.session.scalars(select(CustomField).where(scope))}
        changed = False
        for index, spec in enumerate(specs):
            row = existing.get(spec.name)
            stored = list(row.options or []) if row is not None else []
            options = merged_list(stored, spec, "options", spec.remove)
            # A new field takes its place in the file unless ``order`` says; an existing one
            # keeps its place unless ``order`` is stated (``order: null``: its place here).
            position = spec.order if spec.order is not None else index * 10
            create = {
                "name": spec.name,
                "contract_id": contract.id if contract else None,
                **_field_columns(spec, spec.full(*FIELD_KEYS)),
                "options": options,
                "position": position,
            }
            update = {**_field_columns(spec, spec.stated(*FIELD_KEYS)), "options": options}
            if spec.states("order"):
                update["position"] = position
            _, outcome = self._upsert(
                "custom fields", existing, spec.name, CustomField, create, update
            )
            changed = changed or outcome != "unchanged"
        return changed

    def _apply_mailboxes(self, doc: ConfigDocument) -> None:
        existing = self._all(Mailbox, "address")
        # Where each address the file speaks of should route. Later steps win: a contract
        # unlinking an address (remove:, or mailboxes: null), a contract listing it, then a
        # top-level entry stating its contract (checks refuse a top-level entry that
        # contradicts a contract's list).
        route: dict[str, str | None] = {}
        for spec in doc.contracts:
            contract = self.contracts[spec.code]
            current = [a for a, box in existing.items() if box.contract is contract]
            kept = merged_list(current, spec, "mailboxes", spec.remove, normalize_email)
            for address in current:
                if address not in kept:
                    route[address] = None
        for spec in doc.contracts:
            for address in spec.mailboxes or []:
                route[normalize_email(address)] = spec.code
        imap: dict[str, dict[str, Any] | None] = {}
        for box in doc.mailboxes:
            address = normalize_email(box.address)
            if box.states("contract"):
                route[address] = box.contract
            elif address not in route:
                row = existing.get(address)
                route[address] = row.contract.code if row is not None and row.contract else None
            if box.states("imap"):
                stored = existing[address].imap if address in existing else None
                imap[address] = _imap(box.imap, stored)
        for address, code in route.items():
            values: dict[str, Any] = {
                "address": address,
                "contract": self.contracts[code] if code else None,
            }
            if address in imap:
                values["imap"] = imap[address]
            self._upsert("mailboxes", existing, address, Mailbox, values, values)


def _field_columns(spec: CustomFieldSpec, values: dict[str, Any]) -> dict[str, Any]:
    """The custom_fields columns for the keys in ``values`` (as ``stated`` or ``full`` give
    them): ``label`` fills ``label`` and ``labels``, ``min``/``max`` their ``_value``
    columns, ``depends_on`` its JSON, ``edit`` the canonical role names."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "label":
            if isinstance(value, dict):
                # Readers that know one label only get the English one, else the first.
                out["label"] = value.get("en") or next(iter(value.values()))
                out["labels"] = dict(value)
            else:
                out["label"] = value
                out["labels"] = {}
        elif key in ("min", "max"):
            out[f"{key}_value"] = float(value) if value is not None else None
        elif key == "depends_on":
            out["depends_on"] = spec.depends_on.stored() if spec.depends_on else None
        elif key == "edit":
            out["edit"] = [normalize_role(r) for r in value] if value is not None else None
        elif key == "help":
            out["help"] = dict(value) if isinstance(value, dict) else value
        else:
            out[key] = value
    return out


def _worklog_columns(values: dict[str, Any]) -> dict[str, Any]:
    """The contract's work log columns for the keys in ``values``: the rate in minor units."""
    return {
        key: minor_units(value) if key == "hourly_rate" else value for key, value in values.items()
    }


def _work_type_columns(values: dict[str, Any]) -> dict[str, Any]:
    """A work type's columns: ``label`` fills ``labels``, the rate in minor units."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "label":
            out["labels"] = _labels(value)
        elif key == "rate":
            out["rate"] = minor_units(value)
        else:
            out[key] = value
    return out


def _labels(value: str | dict[str, str] | None) -> dict[str, str]:
    """A role's ``label``: one text stands for every language."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {language: value for language in TEXT_LANGUAGES}
    return dict(value)


def _domain(value: str) -> str:
    return value.strip().lower()


def _imap(spec: ImapSpec | None, stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A mailbox's IMAP settings after applying ``spec`` over the stored ones: ``imap: null``
    removes them, a key stated replaces its value (``null``: its default), the rest stay."""
    if spec is None:
        return None
    merged = dict(stored or {})
    for key in spec.model_fields_set:
        value = getattr(spec, key)
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    for key, info in ImapSpec.model_fields.items():
        if key not in merged and info.default is not None:
            merged[key] = info.default
    return merged


def _new_status(contract: Contract) -> Status:
    status = Status()
    contract.statuses.append(status)
    return status
