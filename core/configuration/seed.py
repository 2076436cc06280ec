"""Seeding tickets from a configuration file: demo data and migrations from other tools.

Each ticket has a natural key ``ref``; a ref already in the database is skipped, so applying
the same file again creates nothing. Tickets and their timelines are made through the
``core.tickets.services`` services (``open_ticket``, ``add_comment``, ``change_status``, ``assign``,
``log_work``) at the times the file gives, so statuses, events and SLA fields are exactly
what the product would have produced had the work happened then.

Times: ``created`` is an age before ``now`` ("3d", "2h40m": wall-clock time, not business
time) or an ISO 8601 timestamp with a zone; a timeline entry's ``after`` is a wall-clock
offset from creation. Entries that would lie in the future are skipped, so a demo file keeps
working as it ages: re-applied later they still are not replayed (the ticket already exists).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.accounts import normalize_email
from core.configuration.checks import Checker, Known, is_staff
from core.configuration.errors import ConfigError, Loc
from core.configuration.loader import Lines
from core.configuration.result import ApplyResult
from core.configuration.schema import ConfigDocument, TicketSpec, TimelineEntrySpec
from core.contracts.models import Contract
from core.directory.models import Product, Subcontractor, User
from core.errors import N_, InputError, Invalid
from core.tickets.models import Ticket
from core.tickets.services import (
    NewTicket,
    add_comment,
    assign,
    change_status,
    log_work,
    open_ticket,
)

_AGE = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")


def parse_age(text: str) -> timedelta:
    """Wall-clock time such as ``3d``, ``1d4h`` or ``40m``; :class:`Invalid` (a ValueError)
    with a sentence."""
    compact = "".join(str(text).lower().split())
    match = _AGE.fullmatch(compact)
    if not match or not any(match.groups()):
        raise Invalid(N_("%(text)r is not a time span (use 40m, 2h, 3d, 1d4h or 1w)"), text=text)
    weeks, days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)


def resolve_created(value: Any, now: datetime) -> datetime:
    """When a seeded ticket was created; :class:`Invalid` (a ValueError) with a sentence when
    it cannot be read."""
    if value is None:
        return now
    if isinstance(value, str):
        try:
            return now - parse_age(value)
        except ValueError:
            pass
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise Invalid(
                N_("%(value)r is neither an age (3d, 2h, 40m) nor an ISO 8601 timestamp"),
                value=value,
            ) from None
    if not isinstance(value, datetime):
        raise Invalid(
            N_("%(value)r needs a time and a zone, e.g. 2026-03-02T09:15:00+01:00"), value=value
        )
    if value.tzinfo is None:
        raise Invalid(
            N_("%(moment)s has no time zone; add one, e.g. +01:00 or Z"), moment=value.isoformat()
        )
    if value > now:
        raise Invalid(N_("%(moment)s is in the future"), moment=value.isoformat())
    return value


def check_tickets(check: Checker, doc: ConfigDocument, known: Known, now: datetime) -> None:
    """Every reference a seeded ticket makes, checked before anything is written."""
    refs = ((("tickets", i, "ref"), t.ref) for i, t in enumerate(doc.tickets))
    check.unique(refs, N_("ticket ref"))
    for i, ticket in enumerate(doc.tickets):
        loc: Loc = ("tickets", i)
        try:
            resolve_created(ticket.created, now)
        except Invalid as exc:
            check.add(loc + ("created",), exc.template, **exc.params)
        code = ticket.contract
        if code is not None and not check.reference(
            loc + ("contract",), code, known.contracts, N_("contract")
        ):
            code = None
        requester = check.email(loc + ("requester",), ticket.requester)
        if requester and requester not in known.users and ticket.contract is not None:
            # Mail from an unknown sender lands in triage; under a contract it must be a contact.
            check.add(
                loc + ("requester",),
                N_("%(email)s is neither a contact nor a user"),
                email=requester,
            )
        if ticket.type is not None:
            if ticket.contract is None:
                check.add(loc + ("type",), N_("a ticket type needs a contract"))
            elif code is not None and ticket.type.casefold() not in known.contracts[code].types:
                check.add(
                    loc + ("type",),
                    N_("contract %(code)s has no ticket type %(name)r"),
                    code=code,
                    name=ticket.type,
                )
        if ticket.product is not None:
            check.reference(loc + ("product",), ticket.product, known.products, N_("product"))
        if ticket.assignee is not None:
            _check_staff(check, known, loc + ("assignee",), ticket.assignee)
        if ticket.by is not None:
            _check_user(check, known, loc + ("by",), ticket.by)
        if ticket.subcontractor is not None:
            _check_subcontractor(check, known, loc + ("subcontractor",), ticket.subcontractor, code)
        fields = known.custom_fields.get(None, set()) | known.custom_fields.get(code, set())
        for name in ticket.custom_fields:
            if name not in fields:
                check.add(
                    loc + ("custom_fields", name),
                    N_("there is no custom field %(name)r"),
                    name=name,
                )
        for j, entry in enumerate(ticket.timeline):
            _check_entry(check, known, loc + ("timeline", j), entry, code)


def _check_user(check: Checker, known: Known, loc: Loc, value: str) -> str | None:
    email = check.email(loc, value)
    if email and email not in known.users:
        check.add(
            loc, N_("%(email)s is not a user or contact in this file or the database"), email=email
        )
        return None
    return email


def _check_staff(check: Checker, known: Known, loc: Loc, value: str) -> None:
    email = _check_user(check, known, loc, value)
    if email and not is_staff(known, email):
        check.add(loc, N_("%(email)s is not staff (admin, coordinator or technician)"), email=email)


def _check_subcontractor(
    check: Checker, known: Known, loc: Loc, name: str, code: str | None
) -> None:
    if check.reference(loc, name, known.subcontractors, N_("subcontractor")):
        if code is not None and code not in known.subcontractors[name]:
            check.add(
                loc,
                N_("subcontractor %(name)s does not serve contract %(code)s"),
                name=name,
                code=code,
            )


def _check_entry(
    check: Checker, known: Known, loc: Loc, entry: TimelineEntrySpec, code: str | None
) -> None:
    try:
        parse_age(entry.after)
    except Invalid as exc:
        check.add(loc + ("after",), exc.template, **exc.params)
    _check_user(check, known, loc + ("by",), entry.by)
    if entry.status is not None and entry.status.casefold() not in known.statuses_for(code):
        if code:
            check.add(
                loc + ("status",),
                N_("there is no status %(name)r for contract %(code)s"),
                name=entry.status,
                code=code,
            )
        else:
            check.add(
                loc + ("status",),
                N_("there is no status %(name)r for tickets in triage"),
                name=entry.status,
            )
    if entry.assign is not None:
        _check_staff(check, known, loc + ("assign",), entry.assign)
    if entry.subcontractor is not None:
        _check_subcontractor(check, known, loc + ("subcontractor",), entry.subcontractor, code)


class _Seeder:
    def __init__(self, session: Session, lines: Lines, result: ApplyResult, now: datetime) -> None:
        self.session = session
        self.lines = lines
        self.result = result
        self.now = now
        self.users: dict[str, User] = {}

    def user(self, email: str) -> User:
        email = normalize_email(email)
        if email not in self.users:
            user = self.session.scalar(select(User).where(User.email == email))
            if user is None:
                raise InputError(N_("%(email)s is not a user"), email=email)
            self.users[email] = user
        return self.users[email]

    def requester(self, spec: TicketSpec) -> User:
        email = normalize_email(spec.requester)
        found = self.session.scalar(select(User).where(User.email == email))
        if found is not None:
            return found
        # An unknown sender, as the mail gateway would record one: a client user of no client.
        user = User(email=email, name=spec.requester_name, role="client", language="pl")
        self.session.add(user)
        self.result.record("users", "created")
        return user

    def coordinator(self, spec: TicketSpec) -> User:
        """Who hands a new ticket to a subcontractor: ``by``, else the first coordinator (or
        admin) by id, as someone with the right to assign must have done it."""
        if spec.by is not None:
            return self.user(spec.by)
        for role in ("coordinator", "admin"):
            found = self.session.scalar(
                select(User).where(User.role == role, User.active.is_(True)).order_by(User.id)
            )
            if found is not None:
                return found
        raise InputError(
            N_("handing a ticket to a subcontractor needs a coordinator or admin user")
        )

    def seed(self, spec: TicketSpec, loc: Loc) -> None:
        """Create one ticket; a service's refusal becomes a ConfigError on the step's line.

        The services check permissions (a technician comments only on tickets assigned to
        them, a client sets only ``client_can_set`` statuses), so a timeline that the product
        would refuse is refused here too, rather than seeded into a state nobody could reach.
        """
        session = self.session
        created = resolve_created(spec.created, self.now)
        contract = None
        if spec.contract is not None:
            contract = session.scalar(select(Contract).where(Contract.code == spec.contract))
        product = None
        if spec.product is not None:
            product = session.scalar(select(Product).where(Product.name == spec.product))
        with self._step(loc):
            ticket = open_ticket(
                session,
                NewTicket(
                    subject=spec.subject,
                    requester=self.requester(spec),
                    body=spec.body,
                    contract=contract,
                    ticket_type=spec.type,
                    assignee=self.user(spec.assignee) if spec.assignee else None,
                    product=product,
                    custom_fields=spec.custom_fields,
                    checked=False,
                    author=self.user(spec.by) if spec.by else None,
                    source=spec.source,
                    at=created,
                    ref=spec.ref,
                ),
            )
        if spec.subcontractor is not None:
            with self._step(loc + ("subcontractor",)):
                sub = self._subcontractor(spec.subcontractor)
                assign(
                    session,
                    ticket,
                    actor=self.coordinator(spec),
                    assignee=ticket.assignee,
                    subcontractor=sub,
                    at=created,
                )
        # Stable sort: entries at the same offset keep the order they are written in.
        entries = sorted(enumerate(spec.timeline), key=lambda e: parse_age(e[1].after))
        for j, entry in entries:
            at = created + parse_age(entry.after)
            if at > self.now:
                continue
            with self._step(loc + ("timeline", j)):
                self._replay(ticket, entry, at)
        self.result.record("tickets", "created")

    @contextmanager
    def _step(self, loc: Loc) -> Iterator[None]:
        """Report a service's refusal as a problem on the line of the step that caused it."""
        try:
            yield
        except InputError as exc:
            raise ConfigError([self.lines.refused(loc, exc)]) from None

    def _subcontractor(self, name: str) -> Subcontractor:
        sub = self.session.scalar(select(Subcontractor).where(Subcontractor.name == name))
        if sub is None:
            raise InputError(N_("there is no subcontractor %(name)r"), name=name)
        return sub

    def _replay(self, ticket: Ticket, entry: TimelineEntrySpec, at: datetime) -> None:
        by = self.user(entry.by)
        action = entry.action
        if action == "comment":
            add_comment(
                self.session,
                ticket,
                author=by,
                body=entry.comment or "",
                public=entry.public,
                at=at,
            )
        elif action == "status":
            change_status(
                self.session, ticket, entry.status or "", actor=by, at=at, note=entry.note
            )
        elif action == "assign":
            sub = self._subcontractor(entry.subcontractor) if entry.subcontractor else None
            assignee = self.user(entry.assign) if entry.assign else None
            assign(self.session, ticket, actor=by, assignee=assignee, subcontractor=sub, at=at)
        else:
            log_work(
                self.session, ticket, actor=by, minutes=entry.worklog or 0, note=entry.note, at=at
            )


def seed_tickets(
    session: Session, doc: ConfigDocument, lines: Lines, result: ApplyResult, now: datetime
) -> None:
    """Create the tickets whose ref is new, oldest first so numbers grow with age."""
    if not doc.tickets:
        return
    refs = [t.ref for t in doc.tickets]
    existing = set(session.scalars(select(Ticket.ref).where(Ticket.ref.in_(refs))))
    seeder = _Seeder(session, lines, result, now)
    pending = [(i, t) for i, t in enumerate(doc.tickets) if t.ref not in existing]
    pending.sort(key=lambda item: resolve_created(item[1].created, now))
    for _ in existing:
        result.record("tickets", "unchanged")
    for i, spec in pending:
        seeder.seed(spec, ("tickets", i))
