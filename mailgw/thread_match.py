"""Threading: which ticket a mail follows up, and whether its sender may add to it.

Named ``thread_match`` rather than ``threading`` so it never shadows the stdlib module.

Order (docs/mail.md), first match wins:

1. a **signed reply address** (``support+1042.17.<mac>@…``, :mod:`core.mail.reply_address`)
   among the envelope recipients, then To and Cc: only the person we wrote to had it, and it
   survives a mail program that drops the subject tag and ``In-Reply-To``;
2. ``In-Reply-To``, then ``References`` (newest first, RFC 5322 3.6.4), naming a mail **we
   sent** (``OutboundMail.message_id``): the reader's program says which of our mails it
   answers, which beats a tag typed or quoted in the subject;
3. the **subject tag** ``[#1042]`` or ``[PREFIX#1042]``; of several tags (``Re: [#1031] …
   [#1042]``) the first one whose ticket the sender may write into (:func:`may_follow_up`),
   else the first one;
4. ``In-Reply-To``, then ``References``, naming a mail we **stored** on a timeline
   (``TicketEvent.message_id``: the client's own earlier mails).

A ticket found that was merged into another (``core.tickets.merge``) stands for the end of its
``merged_into`` chain: the mail lands there (``ThreadMatch.merged_from`` keeps the number found).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import String, cast, literal, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from core.access.permissions import can_view, is_copied
from core.db import secret_key, transaction_memo
from core.directory.models import User
from core.mail.models import OutboundMail
from core.mail.reply_address import SignedReply, find_signed
from core.sla import clocks as sla_clock
from core.tickets.merge import final_ticket
from core.tickets.models import Ticket, TicketEvent
from mailgw.parsing import ParsedMail

# [#1042], [Ticket#1042], [ACME#1042]; the prefix is letters, digits, '-' and '_'.
SUBJECT_TAG = re.compile(r"\[[\w-]{0,32}#(\d{1,9})\]")

SIGNED = "signed reply address"


@dataclass(frozen=True)
class ThreadMatch:
    ticket: Ticket
    how: str  # "signed reply address", "In-Reply-To", "References", "subject tag"
    message_id: str | None = None
    # Set when the match was by a verified signed reply address: whom we sent it to.
    signed: SignedReply | None = None
    # The number the mail named when that ticket was merged into ``ticket`` (core.tickets.merge).
    merged_from: int | None = None


def _followed(session: Session, match: ThreadMatch | None) -> ThreadMatch | None:
    """The match moved to the end of its ticket's ``merged_into`` chain."""
    if match is None or match.ticket.merged_into_id is None:
        return match
    final = final_ticket(session, match.ticket)
    return replace(match, ticket=final, merged_from=match.ticket.number)


def subject_numbers(subject: str) -> list[int]:
    return [int(n) for n in SUBJECT_TAG.findall(subject or "")]


def ticket_for_message_id(session: Session, message_id: str) -> Ticket | None:
    """The ticket a Message-ID we stored or sent belongs to."""
    ticket_id = session.scalar(
        select(OutboundMail.ticket_id)
        .where(OutboundMail.message_id == message_id, OutboundMail.ticket_id.is_not(None))
        .limit(1)
    )
    if ticket_id is None:
        ticket_id = session.scalar(
            select(TicketEvent.ticket_id).where(TicketEvent.message_id == message_id).limit(1)
        )
    ticket = session.get(Ticket, ticket_id) if ticket_id is not None else None
    return final_ticket(session, ticket) if ticket is not None else None


@dataclass
class _Known:
    """What :func:`lock_threads` found for a batch: by ticket number, and by Message-ID among
    the mails we sent (``o``) and those on a timeline (``e``); the tickets are held here,
    the session keeping unreferenced objects only weakly."""

    numbers: dict[int, int]
    sent: dict[str, int]
    stored: dict[str, int]
    asked_numbers: frozenset[int]
    asked_ids: frozenset[str]
    tickets: list[Ticket]
    # The batch's own Message-IDs: a mail naming one of them names a row this transaction
    # adds, which the lookups above could not see.
    own_ids: frozenset[str]
    # Tickets named that another transaction held: locked later, by lock_held.
    held: frozenset[int] = frozenset()


_KNOWN = "thread_lookups"


def lock_threads(session: Session, mails: Sequence[ParsedMail]) -> frozenset[int]:
    """Lock, in the order of their ids, the tickets these mails may follow up: those their
    In-Reply-To and References name (a mail we sent, or one on a timeline) and those their
    subject tags number; load them, and remember what named them, so threading each mail of
    the batch asks no more (:func:`find_thread`). Not their timelines: what a reply needs of
    one (the SLA clocks, the mail that opened it) is read on its own, so the cost of a reply
    does not grow with the ticket's length (``core.sla.clocks.timeline``): for the clocks, what
    they read of every locked ticket, in one statement.

    For a batch of inbound mail (``mailgw.process.run_batch``) on PostgreSQL: two workers'
    batches that both answer tickets A and B would otherwise update them in opposite orders
    and deadlock; taken up front and in one order, neither waits for the other here. A ticket
    another transaction holds (the other worker's batch, which holds its tickets until it
    commits) is skipped, not waited for: its id is returned, the batch processes the mails
    that name it last (:func:`names_held`) and locks it just before them (:func:`lock_held`),
    by when the other batch has usually committed. Waiting here made the second of two
    workers wait for the first's whole batch whenever they shared a ticket, which under load
    was most of the time. A ticket reached another way (a signed reply address, a merge) is
    locked when updated, as before, and a rare deadlock there is PostgreSQL's to break.
    """
    if session.get_bind().dialect.name != "postgresql":
        return frozenset()  # SQLite has one writer at a time
    mids = sorted({mid for m in mails for mid in (*m.in_reply_to, *m.references) if mid})
    numbers = sorted({n for m in mails for n in subject_numbers(m.subject)})
    if not mids and not numbers:
        return frozenset()
    named: list[Any] = (
        [
            select(literal("n"), cast(Ticket.number, String), Ticket.id).where(
                Ticket.number.in_(numbers)
            )
        ]
        if numbers
        else []
    )
    if mids:
        named += [
            select(literal("o"), OutboundMail.message_id, OutboundMail.ticket_id).where(
                OutboundMail.message_id.in_(mids), OutboundMail.ticket_id.is_not(None)
            ),
            select(literal("e"), TicketEvent.message_id, TicketEvent.ticket_id).where(
                TicketEvent.message_id.in_(mids)
            ),
        ]
    statement: Any = union_all(*named) if len(named) > 1 else named[0]
    found: list[Any] = list(session.execute(statement))
    ids = sorted({row[2] for row in found if row[2] is not None})
    tickets = (
        list(
            session.scalars(
                select(Ticket)
                .where(Ticket.id.in_(ids))
                .order_by(Ticket.id)
                .with_for_update(of=Ticket, skip_locked=True)
            )
        )
        if ids
        else []
    )
    locked = [t.id for t in tickets]
    # What the SLA clocks read of their timelines, for all of them in one statement.
    sla_clock.read_for_clocks(session, locked)
    by: dict[str, dict[Any, int]] = {"n": {}, "o": {}, "e": {}}
    for source, key, ticket_id in found:
        # The first row of a Message-ID wins, as the lookups' own order would (one each).
        by[source].setdefault(int(key) if source == "n" else key, ticket_id)
    held = frozenset(ids) - frozenset(locked)
    transaction_memo(session)[_KNOWN] = _Known(
        numbers=by["n"],
        sent=by["o"],
        stored=by["e"],
        asked_numbers=frozenset(numbers),
        asked_ids=frozenset(mids),
        tickets=tickets,
        own_ids=frozenset(m.message_id for m in mails if m.message_id),
        held=held,
    )
    return held


def names_held(session: Session, mail: ParsedMail) -> bool:
    """Does ``mail`` name (by In-Reply-To, References or a subject tag) a ticket that
    :func:`lock_threads` found held by another transaction and has not locked yet?"""
    known: _Known | None = transaction_memo(session).get(_KNOWN)
    if known is None or not known.held:
        return False
    named = {known.sent.get(mid) for mid in (*mail.in_reply_to, *mail.references)}
    named |= {known.stored.get(mid) for mid in (*mail.in_reply_to, *mail.references)}
    named |= {known.numbers.get(n) for n in subject_numbers(mail.subject)}
    return not named.isdisjoint(known.held)


def lock_held(session: Session) -> None:
    """Lock the tickets :func:`lock_threads` skipped, waiting for them now, in the order of
    their ids, and read them afresh (what the other transaction committed) with what the SLA
    clocks read of their timelines."""
    known: _Known | None = transaction_memo(session).get(_KNOWN)
    if known is None or not known.held:
        return
    held = sorted(known.held)
    if any(
        (ticket := session.identity_map.get(identity_key(Ticket, ticket_id))) is not None
        and session.is_modified(ticket)
        for ticket_id in held
    ):
        # Changed already by a mail that reached it another way (a signed reply address):
        # written first, so reading it afresh below does not undo the change.
        session.flush()
    with session.no_autoflush:  # the batch's new rows do not matter to these
        known.tickets += session.scalars(
            select(Ticket)
            .where(Ticket.id.in_(held))
            .order_by(Ticket.id)
            .with_for_update(of=Ticket)
            .execution_options(populate_existing=True)
        )
        sla_clock.read_for_clocks(session, held)  # replaces anything read of them before
    known.held = frozenset()


def likely_new(session: Session, mails: Sequence[ParsedMail]) -> list[ParsedMail]:
    """Those of these mails that will likely open a ticket as far as threading can tell: they
    name none of the tickets :func:`lock_threads` found (by Message-ID or by a number in the
    subject) and no other mail of the batch. An estimate, for reserving ticket numbers
    (``core.tickets.services.reserve_numbers``): a reply that may not follow its ticket up
    opens one all the same."""
    known: _Known | None = transaction_memo(session).get(_KNOWN)
    own = {m.message_id for m in mails if m.message_id}
    likely: list[ParsedMail] = []
    for mail in mails:
        named = (*mail.in_reply_to, *mail.references)
        if any(mid in own for mid in named):
            continue
        if known is not None and (
            any(mid in known.sent or mid in known.stored for mid in named)
            or any(n in known.numbers for n in subject_numbers(mail.subject))
        ):
            continue
        likely.append(mail)
    return likely


def _known(session: Session, mids: set[str], numbers: set[int]) -> _Known | None:
    """What lock_threads found, when it asked for all of these and they cannot name a row
    added since: not one of the batch's own Message-IDs, not a ticket number it did not find
    (a ticket opened in this batch). Otherwise the caller asks the database."""
    known: _Known | None = transaction_memo(session).get(_KNOWN)
    if known is None or not mids <= known.asked_ids or not numbers <= known.asked_numbers:
        return None
    if mids & known.own_ids or not numbers <= known.numbers.keys():
        return None
    return known


def _header_ids(mail: ParsedMail) -> list[tuple[str, str]]:
    """(how, Message-ID) in the order they are tried: In-Reply-To, then References newest
    first; each id once."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for how, ids in (("In-Reply-To", mail.in_reply_to), ("References", mail.references[::-1])):
        for mid in ids:
            if mid not in seen:
                seen.add(mid)
                found.append((how, mid))
    return found


def _by_header(
    session: Session,
    ids: list[tuple[str, str]],
    model: type[OutboundMail] | type[TicketEvent],
    known: _Known | None = None,
) -> ThreadMatch | None:
    """The first of ``ids`` that a row of ``model`` (a mail we sent, or one stored on a
    timeline) names with its ticket; one query for all of them, or none when the batch's
    :func:`lock_threads` asked already."""
    if not ids:
        return None
    tickets: dict[str, int]
    if known is not None:
        tickets = known.sent if model is OutboundMail else known.stored
    else:
        rows = session.execute(
            select(model.message_id, model.ticket_id).where(
                model.message_id.in_([mid for _, mid in ids]), model.ticket_id.is_not(None)
            )
        ).all()
        tickets = {mid: ticket_id for mid, ticket_id in rows if mid and ticket_id}
    for how, mid in ids:
        ticket_id = tickets.get(mid)
        if ticket_id is not None:
            ticket = session.get(Ticket, ticket_id)
            if ticket is not None:
                return ThreadMatch(ticket, how, mid)
    return None


def _by_tag(
    session: Session, subject: str, sender: User | None, known: _Known | None = None
) -> ThreadMatch | None:
    numbers = list(dict.fromkeys(subject_numbers(subject)))
    if not numbers:
        return None
    found: dict[int, Ticket]
    if known is not None:
        found = {
            n: ticket
            for n, ticket_id in known.numbers.items()
            if n in numbers and (ticket := session.get(Ticket, ticket_id)) is not None
        }
    else:
        found = {
            t.number: t for t in session.scalars(select(Ticket).where(Ticket.number.in_(numbers)))
        }
    tickets = [found[n] for n in numbers if n in found]
    if not tickets:
        return None
    if sender is not None:
        for ticket in tickets:
            # A merged ticket's tag stands for where it went (core.tickets.merge).
            if may_follow_up(sender, final_ticket(session, ticket))[0]:
                return ThreadMatch(ticket, "subject tag")
    return ThreadMatch(tickets[0], "subject tag")


def find_thread(
    session: Session,
    mail: ParsedMail,
    *,
    recipients: Sequence[str] = (),
    secret: str | None = None,
    sender: User | None = None,
) -> ThreadMatch | None:
    """The ticket ``mail`` follows up, and how that was found (the module's order), or None.

    ``recipients`` are the envelope recipients (``InboundMessage.mailbox`` and
    ``envelope_to``); To and Cc are always looked at. ``secret`` verifies signed reply
    addresses; None takes the session's (``core.db.secret_key``), and without either no
    address is trusted. ``sender`` picks among several subject tags; it decides nothing else
    (whether the sender may write here is :func:`may_follow_up`, the caller's question).
    """
    key = secret if secret is not None else secret_key(session)
    signed = find_signed(key, [*recipients, *mail.to, *mail.cc]) if key else None
    ids = _header_ids(mail)
    asked = {mid for _, mid in ids}
    tagged = set(subject_numbers(mail.subject))
    # A batch of inbound mail flushes its new tickets and events once, at its end
    # (mailgw.process.run_batch): the lookups below flush them first only when this mail
    # names one of them (a colleague's reply-all to a mail earlier in the batch).
    named = tagged | {signed.ticket_number} if signed is not None else tagged
    early = _names_pending(session, asked, named)
    # What the batch's lock_threads found answers, unless the mail names a row added since.
    known = None if early else _known(session, asked, tagged)
    with nullcontext() if early else session.no_autoflush:
        if signed is not None:
            ticket = session.scalar(select(Ticket).where(Ticket.number == signed.ticket_number))
            if ticket is not None:
                return _followed(session, ThreadMatch(ticket, SIGNED, signed=signed))
        return _followed(
            session,
            _by_header(session, ids, OutboundMail, known)
            or _by_tag(session, mail.subject, sender, known)
            or _by_header(session, ids, TicketEvent, known),
        )


def _names_pending(session: Session, message_ids: set[str], numbers: set[int]) -> bool:
    """Whether a row added in this transaction and not yet flushed carries one of these
    Message-IDs or ticket numbers."""
    if not message_ids and not numbers:
        return False  # a mail naming nothing (most new mail): no walk over the batch's rows
    for obj in session.new:
        if isinstance(obj, TicketEvent | OutboundMail) and obj.message_id in message_ids:
            return True
        if isinstance(obj, Ticket) and obj.number in numbers:
            return True
    return False


def may_follow_up(user: User, ticket: Ticket) -> tuple[bool, str]:
    """Whether a mail from ``user`` may add to ``ticket``, and why (for the decision log).

    For clients wider than the console's view scope on purpose: a colleague of the requester
    at the same client may still answer a thread. Staff follow the API's scope: a technician's
    mail quoting a ticket he may not see does not write into it. Whether the mail really comes
    from ``user`` is the caller's question (``mailgw.trust``, the signed reply address).
    """
    if not user.active:
        return False, f"{user.email} is deactivated"
    if user.is_staff:
        # The same scope as the API and the console: a technician writes into the tickets he
        # may see (assigned to him, or to someone he substitutes for), nothing else.
        if not can_view(user, ticket):
            return False, f"{user.email} ({user.role}) may not see ticket #{ticket.number}"
        return True, f"{user.email} is staff ({user.role})"
    if user.id == ticket.requester_id:
        return True, f"{user.email} is the requester"
    if user.role == "client" and user.client_id is not None and user.client_id == ticket.client_id:
        return True, f"{user.email} is a contact of the ticket's client"
    if is_copied(user, ticket):  # on a triage ticket, where no client says so
        return True, f"{user.email} is copied on ticket #{ticket.number}"
    if (
        user.role == "subcontractor"
        and user.subcontractor_id is not None
        and user.subcontractor_id == ticket.subcontractor_id
    ):
        return True, f"{user.email} works for the assigned subcontractor"
    return False, f"{user.email} is not allowed on ticket #{ticket.number}"
