"""Merging two tickets (the client wrote twice) and splitting one mail out into a new ticket.

Merge (:func:`merge_tickets`, ``POST /api/v1/tickets/{n}/merge`` with ``{"into": N}``, the
console's "Merge into…") moves the conversation of a *source* ticket to a *target*:

- **Who**: staff who may change both tickets (:func:`may_merge`: admins, coordinators, and a
  technician on the tickets they see, i.e. assigned to them or in their queue), as in Zammad
  (agents with write access to both). Never a client or a subcontractor. A ticket the user may
  not see is "not found", as everywhere.
- **Which**: not the same ticket; a source not merged already; the target is followed along its
  ``merged_into`` chain to its end (merging into a ticket that was itself merged merges into
  where that one went), and a chain leading back to the source is refused (a loop). Tickets of
  **different clients are refused** (a service desk bills per client and contract; Zammad
  would merge anything): and a source under one contract is not merged into a ticket of another
  contract (move it to that contract first, which re-targets its SLA); a source in triage (no
  contract) may be merged into any ticket of its client (or any ticket when it has no client
  yet: an unreadable sender).
- **What moves**: the conversation, each event keeping its ``at``: received and sent mail,
  comments, internal notes, the opening message (a ``created`` event with text or files), the
  work log's lines, with their attachments (files hang off events). The work log entries and
  running timers move too, and both tickets' worked/billable minutes are recounted. The source
  keeps its own history (status changes, assignments, SLA warnings, field and contract
  changes): the SLA clocks are derived from it, and the target's must stay its own.
  Each moved event carries ``data["merged_from"]`` (the source's number).
- **Contacts**: the source's requester (when not the target's) and its copied contacts are
  copied on the target (those the target's client allows; nobody twice), recorded as a ``cc``
  event on the target.
- **Fields**: the target's empty custom fields are filled from the source's values (one
  ``field`` event on the target); a value the target's form refuses is left out.
- **Checklist**: stays on the source (it was that ticket's type's; the target has its own).
- **The source** is closed with its contract's first ``closed`` status (the instance's when it
  has no contract), even when its required fields or checklist would hold a hand-made closing
  back, and points to the target (``merged_into_id``). The status change is an ordinary
  ``status`` event (``reason: merged``) and its SLA clocks stop as on any closing, but no mail
  goes to the client about it (Zammad sends none for a merge).
- **The timeline**: a public ``merge`` line on both: "merged into #N" on the source and
  "#M merged into this ticket" on the target, with who did it. The target's clocks are
  recomputed (a staff reply moved over may meet its reaction clock).
- **Mail**: a mail threaded to the source, by ``In-Reply-To``/``References`` of a mail we sent
  about it, its subject tag ``[#M]`` or its signed reply address, lands in the end of the chain
  (:func:`final_ticket`, called by ``mailgw.thread_match``); ``References`` to a moved mail find
  the target already (the event moved).

Split (:func:`split_event`, ``POST /api/v1/tickets/{n}/split`` with ``{"event": id}``, the
console's "Split into a new ticket" on a received mail) makes one received mail (``email_in``)
the first event of a new ticket: same contract (triage when the mail's author is a contact of
another client), the mail's author as requester, the mail's subject without ``Re:`` and tags,
its type by the subject's keywords, the same assignee, opened at the mail's time (the request
arrived then: its SLA clocks count from it). Its attachments go with it; mail answering it
afterwards threads to the new ticket (its Message-ID is on the moved event). Both timelines get
an internal ``split`` line. The mail that opened the ticket (unless it came over with a merge)
and an unverified mail (no author) are not split out. No acknowledgement is mailed.

Nothing here commits; the caller owns the transaction.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.access.permissions import can, can_view
from core.clock import utcnow
from core.contracts.models import Status
from core.directory.models import User
from core.errors import N_, Conflict, Forbidden, InputError, NotFound
from core.mail.models import InboundMessage
from core.sla import clocks as sla_clock
from core.tickets import checklists, fields
from core.tickets.contacts import add_contacts, copied, refusal
from core.tickets.models import Ticket, TicketEvent
from core.tickets.services import choose_ticket_type, next_number, statuses_for
from core.tickets.timeline import append_event
from core.worklog.models import WorkLogEntry, WorkTimer
from core.worklog.services import recount

# The events that make up a ticket's conversation and move on a merge; the rest of the
# timeline (status, assignment, sla, field, contract, cc, requester, checklist) stays: the SLA
# clocks and the audit trail of the source are derived from it.
MOVED_TYPES = frozenset({"email_in", "email_out", "comment", "note", "worklog", "attachment"})

# How long a merged_into chain may be followed (a guard: merges never make a loop).
MAX_CHAIN = 100

# "Re:", "AW:", "Odp:", "Fwd:", "PD:" ... and ticket tags [#1042], [ACME#1042] in a subject.
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|odp|fw|fwd|pd|wg|sv|vs)\s*(?:\[\d+\])?\s*:\s*)+", re.I)
_TAG = re.compile(r"\s*\[[\w-]{0,32}#\d{1,9}\]\s*")


# --- Following a merge ------------------------------------------------------------------------


def final_ticket(session: Session, ticket: Ticket) -> Ticket:
    """Where ``ticket``'s mail goes: itself, or the end of its ``merged_into`` chain."""
    seen = {ticket.id}
    current = ticket
    for _ in range(MAX_CHAIN):
        if current.merged_into_id is None:
            return current
        nxt = session.get(Ticket, current.merged_into_id)
        if nxt is None or nxt.id in seen:
            return current
        seen.add(nxt.id)
        current = nxt
    return current


def merged_from(session: Session, ticket: Ticket) -> list[int]:
    """The numbers of the tickets merged into this one (directly), oldest number first."""
    return list(
        session.scalars(
            select(Ticket.number).where(Ticket.merged_into_id == ticket.id).order_by(Ticket.number)
        )
    )


# --- Who may ----------------------------------------------------------------------------------


def may_merge(user: User, ticket: Ticket) -> bool:
    """May ``user`` merge this ticket (as source or target) or split a mail out of it? Staff
    who may change its status (admins, coordinators, its technician), never a client or a
    subcontractor."""
    return bool(user.active) and user.is_staff and can(user, "status", ticket)


def _check_may(user: User, ticket: Ticket) -> None:
    if not can_view(user, ticket):
        raise NotFound(
            N_("ticket #%(number)s does not exist or is not visible to you"), number=ticket.number
        )
    if not may_merge(user, ticket):
        raise Forbidden(N_("you may not merge ticket #%(number)s"), number=ticket.number)


# --- Merge ------------------------------------------------------------------------------------


def merge_target(session: Session, source: Ticket, into: int, *, actor: User) -> Ticket:
    """The ticket ``source`` would be merged into when asked for #``into``, after every check
    (see the module's rules); raises the refusal. Used for the console's confirmation too."""
    _check_may(actor, source)
    if source.merged_into_id is not None:
        already = final_ticket(session, source)
        raise Conflict(
            N_("ticket #%(number)s is already merged into #%(into)s"),
            number=source.number,
            into=already.number,
        )
    if into == source.number:
        raise InputError(
            N_("ticket #%(number)s cannot be merged into itself"), number=source.number
        )
    named = session.scalar(select(Ticket).where(Ticket.number == into))
    if named is None or not can_view(actor, named):
        raise NotFound(
            N_("ticket #%(number)s does not exist or is not visible to you"), number=into
        )
    target = final_ticket(session, named)
    if target.id == source.id:
        raise Conflict(
            N_(
                "ticket #%(into)s is merged into #%(number)s already: merging back would make a loop"
            ),
            into=into,
            number=source.number,
        )
    _check_may(actor, target)
    if source.client_id is not None and source.client_id != target.client_id:
        raise InputError(
            N_(
                "ticket #%(number)s is for %(client)s and #%(into)s for %(other)s: tickets of "
                "different clients are not merged"
            ),
            number=source.number,
            client=source.client.name if source.client else "-",
            into=target.number,
            other=target.client.name if target.client else "-",
        )
    if source.contract_id is not None and source.contract_id != target.contract_id:
        raise InputError(
            N_(
                "ticket #%(number)s is under contract %(code)s and #%(into)s under %(other)s: "
                "move one to the other's contract first"
            ),
            number=source.number,
            code=source.contract.code if source.contract else "-",
            into=target.number,
            other=target.contract.code if target.contract else "-",
        )
    return target


def _lock(session: Session, *tickets: Ticket) -> None:
    """Lock both rows (PostgreSQL; SQLite's writers are serialised) and read them again, so
    two people merging #1 into #2 and #2 into #1 at once cannot make a loop."""
    if session.get_bind().dialect.name != "postgresql":
        return
    ids = sorted(t.id for t in tickets)
    session.execute(
        select(Ticket)
        .where(Ticket.id.in_(ids))
        .order_by(Ticket.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()


def _closed_status(session: Session, ticket: Ticket) -> Status:
    closed = [s for s in statuses_for(session, ticket.contract) if s.category == "closed"]
    if not closed:
        raise InputError(
            N_("ticket #%(number)s has no closed status to be closed with"),
            number=ticket.number,
        )
    return closed[0]


def _close_merged(
    session: Session, source: Ticket, target: Ticket, *, actor: User, at: datetime
) -> TicketEvent | None:
    """Close the source as a status change closes a ticket (its event, ``resolved_at``, the
    clocks), without the checks of a hand-made closing and without telling the client."""
    status = _closed_status(session, source)
    if status.id == source.status_id:
        return None
    old = source.status
    source.status = status
    source.status_category = status.category
    event = append_event(
        session,
        source,
        "status",
        author=actor,
        at=at,
        public=status.visible_to_client,
        data={
            "from": old.name,
            "to": status.name,
            "from_category": old.category,
            "to_category": status.category,
            "reason": "merged",
            "merged_into": target.number,
        },
    )
    if old.category != "closed":
        source.resolved_at = at
    return event


def _fill_fields(
    session: Session, source: Ticket, target: Ticket, *, actor: User, at: datetime
) -> TicketEvent | None:
    """Fill the target's empty custom fields from the source's values; one ``field`` event."""
    theirs = dict(source.custom_fields or {})
    if not theirs:
        return None
    defs = fields.definitions(session, target.contract)
    by_name = {f.name: f for f in defs}
    values = dict(target.custom_fields or {})
    changes: dict[str, Any] = {}
    for f in defs:
        if f.name not in theirs or not fields.is_empty(values.get(f.name)):
            continue
        try:
            result = fields.update(defs, values, {f.name: theirs[f.name]}, actor=None)
        except InputError:
            continue  # the target's form refuses it (a dependency): left out
        if result.cleared:
            continue
        values = result.values
        changes.update(result.changes)
    if not changes:
        return None
    target.custom_fields = values
    return append_event(
        session,
        target,
        "field",
        author=actor,
        at=at,
        data={
            "changes": changes,
            "labels": {name: fields.labels_of(by_name[name]) for name in changes},
            "merged_from": source.number,
        },
    )


def _move_events(session: Session, source: Ticket, target: Ticket) -> list[TicketEvent]:
    moved: list[TicketEvent] = []
    for event in list(source.events):
        has_text = bool((event.body_text or "").strip() or event.body_html or event.attachments)
        if event.type in MOVED_TYPES or (event.type == "created" and has_text):
            event.ticket = target
            event.data = {**(event.data or {}), "merged_from": source.number}
            moved.append(event)
    session.flush()
    ids = [e.id for e in moved]
    if ids:
        # The original mail (.eml) is found by its event's ticket.
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.event_id.in_(ids))
            .values(ticket_id=target.id)
        )
    return moved


def merge_tickets(
    session: Session,
    source: Ticket,
    into: int,
    *,
    actor: User,
    at: datetime | None = None,
) -> Ticket:
    """Merge ``source`` into #``into`` (or the end of its chain) as ``actor``: the module's
    rules. Returns the target."""
    target = merge_target(session, source, into, actor=actor)
    _lock(session, source, target)
    # Read again under the lock: someone may have merged either meanwhile.
    target = merge_target(session, source, into, actor=actor)
    at = at or utcnow()
    moved = _move_events(session, source, target)
    # Work log: entries and running timers follow, both tickets' sums are recounted.
    session.execute(
        update(WorkLogEntry).where(WorkLogEntry.ticket_id == source.id).values(ticket_id=target.id)
    )
    session.execute(
        update(WorkTimer).where(WorkTimer.ticket_id == source.id).values(ticket_id=target.id)
    )
    recount(session, source)
    recount(session, target)
    # Contacts: the source's requester and copied contacts, as the target's client allows.
    people = [source.requester, *copied(source)]
    wanted: list[User] = []
    for person in people:
        if person.id == target.requester_id or person in wanted:
            continue
        if refusal(person, target) is None:
            wanted.append(person)
    if wanted:
        add_contacts(session, target, wanted, actor=actor, at=at, check=False)
    _fill_fields(session, source, target, actor=actor, at=at)
    _close_merged(session, source, target, actor=actor, at=at)
    source.merged_into = target
    append_event(
        session,
        source,
        "merge",
        author=actor,
        at=at,
        public=True,
        data={"merged_into": target.number, "moved": len(moved)},
    )
    append_event(
        session,
        target,
        "merge",
        author=actor,
        at=at,
        public=True,
        data={"merged_from": source.number, "moved": len(moved)},
    )
    if at > source.updated_at:
        source.updated_at = at
    sla_clock.recompute(source, now=at)
    sla_clock.recompute(target, now=at)
    session.flush()
    return target


# --- Split ------------------------------------------------------------------------------------


def split_subject(subject: str) -> str:
    """A mail's subject as a ticket's: without reply prefixes and ticket tags."""
    text = _TAG.sub(" ", subject or "")
    text = _REPLY_PREFIX.sub("", text)
    return " ".join(text.split())


def split_event(
    session: Session,
    ticket: Ticket,
    event_id: int,
    *,
    actor: User,
    at: datetime | None = None,
) -> Ticket:
    """Make the received mail ``event_id`` of ``ticket`` the first event of a new ticket (the
    module's rules); returns the new ticket."""
    _check_may(actor, ticket)
    event = session.get(TicketEvent, event_id)
    if event is None or event.ticket_id != ticket.id:
        raise NotFound(
            N_("ticket #%(number)s has no event %(event)s"), number=ticket.number, event=event_id
        )
    if event.type != "email_in":
        raise InputError(N_("only a received e-mail can be split into a new ticket"))
    data = event.data or {}
    if data.get("opened_ticket") and not data.get("merged_from"):
        raise InputError(
            N_("the e-mail that opened ticket #%(number)s cannot be split out of it"),
            number=ticket.number,
        )
    author = event.author
    if author is None:
        raise InputError(
            N_("an unverified e-mail has no sender to open a ticket for; it cannot be split out")
        )
    at = at or utcnow()
    contract = ticket.contract
    if author.role == "client" and author.client_id is not None:
        if author.client_id != ticket.client_id:
            contract = None  # a contact of another client: triage sorts it out
    client = contract.client if contract is not None else (author.client or ticket.client)
    subject = split_subject(str((event.data or {}).get("subject") or "")) or ticket.subject
    statuses = statuses_for(session, contract)
    initial = next((s for s in statuses if s.category == "new"), statuses[0])
    if contract is not None:
        _ = contract.calendar  # loaded before the new rows exist (see open_ticket)
    new = Ticket(
        number=next_number(session),
        subject=subject[:500],
        client=client,
        contract=contract,
        ticket_type=choose_ticket_type(contract, subject) if contract is not None else None,
        status=initial,
        status_category=initial.category,
        requester=author,
        assignee=ticket.assignee,
        product=ticket.product,
        custom_fields={},
        cc=[],
        source=ticket.source if ticket.source == "email" else "email",
        created_at=event.at,
        updated_at=at,
    )
    session.add(new)
    checklists.seed(new, at=at)
    session.flush()
    event.ticket = new
    event.data = {**(event.data or {}), "opened_ticket": True, "split_from": ticket.number}
    session.flush()
    session.execute(
        update(InboundMessage).where(InboundMessage.event_id == event.id).values(ticket_id=new.id)
    )
    append_event(
        session,
        ticket,
        "split",
        author=actor,
        at=at,
        data={"split_into": new.number, "event": event.id},
    )
    append_event(
        session,
        new,
        "split",
        author=actor,
        at=at,
        data={"split_from": ticket.number, "event": event.id},
    )
    sla_clock.recompute(new, now=at)
    sla_clock.recompute(ticket, now=at)
    session.flush()
    return new


def merge_view(session: Session, user: User, ticket: Ticket) -> dict[str, Any]:
    """What the ticket page shows of merging: the banner of a merged ticket ("Merged into
    #N"), the tickets merged here (staff), and whether the merge and split actions are
    offered to ``user``."""
    allowed = may_merge(user, ticket)
    return {
        "merged_into_number": (
            ticket.merged_into.number if ticket.merged_into_id and ticket.merged_into else None
        ),
        "merged_from_numbers": merged_from(session, ticket) if user.is_staff else [],
        "can_merge": allowed and ticket.merged_into_id is None,
        "can_split": allowed,
    }
