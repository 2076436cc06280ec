"""Applying a declarative configuration: validate the whole file, then upsert by natural keys.

Natural keys: calendars, clients, products and subcontractors by name, contracts by code,
ticket types and statuses by name within their contract (case-insensitively, as
``core.tickets.services`` looks them up), custom fields by name within their contract (or the
instance), mailboxes by address, users and contacts by e-mail.

Decisions:

- **Apply never deletes.** A calendar, client, contract, ticket type, status, custom field,
  mailbox, subcontractor or user that the file leaves out stays as it is. Tickets point at
  most of these, and removing one in use would orphan or silently change live tickets
  (their statuses, SLA targets, routing); a deliberate removal belongs in the console,
  where it can be refused while in use.
- **An entry is the whole definition of a configuration object.** A key left out of a
  calendar, contract, ticket type, status, custom field or mailbox takes its default
  (removing ``holidays: PL`` removes the holidays). Lists of values and links are replaced by
  the list given: a client's domains, a contract's products and mailboxes (a mailbox the
  contract no longer lists is unlinked, not deleted), a subcontractor's contracts.
- **People are different.** On an existing contact or user, a key left out (or null) is left
  as it is, so a deactivation, a language or a password set in the console survives a
  re-apply of the demo file. A password is re-hashed only when the given one does not verify
  against the stored hash, so re-applying changes nothing.
- **Nothing changed, nothing written.** Every value is compared before it is assigned, so
  applying the same file twice leaves the session clean and adds no audit entry.
- The caller owns the transaction; a ``ConfigError`` means nothing should be committed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.accounts import hash_password, normalize_email, normalize_role
from core.audit import AuditEntry
from core.clock import utcnow
from core.configuration.checks import calendar_config, load_known
from core.configuration.errors import ConfigError, Problem
from core.configuration.result import ApplyResult, Outcome
from core.configuration.schema import (
    ConfigDocument,
    ContractSpec,
    CustomFieldSpec,
    StatusSpec,
)
from core.configuration.seed import seed_tickets
from core.configuration.validate import validate_config
from core.contracts.models import Contract, CustomField, Status, TicketType
from core.directory.models import Client, ClientDomain, Product, Subcontractor, User
from core.mail.models import Mailbox
from core.sla import clocks as sla_clock
from core.sla.calendar import BusinessCalendar
from core.sla.models import Calendar

_verifier = PasswordHasher()


def apply_config_file(
    session: Session, path: Path, *, actor: str | None = None, now: datetime | None = None
) -> ApplyResult:
    """Apply the YAML file at ``path``; problems are reported as ``path:line: key: sentence``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [Problem(1, str(path), "", f"cannot read the file ({exc.strerror or exc})")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(1, str(path), "", "the file is not UTF-8 text")]) from None
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
    _Applier(session, result).apply(doc)
    if result.changed_calendars or result.changed_contracts:
        # Targets or working hours changed: open tickets under them get new deadlines,
        # derived from their history as always (docs/sla.md, rule 8).
        result.recomputed_tickets = sla_clock.recompute_open(
            session,
            contract_codes=result.changed_contracts,
            calendar_names=result.changed_calendars,
            now=now,
        )
    seed_tickets(session, doc, lines, result, now)
    if result.changed:
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
        /,
        **values: Any,
    ) -> tuple[Any, Outcome]:
        """Create or update one row; counts it under ``section`` unless that is None (the
        caller counts it, after changes to its children)."""
        row = existing.get(natural_key)
        outcome: Outcome = "unchanged"
        if row is None:
            row = factory(**values)
            self.session.add(row)
            existing[natural_key] = row
            outcome = "created"
        elif _set(row, **values):
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
            self._upsert("products", self.products, product.name, Product, name=product.name)
        self.contracts = self._all(Contract, "code")
        for contract_spec in doc.contracts:
            self._apply_contract(contract_spec)
        self.session.flush()  # contract ids, for their custom fields
        for contract_spec in doc.contracts:
            contract = self.contracts[contract_spec.code]
            if self._apply_fields(contract, contract_spec.custom_fields):
                self.result.changed_contracts.add(contract_spec.code)
        defaults = {
            s.name.casefold(): s
            for s in self.session.scalars(select(Status).where(Status.contract_id.is_(None)))
        }
        self._apply_statuses(defaults, doc.statuses, lambda: Status(contract_id=None))
        self._apply_fields(None, doc.custom_fields)
        self._apply_mailboxes(doc)
        self._apply_subcontractors(doc)
        for user in doc.users:
            given = user.model_dump(include={"name", "language", "manager", "active"})
            if user.client is not None:
                given["client"] = self.clients[user.client]
            if user.subcontractor is not None:
                given["subcontractor"] = self.subcontractors[user.subcontractor]
            self._person("users", user.email, normalize_role(user.role), given, user.password)
        self._apply_contract_coordinators(doc)
        self.session.flush()  # ids and foreign keys, for the ticket services that follow

    def _apply_contract_coordinators(self, doc: ConfigDocument) -> None:
        self.session.flush()
        for spec in doc.contracts:
            contract = self.contracts[spec.code]
            wanted = [normalize_email(e) for e in dict.fromkeys(spec.coordinators)]
            if {u.email for u in contract.coordinators} == set(wanted):
                continue
            by_email = {
                u.email: u for u in self.session.scalars(select(User).where(User.email.in_(wanted)))
            }
            contract.coordinators = [by_email[e] for e in wanted]
            self.result.record("contract coordinators", "updated")

    def _apply_calendars(self, doc: ConfigDocument) -> None:
        self.calendars = self._all(Calendar, "name")
        for spec in doc.calendars:
            config = calendar_config(spec)
            day_length = None
            if spec.day_length is not None:
                # Stored in minutes, as core.sla.clocks hands it back to the engine.
                built = BusinessCalendar.from_config(config)
                day_length = built.day_length // timedelta(minutes=1)
            _, outcome = self._upsert(
                "calendars", self.calendars, spec.name, Calendar,
                name=spec.name, timezone=spec.timezone, hours=spec.hours,
                holidays=config.get("holidays"), extra_holidays=config.get("extra_holidays", []),
                day_length_minutes=day_length,
            )  # fmt: skip
            if outcome != "unchanged":
                self.result.changed_calendars.add(spec.name)

    def _apply_subcontractors(self, doc: ConfigDocument) -> None:
        self.subcontractors = subs = self._all(Subcontractor, "name")
        for sub in doc.subcontractors:
            contracts = [self.contracts[code] for code in dict.fromkeys(sub.contracts)]
            row = subs.get(sub.name)
            if row is None:
                row = Subcontractor(name=sub.name, contracts=contracts)
                self.session.add(row)
                subs[sub.name] = row
                self.result.record("subcontractors", "created")
            elif {c.code for c in row.contracts} != set(sub.contracts):
                row.contracts = contracts
                self.result.record("subcontractors", "updated")
            else:
                self.result.record("subcontractors", "unchanged")

    def _apply_clients(self, doc: ConfigDocument) -> None:
        domains = {d.domain: d for d in self.session.scalars(select(ClientDomain))}
        for spec in doc.clients:
            client, outcome = self._upsert(
                None, self.clients, spec.name, Client, name=spec.name, language=spec.language
            )
            wanted = list(dict.fromkeys(d.strip().lower() for d in spec.domains))
            if {d.domain for d in client.domains} != set(wanted):
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
                given = contact.model_dump(include={"name", "language", "manager", "active"})
                given["client"] = client
                self._person("contacts", contact.email, "client", given, contact.password)

    def _person(
        self, section: str, email: str, role: str, given: dict[str, Any], password: str | None
    ) -> None:
        """Upsert a contact or user; keys that are None were not given and stay as they are."""
        email = normalize_email(email)
        values = {k: v for k, v in given.items() if v is not None}
        user = self.users.get(email)
        if user is None:
            user = User(email=email, role=role, language="pl", manager=False, active=True)
            for key, value in values.items():
                setattr(user, key, value)
            if password is not None:
                user.password_hash = hash_password(password)
            self.session.add(user)
            self.users[email] = user
            self.result.record(section, "created")
            return
        changed = _set(user, role=role, **values)
        if password is not None and not _verifies(user.password_hash, password):
            user.password_hash = hash_password(password)
            changed = True
        self.result.record(section, "updated" if changed else "unchanged")

    def _apply_contract(self, spec: ContractSpec) -> None:
        contract, outcome = self._upsert(
            None, self.contracts, spec.code, Contract,
            code=spec.code, name=spec.name, client=self.clients[spec.client], key=spec.key,
            calendar=self.calendars[spec.calendar] if spec.calendar else None,
            valid_from=spec.valid_from, valid_to=spec.valid_to,
            warning_threshold=spec.warning_threshold,
        )  # fmt: skip
        if {p.name for p in contract.products} != set(spec.products):
            contract.products = [self.products[name] for name in dict.fromkeys(spec.products)]
            outcome = "updated" if outcome == "unchanged" else outcome
        self.result.record("contracts", outcome)
        changed = outcome != "unchanged"
        types = {t.name.casefold(): t for t in contract.ticket_types}
        for tt in spec.ticket_types:
            values = tt.model_dump()  # the spec's keys are the table's columns
            row = types.get(tt.name.casefold())
            if row is None:
                contract.ticket_types.append(TicketType(**values))
                self.result.record("ticket types", "created")
                changed = True
            elif _set(row, **values):
                self.result.record("ticket types", "updated")
                changed = True
            else:
                self.result.record("ticket types", "unchanged")
        if any(tt.default for tt in spec.ticket_types):
            # One default per contract: a type the file does not mention stops being it.
            named = {tt.name.casefold() for tt in spec.ticket_types}
            for row in contract.ticket_types:
                if row.default and row.name.casefold() not in named:
                    row.default = False
                    self.result.record("ticket types", "updated")
                    changed = True
        statuses = {s.name.casefold(): s for s in contract.statuses}
        if self._apply_statuses(statuses, spec.statuses, lambda: _new_status(contract)):
            changed = True
        if changed:
            self.result.changed_contracts.add(spec.code)

    def _apply_statuses(
        self, existing: dict[str, Status], specs: list[StatusSpec], make: Any
    ) -> bool:
        changed = False
        for position, spec in enumerate(specs):
            values = {**spec.model_dump(), "position": position}
            row = existing.get(spec.name.casefold())
            if row is None:
                row = make()
                for key, value in values.items():
                    setattr(row, key, value)
                self.session.add(row)
                existing[spec.name.casefold()] = row
                self.result.record("statuses", "created")
                changed = True
            elif _set(row, **values):
                self.result.record("statuses", "updated")
                changed = True
            else:
                self.result.record("statuses", "unchanged")
        return changed

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
        for spec in specs:
            contract_id = contract.id if contract else None
            values = {**spec.model_dump(), "contract_id": contract_id}
            _, outcome = self._upsert("custom fields", existing, spec.name, CustomField, **values)
            changed = changed or outcome != "unchanged"
        return changed

    def _apply_mailboxes(self, doc: ConfigDocument) -> None:
        existing = self._all(Mailbox, "address")
        # Where each address should route: the top-level entry's contract, else the contract
        # listing it, else nowhere (the general mailbox, where the sender decides).
        route: dict[str, str | None] = {}
        for spec in doc.contracts:
            for address in spec.mailboxes:
                route[normalize_email(address)] = spec.code
        imap: dict[str, dict[str, Any] | None] = {}
        for box in doc.mailboxes:
            address = normalize_email(box.address)
            route[address] = box.contract if box.contract is not None else route.get(address)
            imap[address] = box.imap.model_dump(exclude_none=True) if box.imap else None
        codes = {spec.code for spec in doc.contracts}
        for address, row in existing.items():
            if address not in route and row.contract is not None and row.contract.code in codes:
                route[address] = None  # its contract is in the file and no longer lists it
        for address, code in route.items():
            values: dict[str, Any] = {
                "address": address,
                "contract": self.contracts[code] if code else None,
            }
            if address in imap:
                values["imap"] = imap[address]
            self._upsert("mailboxes", existing, address, Mailbox, **values)


def _new_status(contract: Contract) -> Status:
    status = Status()
    contract.statuses.append(status)
    return status
