"""Ticket services: open a ticket, comment, change status, assign, log work, bulk changes.

Each function takes a ``Session``, checks what the acting user may do through
``core.access.permissions``, appends to the ticket's timeline (``core.tickets.timeline``),
keeps the SLA fields up to date through ``core.sla.clocks`` and never commits: the caller owns
the transaction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, inspect, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import (
    PASSIVE_NO_INITIALIZE,
    flag_modified,
    get_history,
    set_committed_value,
)

from core.access.permissions import AUDIENCES, can, can_view, settable_statuses, status_visible
from core.blobs import BlobStore
from core.clock import utcnow
from core.contracts import snapshot as config_snapshot
from core.contracts.models import Contract, CustomField, Status, TicketType
from core.directory.models import Product, Subcontractor, User
from core.errors import N_, BulkRefused, Conflict, Forbidden, InputError, NotFound
from core.mail import outbox
from core.notify import notifications
from core.orm import transaction_memo
from core.sla import clocks as sla_clock
from core.tickets import checklists, fields
from core.tickets.contacts import add_contacts
from core.tickets.models import Counter, Ticket, TicketEvent
from core.tickets.timeline import NewAttachment, append_event, attach

FIRST_TICKET_NUMBER = 1001

# The statuses a ticket uses when neither its contract nor the configuration defines any.
BUILTIN_STATUSES: tuple[dict[str, Any], ...] = (
    {"name": "New", "category": "new"},
    {"name": "In progress", "category": "open"},
    {"name": "Waiting for client", "category": "paused", "client_can_set": False},
    {"name": "Resolved", "category": "closed", "client_can_set": True},
)


# --- Lookups ---------------------------------------------------------------------------------


def get_ticket(session: Session, number: int, user: User | None = None) -> Ticket:
    """The ticket with this number, if it exists and ``user`` (when given) may see it.

    A ticket the user may not see is reported as not found, so numbers cannot be probed.
    """
    ticket = session.scalar(select(Ticket).where(Ticket.number == number))
    if ticket is None or (user is not None and not can_view(user, ticket)):
        raise NotFound(
            N_("ticket #%(number)s does not exist or is not visible to you"), number=number
        )
    return ticket


_DEFAULT_STATUSES = "default_statuses"
config_snapshot.DERIVED.add(_DEFAULT_STATUSES)


def ensure_default_statuses(session: Session) -> list[Status]:
    """The statuses of tickets without a contract, or under one with none of its own: read
    once per transaction (a batch of inbound mail opens many such tickets), again after the
    transaction changes the configuration."""
    memo = transaction_memo(session)
    known: list[Status] | None = memo.get(_DEFAULT_STATUSES)
    if known:
        return known
    with session.no_autoflush:  # statuses depend on no ticket row (see DEFER_FLUSH)
        defaults = list(
            session.scalars(
                select(Status).where(Status.contract_id.is_(None)).order_by(Status.position)
            )
        )
    if defaults:
        memo[_DEFAULT_STATUSES] = defaults
        return defaults
    for pos, spec in enumerate(BUILTIN_STATUSES):
        session.add(Status(contract_id=None, position=pos, **spec))
    session.flush()
    return list(
        session.scalars(
            select(Status).where(Status.contract_id.is_(None)).order_by(Status.position)
        )
    )


def statuses_for(session: Session, contract: Contract | None) -> list[Status]:
    """The statuses a ticket under this contract (or in triage, for None) may take."""
    if contract is not None and contract.statuses:
        return list(contract.statuses)
    return ensure_default_statuses(session)


def find_status(
    session: Session, ticket: Ticket, name: str, *, viewer: User | None = None
) -> Status:
    """The ticket's status of this name. For a ``viewer``, a status they may not see by name
    (``core.access.permissions.status_visible``) is answered like one that does not exist,
    and the sentence lists only the ones they see."""
    options = statuses_for(session, ticket.contract)
    if viewer is not None:
        options = [s for s in options if status_visible(viewer, s)]
    wanted = (name or "").strip().casefold()
    for status in options:
        if status.name.casefold() == wanted:
            return status
    names = ", ".join(s.name for s in options)
    # Whole sentences, so each language words "for contract X" and "for triage" its own way.
    if ticket.contract is not None:
        raise InputError(
            N_("there is no status %(name)r for contract %(code)s; choose one of: %(names)s"),
            name=name,
            code=ticket.contract.code,
            names=names,
        )
    raise InputError(
        N_("there is no status %(name)r for tickets in triage; choose one of: %(names)s"),
        name=name,
        names=names,
    )


# Set in ``session.info`` by a caller that opens many tickets in one transaction and flushes
# them together (mailgw.process.run_batch): open_ticket then leaves its rows pending, and the
# ticket's and its first event's ids are known after the caller's flush.
DEFER_FLUSH = "pulpit.defer_flush"


# Ticket numbers reserve_numbers took for this transaction, in order.
_RESERVED_NUMBERS = "reserved_ticket_numbers"


def next_number(session: Session) -> int:
    """The next ticket number: never shared by two tickets, even by concurrent writers.

    PostgreSQL takes it from ``ticket_number_seq`` (migration 0009), without a lock that
    would serialise ticket creation; a rolled-back transaction leaves a gap. SQLite bumps the
    counter row with one UPDATE (its writers are serialised anyway), gap-free.
    """
    reserved: deque[int] | None = transaction_memo(session).get(_RESERVED_NUMBERS)
    if reserved:
        return reserved.popleft()
    # Not after a flush: the number depends on no other row, and a batch of inbound mail
    # inserts its tickets in one flush (mailgw.process.run_batch).
    with session.no_autoflush:
        if session.get_bind().dialect.name == "postgresql":
            return int(session.scalar(sql_text("SELECT nextval('ticket_number_seq')")))
        value = session.execute(
            update(Counter)
            .where(Counter.name == "ticket")
            .values(value=Counter.value + 1)
            .returning(Counter.value)
        ).scalar()
        if value is None:
            session.execute(insert(Counter).values(name="ticket", value=FIRST_TICKET_NUMBER))
            value = FIRST_TICKET_NUMBER
    return int(value)


def reserve_numbers(session: Session, count: int) -> None:
    """Take ``count`` ticket numbers from ``ticket_number_seq`` in one statement, for the
    tickets this transaction is about to open; :func:`next_number` hands them out in order
    before it asks for more. A batch of inbound mail (``mailgw.process.run_batch``) asks once
    instead of once per new ticket.

    A number reserved and not used (a mail expected to open a ticket turned out to be a
    duplicate or a loop), like one taken by a transaction that rolls back, is a gap in the
    numbering: PostgreSQL never hands a sequence's value out twice. SQLite numbers gap-free,
    one ticket at a time: nothing is reserved there.
    """
    if count < 1 or session.get_bind().dialect.name != "postgresql":
        return
    with session.no_autoflush:
        taken = session.scalars(
            sql_text("SELECT nextval('ticket_number_seq') FROM generate_series(1, :n)"),
            {"n": count},
        ).all()
    reserved = transaction_memo(session).setdefault(_RESERVED_NUMBERS, deque())
    reserved.extend(sorted(int(n) for n in taken))


def choose_ticket_type(
    contract: Contract, subject: str, requested: str | None = None
) -> TicketType | None:
    """The named type, else the first whose subject keyword appears, else the default."""
    types = list(contract.ticket_types)
    if requested:
        for tt in types:
            if tt.name.casefold() == requested.strip().casefold():
                return tt
        names = ", ".join(t.name for t in types) or "none"
        raise InputError(
            N_("contract %(code)s has no ticket type %(requested)r; choose one of: %(names)s"),
            code=contract.code,
            requested=requested,
            names=names,
        )
    folded = subject.casefold()
    for tt in types:
        if any(kw.casefold() in folded for kw in tt.subject_keywords or []):
            return tt
    for tt in types:
        if tt.default:
            return tt
    return types[0] if types else None


def _field_words(defs: Sequence[CustomField], lang: str) -> str:
    return ", ".join(fields.label(f, lang) for f in defs)


# --- Services --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTicket:
    """What a new ticket is opened with: by mail, in the console, over the API or from YAML.

    ``author`` is who typed it (staff on the phone), default the requester. ``data`` is merged
    into the opening event's data (the mail gateway's subject, sender and full text). ``cc``:
    contacts copied on the ticket (``core.tickets.contacts``; the caller checked who may copy
    them), told of it like the requester. ``checked``: the author's right to set each custom
    field and the fields required on open are checked (not for mail, which cannot fill fields,
    nor for YAML seeds).
    """

    subject: str
    requester: User
    body: str | None = None
    body_html: str | None = None
    contract: Contract | None = None
    ticket_type: str | None = None
    assignee: User | None = None
    product: Product | None = None
    custom_fields: dict[str, Any] | None = None
    author: User | None = None
    source: str = "web"
    subcontractor: Subcontractor | None = None
    at: datetime | None = None
    message_id: str | None = None
    ref: str | None = None
    attachments: Sequence[NewAttachment] = ()
    data: dict[str, Any] | None = None
    cc: Sequence[User] = ()
    checked: bool = True


def open_ticket(session: Session, new: NewTicket, *, blobs: BlobStore | None = None) -> Ticket:
    """Open a ticket; its attachments go to ``blobs``. The caller commits."""
    requester, contract, assignee, author = new.requester, new.contract, new.assignee, new.author
    ticket_type, source, attachments, cc = new.ticket_type, new.source, new.attachments, new.cc
    subject = (new.subject or "").strip()
    if not subject:
        raise InputError(N_("a ticket needs a subject"))
    at = new.at or utcnow()
    if (
        contract is not None
        and contract.client_id != requester.client_id
        and requester.role == "client"
    ):
        if requester.client_id is not None:
            raise InputError(
                N_("%(email)s belongs to another client than contract %(code)s"),
                email=requester.email,
                code=contract.code,
            )
    client = contract.client if contract is not None else requester.client
    tt = choose_ticket_type(contract, subject, ticket_type) if contract is not None else None
    if ticket_type and contract is None:
        raise InputError(N_("a ticket type needs a contract"))
    statuses = statuses_for(session, contract)
    initial = next((s for s in statuses if s.category == "new"), statuses[0])
    if assignee is not None and not assignee.is_staff:
        raise InputError(
            N_("%(email)s is not staff and cannot be assigned tickets"), email=assignee.email
        )
    subcontractor = new.subcontractor
    if (
        subcontractor is not None
        and contract is not None
        and contract not in subcontractor.contracts
    ):
        raise InputError(
            N_("subcontractor %(name)s does not serve contract %(code)s"),
            name=subcontractor.name,
            code=contract.code,
        )
    # Checked for a person opening it (the console, the portal, the API); not for mail.
    checked = new.checked and source != "email" and author is not None
    lang = (author or requester).language or "en"
    values: dict[str, Any] = {}
    missing: list[CustomField] = []
    if checked or new.custom_fields:
        # Mail fills no field and asks for none: no query for the definitions on that path.
        defs = fields.definitions(session, contract)
        values = fields.update(
            defs,
            {},
            new.custom_fields,
            actor=author if checked else None,
            contract=contract,
            opening=True,
            lang=lang,
        ).values
        missing = fields.missing_fields(defs, contract, values, "open") if checked else []
    if missing:
        raise InputError(
            N_("fill in %(fields)s to open this ticket"), fields=_field_words(missing, lang)
        )
    if contract is not None:
        # Loaded now, before the new rows exist: the SLA clocks below read it, and loading it
        # later would autoflush the ticket's INSERT first and then UPDATE its deadlines.
        _ = contract.calendar
    ticket = Ticket(
        number=next_number(session),
        ref=new.ref,
        subject=subject[:500],
        client=client,
        contract=contract,
        ticket_type=tt,
        status=initial,
        status_category=initial.category,
        requester=requester,
        assignee=assignee,
        subcontractor=subcontractor,
        product=new.product,
        custom_fields=values,
        source=source,
        created_at=at,
        updated_at=at,
    )
    # Known empty: the notifications below would otherwise load it from the database once the
    # ticket is flushed (core.tickets.contacts.add_contacts expires it when it copies anyone).
    # Set as loaded, not through the constructor: its collection events were nearly half of
    # building the ticket (24 against 14 µs).
    set_committed_value(ticket, "cc", [])
    session.add(ticket)
    checklists.seed(ticket, at=at)
    event_type = "email_in" if source == "email" else "created"
    opened = append_event(
        session,
        ticket,
        event_type,
        author=author or requester,
        at=at,
        public=True,
        body_text=new.body,
        body_html=new.body_html,
        message_id=new.message_id,
        data={"subject": ticket.subject, "opened_ticket": True, **(new.data or {})},
    )
    if assignee is not None or subcontractor is not None:
        handed = {"assignee": assignee.email} if assignee is not None else {}
        if subcontractor is not None:
            handed["subcontractor"] = subcontractor.name
        append_event(session, ticket, "assignment", author=author, at=at, data=handed)
    # The deadlines before anything is flushed, so the ticket is inserted with them (storing an
    # attachment flushes).
    sla_clock.recompute(ticket, now=at)
    attach(session, opened, attachments, blobs)
    if not session.info.get(DEFER_FLUSH):
        session.flush()
    if cc:
        # Copied before the acknowledgement is queued, so they get it too (core.tickets.contacts).
        add_contacts(session, ticket, cc, actor=author or requester, at=at, check=False)
    notifications.on_ticket_opened(session, ticket, opened, author=author or requester)
    return ticket


def add_comment(
    session: Session,
    ticket: Ticket,
    *,
    author: User,
    body: str,
    public: bool = True,
    body_html: str | None = None,
    at: datetime | None = None,
    via_email: bool = False,
    message_id: str | None = None,
    attachments: Sequence[NewAttachment] = (),
    blobs: BlobStore | None = None,
    audience: str | None = None,
) -> TicketEvent:
    """A public comment or an internal note. A staff public reply meets the reaction clock.

    ``audience`` of a note (``core.access.permissions.AUDIENCES``): ``staff`` (the default:
    our own staff only) or ``subcontractor`` (also the users of the subcontractor the ticket
    is handed to). A subcontractor user's own note is always ``subcontractor``: they read what
    they wrote. Stored as ``data["audience"]`` on the note."""
    if not (body or "").strip() and not attachments:
        raise InputError(N_("the comment is empty"))
    action = "comment" if public else "note"
    if not can(author, action, ticket):
        if not public and author.role == "client":
            raise Forbidden(N_("clients cannot write internal notes"))
        raise Forbidden(N_("you may not comment on ticket #%(number)s"), number=ticket.number)
    data = None if public else {"audience": _note_audience(ticket, author, audience)}
    if public and audience not in (None, "", "public"):
        raise InputError(N_("an audience is chosen for internal notes only"))
    at = at or utcnow()
    if via_email:
        type_ = "email_in" if author.role == "client" else "email_out"
    else:
        type_ = "comment" if public else "note"
    event = append_event(
        session,
        ticket,
        type_,
        author=author,
        at=at,
        public=public,
        body_text=body,
        body_html=body_html,
        message_id=message_id,
        data=data,
        attachments=attachments,
        blobs=blobs,
    )
    _after_message(session, ticket, event, at)
    return event


def _after_message(session: Session, ticket: Ticket, event: TicketEvent, at: datetime) -> None:
    """What any message on a ticket sets off, whichever door it came through (console,
    portal, API, mail): the clocks (a staff public reply meets the reaction clock), the
    notifications, and a client's reply ending a pause that waits for them."""
    sla_clock.recompute(ticket, now=at)
    if not session.info.get(DEFER_FLUSH):
        session.flush()
    notifications.on_comment(session, ticket, event)
    resume_on_client_reply(session, ticket, event)


def _note_audience(ticket: Ticket, author: User, audience: str | None) -> str:
    if author.role == "subcontractor":
        return "subcontractor"
    chosen = (audience or "staff").strip().lower()
    if chosen not in AUDIENCES:
        raise InputError(
            N_("the audience of a note is one of: %(choices)s, not %(audience)r"),
            choices=", ".join(AUDIENCES),
            audience=audience,
        )
    if chosen == "subcontractor" and ticket.subcontractor_id is None:
        raise InputError(
            N_("ticket #%(number)s is handed to no subcontractor; a note for one has no reader"),
            number=ticket.number,
        )
    return chosen


def change_status(
    session: Session,
    ticket: Ticket,
    status_name: str,
    *,
    actor: User,
    at: datetime | None = None,
    note: str | None = None,
) -> TicketEvent | None:
    """Move the ticket to a status of its contract, as ``actor`` may. None if nothing changed."""
    if not can(actor, "status", ticket):
        raise Forbidden(
            N_("you may not change the status of ticket #%(number)s"), number=ticket.number
        )
    status = find_status(session, ticket, status_name, viewer=actor)
    allowed = settable_statuses(actor, statuses_for(session, ticket.contract))
    if status not in allowed:
        raise Forbidden(
            N_("you may not set ticket #%(number)s to %(status)r"),
            number=ticket.number,
            status=status.name,
        )
    return _apply_status(session, ticket, status, actor=actor, at=at or utcnow(), note=note)


def close_blockers(session: Session, ticket: Ticket, lang: str = "en") -> InputError | None:
    """Why the ticket cannot be closed now (409): required fields empty, required checklist
    items unticked; None when it can."""
    defs = fields.definitions(session, ticket.contract)
    missing = fields.missing_fields(defs, ticket.contract, ticket.custom_fields, "close")
    if missing:
        return Conflict(
            N_("ticket #%(number)s cannot be closed before these fields are filled in: %(fields)s"),
            number=ticket.number,
            fields=_field_words(missing, lang),
        )
    unticked = checklists.unticked_required(ticket)
    if unticked:
        return Conflict(
            N_(
                "ticket #%(number)s cannot be closed before these checklist items are ticked: "
                "%(items)s"
            ),
            number=ticket.number,
            items=", ".join(i.text for i in unticked),
        )
    return None


def _apply_status(
    session: Session,
    ticket: Ticket,
    status: Status,
    *,
    actor: User | None,
    at: datetime,
    note: str | None = None,
    reason: dict[str, Any] | None = None,
    later: list[tuple[Ticket, TicketEvent, Status, Status]] | None = None,
) -> TicketEvent | None:
    """``later``: a bulk change's list, which gets (ticket, event, old, new) to flush and
    notify once for all the tickets, instead of here."""
    if status.id == ticket.status_id:
        return None
    if status.category == "closed" and ticket.status_category != "closed":
        blocker = close_blockers(session, ticket, (actor.language if actor else None) or "en")
        if blocker is not None:
            raise blocker
    old = ticket.status
    ticket.status = status
    ticket.status_category = status.category
    event = append_event(
        session,
        ticket,
        "status",
        author=actor,
        at=at,
        public=status.visible_to_client,
        body_text=note,
        data={
            "from": old.name,
            "to": status.name,
            "from_category": old.category,
            "to_category": status.category,
            **(reason or {}),
        },
    )
    if status.category == "closed":
        ticket.resolved_at = at
    elif old.category == "closed":
        ticket.resolved_at = None
    sla_clock.recompute(ticket, now=at)
    if later is not None:
        later.append((ticket, event, old, status))
        return event
    session.flush()
    notifications.on_status_changed(session, ticket, event, old=old, new=status)
    return event


def bulk_change_status(
    session: Session,
    numbers: Sequence[int],
    status_name: str,
    *,
    actor: User,
    at: datetime | None = None,
) -> list[Ticket]:
    """Change many tickets at once: all or nothing, with a reason for each refused ticket."""
    if not numbers:
        raise InputError(N_("choose at least one ticket"))
    if not can(actor, "bulk"):
        raise Forbidden(N_("only coordinators and admins change tickets in bulk"))
    at = at or utcnow()
    unique = list(dict.fromkeys(int(n) for n in numbers))
    # What each change reads (the status, the SLA's calendar, targets and timeline, who is
    # told) comes for all the tickets in a few queries, not a few per ticket (issue 16).
    loads = (
        selectinload(Ticket.status),
        selectinload(Ticket.contract).selectinload(Contract.calendar),
        selectinload(Ticket.contract).selectinload(Contract.statuses),
        selectinload(Ticket.client),
        selectinload(Ticket.ticket_type),
        selectinload(Ticket.requester),
        selectinload(Ticket.cc),
        selectinload(Ticket.events).selectinload(TicketEvent.author),
    )
    found = {
        t.number: t
        for t in session.scalars(select(Ticket).where(Ticket.number.in_(unique)).options(*loads))
    }
    reasons: dict[int, InputError] = {}
    plan: list[tuple[Ticket, Status]] = []
    for number in unique:
        ticket = found.get(number)
        if ticket is None or not can_view(actor, ticket):
            reasons[number] = NotFound(
                N_("ticket #%(number)s does not exist or is not visible to you"), number=number
            )
            continue
        try:
            status = find_status(session, ticket, status_name)
        except InputError as exc:
            reasons[number] = exc
            continue
        if status.category == "closed" and ticket.status_category != "closed":
            blocker = close_blockers(session, ticket, actor.language or "en")
            if blocker is not None:
                reasons[number] = blocker
                continue
        plan.append((ticket, status))
    if reasons:
        raise BulkRefused(
            N_("no ticket was changed: %(refused)s of %(total)s cannot take %(status)r"),
            reasons,
            refused=len(reasons),
            total=len(unique),
            status=status_name,
        )
    later: list[tuple[Ticket, TicketEvent, Status, Status]] = []
    for ticket, status in plan:
        _apply_status(session, ticket, status, actor=actor, at=at, later=later)
    _same_columns([t for t, _ in plan])
    # One flush writes the events and the tickets in batches (not two statements a ticket).
    session.flush()
    # The notifications go to the outbox together: loop protection, threads and Reply-To
    # asked once for all of them, one INSERT of every mail (core.mail.outbox.batch).
    with outbox.batch(session):
        for ticket, event, old, new in later:
            notifications.on_status_changed(session, ticket, event, old=old, new=new)
    return [t for t, _ in plan]


def _same_columns(tickets: Sequence[Ticket]) -> None:
    """Have the flush write the same columns of every ticket (the union of those that changed).

    The unit of work sends one executemany UPDATE for consecutive rows with the same set of
    changed columns and one statement per row otherwise; the SLA recompute changes a
    different few columns of each ticket, which cost one UPDATE per ticket (686 of 1,000 in
    bench/list_tickets.py). The extra columns get the value this transaction read, and they
    are only the status and SLA columns this change and the recompute derive from what it
    read for every ticket anyway.
    """
    states = [inspect(t) for t in tickets]
    changed: list[set[str]] = []
    for state in states:
        columns = state.mapper.columns
        changed.append(
            {
                key
                for key in state.committed_state
                if key in columns
                and get_history(state.obj(), key, passive=PASSIVE_NO_INITIALIZE).has_changes()
            }
        )
    union = set().union(*changed)
    for state, keys in zip(states, changed, strict=True):
        for key in union - keys:
            if key in state.dict:  # loaded: writing it again needs its value
                flag_modified(state.obj(), key)


def assign(
    session: Session,
    ticket: Ticket,
    *,
    actor: User,
    assignee: User | None,
    subcontractor: Subcontractor | None,
    at: datetime | None = None,
    allow_outside_contract: bool = False,
) -> TicketEvent | None:
    """Set the assignee and the subcontractor the work is handed to (None clears).

    A subcontractor not serving the ticket's contract is refused with
    :class:`core.tickets.handoff.OutsideContract` unless ``allow_outside_contract`` (someone
    confirmed it); the event's ``outside_contract`` records which it was."""
    from core.tickets.handoff import check_serves

    # Changing the assignee needs "assign", changing the subcontractor "hand_over" (a custom
    # role may have one without the other); saving nothing new needs either.
    moves_assignee = (assignee.id if assignee else None) != ticket.assignee_id
    moves_work = (subcontractor.id if subcontractor else None) != ticket.subcontractor_id
    may_assign, may_hand = can(actor, "assign", ticket), can(actor, "hand_over", ticket)
    if (moves_assignee or not (moves_work or may_hand)) and not may_assign:
        raise Forbidden(N_("you may not assign ticket #%(number)s"), number=ticket.number)
    if assignee is not None and not assignee.is_staff:
        raise InputError(
            N_("%(email)s is not staff and cannot be assigned tickets"), email=assignee.email
        )
    outside = (
        subcontractor is not None
        and ticket.contract is not None
        and ticket.contract not in subcontractor.contracts
    )
    # Asked only when the hand-off changes: a ticket already with one (confirmed then) keeps
    # it while its assignee changes.
    if moves_work and not may_hand:
        raise Forbidden(
            N_("you may not hand ticket #%(number)s to a subcontractor"), number=ticket.number
        )
    if outside and not allow_outside_contract and subcontractor is not None:
        if subcontractor.id != ticket.subcontractor_id:
            check_serves(ticket, subcontractor)
    if ticket.assignee_id == (assignee.id if assignee else None) and ticket.subcontractor_id == (
        subcontractor.id if subcontractor else None
    ):
        return None
    at = at or utcnow()
    data = {
        "from_assignee": ticket.assignee.email if ticket.assignee else None,
        "assignee": assignee.email if assignee else None,
        "from_subcontractor": ticket.subcontractor.name if ticket.subcontractor else None,
        "subcontractor": subcontractor.name if subcontractor else None,
        "outside_contract": outside,
    }
    ticket.assignee = assignee
    ticket.subcontractor = subcontractor
    event = append_event(session, ticket, "assignment", author=actor, at=at, data=data)
    session.flush()
    notifications.on_assigned(session, ticket, event, actor=actor)
    return event


def log_work(
    session: Session,
    ticket: Ticket,
    *,
    actor: User,
    minutes: int,
    note: str | None = None,
    at: datetime | None = None,
) -> TicketEvent:
    """Log ``minutes`` of ``actor``'s work ending now (or at ``at``); the timeline event.
    The whole entry (start and end, billable, work type) is ``core.worklog.services``'."""
    from core.worklog.services import Work
    from core.worklog.services import log_work as write_entry

    entry = write_entry(
        session, ticket, actor=actor, work=Work(minutes=minutes, description=note), at=at
    )
    event = session.get(TicketEvent, entry.event_id)
    assert event is not None
    return event


def set_fields(
    session: Session,
    ticket: Ticket,
    *,
    actor: User,
    custom_fields: dict[str, Any],
    at: datetime | None = None,
) -> TicketEvent | None:
    """Set custom field values as ``actor`` may (:mod:`core.tickets.fields`: 403 for a field
    they may not edit, 400 for a value refused); values its dependencies no longer allow are
    cleared. One ``field`` event with each change, by label. None if nothing changed."""
    if not can_view(actor, ticket):
        raise NotFound(
            N_("ticket #%(number)s does not exist or is not visible to you"), number=ticket.number
        )
    defs = fields.definitions(session, ticket.contract)
    result = fields.update(
        defs,
        ticket.custom_fields,
        custom_fields,
        actor=actor,
        contract=ticket.contract,
        lang=actor.language or "en",
    )
    if not result.changes:
        return None
    ticket.custom_fields = result.values
    by_name = {f.name: f for f in defs}
    data: dict[str, Any] = {
        "changes": result.changes,
        "labels": {name: fields.labels_of(by_name[name]) for name in result.changes},
    }
    if result.cleared:
        data["cleared"] = result.cleared
    event = append_event(session, ticket, "field", author=actor, at=at or utcnow(), data=data)
    session.flush()
    return event


def change_type(
    session: Session,
    ticket: Ticket,
    type_name: str,
    *,
    actor: User,
    at: datetime | None = None,
    add_checklist: bool = False,
) -> TicketEvent | None:
    """Re-type a ticket; the SLA clocks are re-targeted from creation (core.sla.clocks).
    ``add_checklist``: the new type's checklist items are added (someone was asked)."""
    if not can(actor, "fields", ticket):
        raise Forbidden(
            N_("you may not change the type of ticket #%(number)s"), number=ticket.number
        )
    if ticket.contract is None:
        raise InputError(N_("a ticket in triage has no types; choose its contract first"))
    if not can_view(actor, ticket):
        raise NotFound(
            N_("ticket #%(number)s does not exist or is not visible to you"), number=ticket.number
        )
    new = choose_ticket_type(ticket.contract, ticket.subject, type_name)
    if new is None or new.id == ticket.ticket_type_id:
        return None
    at = at or utcnow()
    event = append_event(
        session,
        ticket,
        "field",
        author=actor,
        at=at,
        data={
            "changes": {
                "ticket_type": [ticket.ticket_type.name if ticket.ticket_type else None, new.name]
            }
        },
    )
    ticket.ticket_type = new
    sla_clock.recompute(ticket, now=at)
    session.flush()
    if add_checklist:
        checklists.add_type_items(session, ticket, actor=actor, at=at)
    return event


def change_contract(
    session: Session,
    ticket: Ticket,
    contract: Contract,
    *,
    actor: User,
    ticket_type: str | None = None,
    at: datetime | None = None,
) -> TicketEvent | None:
    """Move a ticket (often out of triage) to a contract: its client, a type of that contract
    and the status of the same category follow; the clocks are re-targeted from creation. A
    ticket without a checklist gets its new type's (as if it had been opened with it)."""
    if not can(actor, "edit", ticket):
        raise Forbidden(
            N_("you may not change the contract of ticket #%(number)s"), number=ticket.number
        )
    if contract.id == ticket.contract_id and not ticket_type:
        return None
    at = at or utcnow()
    old_code = ticket.contract.code if ticket.contract else None
    ticket.contract = contract
    ticket.client = contract.client
    ticket.ticket_type = choose_ticket_type(contract, ticket.subject, ticket_type)
    statuses = statuses_for(session, contract)
    if ticket.status not in statuses:
        same = [s for s in statuses if s.category == ticket.status_category]
        ticket.status = same[0] if same else statuses[0]
        ticket.status_category = ticket.status.category
    event = append_event(
        session,
        ticket,
        "contract",
        author=actor,
        at=at,
        data={
            "from": old_code,
            "to": contract.code,
            "ticket_type": ticket.ticket_type.name if ticket.ticket_type else None,
        },
    )
    sla_clock.recompute(ticket, now=at)
    session.flush()
    if not ticket.checklist:
        checklists.add_type_items(session, ticket, actor=actor, at=at)
    return event


# --- Mail gateway ----------------------------------------------------------------------------


def record_email(
    session: Session,
    ticket: Ticket,
    *,
    author: User | None,
    body: str | None,
    public: bool,
    at: datetime,
    body_html: str | None = None,
    message_id: str | None = None,
    data: dict[str, Any] | None = None,
    attachments: Sequence[NewAttachment] = (),
    blobs: BlobStore | None = None,
) -> TicketEvent:
    """Record a mail that came in on a ticket (type ``email_in``), as the mail gateway does.

    The gateway decides who may write to a thread by its own rule (``mailgw.thread_match``:
    for clients wider than the console's view scope, a colleague of the requester; staff by
    the API's scope, and only when the mail is proven theirs: ``mailgw.trust``), so no
    ``can()`` check here. A staff member's public mail meets the reaction clock
    (``core.sla.clocks.first_response`` counts public ``email_in`` from responders).
    """
    event = append_event(
        session,
        ticket,
        "email_in",
        author=author,
        at=at,
        public=public,
        body_text=body,
        body_html=body_html,
        message_id=message_id,
        data=data,
        attachments=attachments,
        blobs=blobs,
    )
    _after_message(session, ticket, event, at)
    return event


def reopen(
    session: Session, ticket: Ticket, *, actor: User | None, at: datetime
) -> TicketEvent | None:
    """Move a closed ticket to the first ``open`` status of its contract (a follow-up by mail);
    the sender's mail is the reason, whatever statuses they could set in the portal."""
    statuses = statuses_for(session, ticket.contract)
    target = next((s for s in statuses if s.category == "open"), None)
    if target is None:
        target = next((s for s in statuses if s.category == "new"), statuses[0])
    return _apply_status(session, ticket, target, actor=actor, at=at)


def resume_on_client_reply(
    session: Session, ticket: Ticket, reply: TicketEvent
) -> TicketEvent | None:
    """A client's public reply ends a pause that waits for the client: the ticket moves back
    to an open status and the SLA clock runs again (docs/sla.md). None if nothing changed.

    Called for every comment and mail recorded (``add_comment`` from the portal and the API,
    ``record_email`` from the gateway). Only a public reply by a client user (the requester,
    a contact of the client, a copied contact) counts; staff and subcontractors set statuses
    themselves, and internal notes and unverified mail never act. The status decides
    (``Status.resumes_on_client_reply``). The target is the status the ticket had before its
    pause, if it is still one of its contract's ``open`` statuses; else the first ``open``
    status; else the first ``new`` one. The change is an ordinary status change authored by
    the client, marked ``reason: client_reply``, so clocks and notifications behave exactly
    as for a change made by hand.
    """
    author = reply.author
    if author is None or author.role != "client" or not reply.public:
        return None
    if ticket.status is None or not ticket.status.resumes_on_client_reply:
        return None
    statuses = statuses_for(session, ticket.contract)
    before = _status_before_pause(ticket)
    target = next(
        (s for s in statuses if s.category == "open" and s.name.casefold() == before), None
    )
    target = target or next((s for s in statuses if s.category == "open"), None)
    target = target or next((s for s in statuses if s.category == "new"), None)
    if target is None:
        return None
    return _apply_status(
        session,
        ticket,
        target,
        actor=author,
        at=reply.at,
        reason={"reason": "client_reply", "reply_event": reply.id},
    )


def _status_before_pause(ticket: Ticket) -> str | None:
    """The casefolded name of the last status the ticket had outside a pause."""
    before: str | None = None
    # The clocks' timeline holds every status change without loading every comment.
    for e in (e for e in sla_clock.timeline(ticket) if e.type == "status"):
        for name, category in (
            (e.data.get("from"), e.data.get("from_category")),
            (e.data.get("to"), e.data.get("to_category")),
        ):
            if name and category != "paused":
                before = str(name).casefold()
    return before
