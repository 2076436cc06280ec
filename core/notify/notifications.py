"""Who is mailed about what happens on a ticket, and with which headers.

The ticket services in :mod:`core.tickets.services` call the ``on_*`` hooks below at the end of
``open_ticket``, ``add_comment``, ``record_email``, ``_apply_status`` and ``assign``. A hook only
decides the recipients and builds the context; every mail goes to the outbox in the caller's
transaction, so it goes out exactly when the change it reports is committed (and not at all on
a rollback).

Batches: each mail is queued in an outbox batch (:func:`core.mail.outbox.batch`), and a
hook's mails to several people are stored together. A unit of work that notifies about many
tickets wraps itself in ``with outbox.batch(session):`` (``bulk_change_status`` does): its
notifications are then decided when the batch is written, with one query for the loop
protection of every recipient, one for the threads and one for the mailboxes tickets came in
on, and stored with one INSERT, in the order they were queued and with the batch's earlier
mails counted, so what is sent is what one by one would send. Without a batch around it a
notification is written at once, as before.

Configuration: the services know no settings, so the Message-ID domain and the public URL
travel on the session as ``session.info["notify"]`` (a :class:`NotifyConfig`). The entry
points put it there once, on their session factory, with :func:`configure` (``web.app`` for
the console and the API, ``workers.actors.register_actors`` for ``mail.process``). A session
without it (unit tests, seeding, the CLI) sends no notifications at all.

Reply-To: the ticket's mailbox (the one it came in on, else its contract's, else the first
general one), signed for the ticket and the recipient (``support+1042.17.<mac>@…``,
:mod:`core.mail.reply_address`, docs/mail.md "Signed reply addresses"), so each person gets
an address of their own and a reply to it shows it comes from someone we wrote to. The key is
the instance's secret (``core.db.secret_key``, put on the session factory by the entry
points); a session without one sends the plain mailbox.

What goes to whom (issue 5, "What is sent, to whom"):

* the requester and the contacts copied on the ticket (``core.tickets.contacts``; each in
  their own language, with the same preferences and loop protection): ``ticket_ack`` (a new
  ticket; ``Auto-Submitted: auto-replied``, RFC 3834 section 5, threaded under the client's
  own mail), ``ticket_comment`` (a public comment by
  staff or a subcontractor: a message a person wrote, so no ``Auto-Submitted`` and the client
  may answer it) and ``ticket_status`` (a status that is ``visible_to_client``);
* staff: ``ticket_new`` (the contract's coordinators), ``ticket_assigned`` (the assignee, or the
  subcontractor's users) and ``ticket_reply`` (the assignee, when the client writes).

Preferences (:mod:`core.notify.preferences`): each user may turn these kinds off and narrow staff mail
to chosen clients and products; :func:`_send` asks :func:`core.notify.preferences.wants` before queuing
anything. ``ticket_ack`` is always sent (the receipt of the requester's own mail).

Never mailed: the person who acted, users whose address bounces (``mail_bouncing_since``),
and a requester whose triggering mail was an auto-reply, a bounce or list/bulk mail
(``no_autoreply``; RFC 3834 section 2: never answer automatic mail). Loop protection: at most
:data:`LOOP_LIMIT` automatic mails to one client address per :data:`LOOP_WINDOW`, whatever
happens (Zammad's rule); further ones are skipped and logged. Staff are not capped.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session, sessionmaker

from core.access.permissions import can_see_event, visible_status_name
from core.clock import utcnow
from core.contracts.models import Status
from core.db import secret_key, transaction_memo
from core.directory.models import User
from core.mail import outbox, reply_address
from core.mail.mailboxes import base_address, mailboxes
from core.mail.models import InboundMessage, OutboundMail
from core.mail.outbox import OutboxBatch, build_mail, mailable, ticket_context, ticket_timezone
from core.notify.preferences import wants
from core.notify.recipients import contract_coordinators, with_substitutes
from core.tickets.contacts import copied
from core.tickets.models import Ticket, TicketEvent
from core.tickets.timeline import timeline_at_hand

log = logging.getLogger(__name__)

INFO_KEY = "notify"
FACTS_KEY = "notify_facts"
LOOP_LIMIT = 5
LOOP_WINDOW = timedelta(minutes=10)
DEFAULT_LANGUAGE = "pl"


@dataclass(frozen=True)
class NotifyConfig:
    """What notifications need from the settings: our Message-ID domain and the public URL."""

    mail_domain: str
    public_url: str


def configure(factory: sessionmaker[Session] | Any, config: NotifyConfig) -> bool:
    """Let every session of ``factory`` send notifications (an entry point calls this once).

    ``sessionmaker(info=...)`` copies its ``info`` into each new session. Any other callable
    (a test's own factory) is left alone and sends nothing; returns whether it was configured.
    """
    if not isinstance(factory, sessionmaker):
        log.debug("session factory %r is no sessionmaker: notifications stay off", factory)
        return False
    info = factory.kw.setdefault("info", {})
    info[INFO_KEY] = config
    return True


def config_of(session: Session) -> NotifyConfig | None:
    value = session.info.get(INFO_KEY)
    return value if isinstance(value, NotifyConfig) else None


@contextmanager
def facts(session: Session, **values: Any) -> Iterator[None]:
    """Facts about the triggering mail the hooks should know.

    The gateway gives ``no_autoreply`` (bulk or list mail) and ``received``: the mail's
    Message-ID and the addresses it came in on, so a Reply-To needs no lookup.
    """
    previous = session.info.get(FACTS_KEY)
    session.info[FACTS_KEY] = {**(previous or {}), **values}
    try:
        yield
    finally:
        if previous is None:
            session.info.pop(FACTS_KEY, None)
        else:
            session.info[FACTS_KEY] = previous


def _fact(session: Session, name: str) -> bool:
    return bool((session.info.get(FACTS_KEY) or {}).get(name))


# --- Shared pieces ---------------------------------------------------------------------------


def _aware(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite gives naive UTC back
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _base_context(ticket: Ticket, config: NotifyConfig) -> dict[str, Any]:
    context = ticket_context(ticket, public_url=config.public_url)
    context.update(
        status=ticket.status.name if ticket.status is not None else None,
        reaction_due=_aware(ticket.reaction_due),
        resolution_due=_aware(ticket.resolution_due),
        timezone=ticket_timezone(ticket),
    )
    return context


def _origin(ticket: Ticket) -> TicketEvent | None:
    """The event that opened the ticket (the client's first mail, if it came by mail).

    From the timeline when it is loaded (or the ticket is new); otherwise asked for, once a
    transaction, so that a reply to a long ticket does not load every event of it."""
    session = object_session(ticket)
    if session is None or timeline_at_hand(ticket):
        for event in ticket.events:
            if event.data.get("opened_ticket"):
                return event
        return ticket.events[0] if ticket.events else None
    known: dict[int, TicketEvent | None] = _memo(session).setdefault("origin", {})
    if ticket.id not in known:
        in_order = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
        in_order = in_order.order_by(TicketEvent.at, TicketEvent.id).limit(1)
        with session.no_autoflush:
            known[ticket.id] = (
                session.scalars(
                    in_order.where(
                        TicketEvent.type.in_(("email_in", "created")),
                        TicketEvent.data["opened_ticket"].as_boolean().is_(True),
                    )
                ).first()
                or session.scalars(in_order).first()
            )
    return known[ticket.id]


def _memo(session: Session) -> dict[str, Any]:
    """What this transaction already looked up (the Reply-To mailbox per ticket) or queued.

    Configuration does not change under a running transaction, and one inbound mail mails
    several people about one ticket: each lookup once per transaction, not once per mail.
    """
    memo: dict[str, Any] = transaction_memo(session).setdefault("notify", {})
    return memo


@dataclass(frozen=True)
class _ReplyToPlan:
    """The Reply-To mailbox of a ticket as far as it is known without a query: ``mailbox``,
    or, when ``origin`` is set, the mailbox the inbound mail with that Message-ID came in on
    (one of ``known``: base address -> mailbox address), else ``mailbox``."""

    mailbox: str | None
    origin: str | None = None
    known: dict[str, str] | None = None


def _reply_to(session: Session, ticket: Ticket) -> str | None:
    """The mailbox the ticket came in on, else its contract's, else the first general one.

    Looked up once per ticket and transaction; :func:`signed_reply_to` signs it per recipient.
    """
    plan = _reply_to_plan(session, ticket)
    if plan.origin is None:
        return plan.mailbox
    inbound = _inbound_addresses(session, [plan.origin])
    return _remember_reply_to(session, ticket, plan, inbound.get(plan.origin))


def _reply_to_plan(session: Session, ticket: Ticket) -> _ReplyToPlan:
    """What :func:`_reply_to` knows without asking for the ticket's first inbound mail; the
    answer is remembered for the transaction when it needs no such query."""
    cache = _memo(session).setdefault("reply_to", {})
    if ticket.id is not None and ticket.id in cache:
        return _ReplyToPlan(cast(str | None, cache[ticket.id]))
    boxes = mailboxes(session)
    # A mail that came in on a plus-address (a signed reply address) came to its mailbox.
    known = {base_address(m.address): m.address for m in boxes}
    fallback = None
    if ticket.contract_id is not None:
        fallback = next((m.address for m in boxes if m.contract_id == ticket.contract_id), None)
    if fallback is None:
        fallback = next((m.address for m in boxes if m.contract_id is None), None)
    origin = _origin(ticket)
    received = (session.info.get(FACTS_KEY) or {}).get("received")
    answer = fallback
    if origin is not None and received is not None and received[0] == origin.message_id:
        # The mail being processed opened the ticket: the gateway said where it came in.
        answer = _first_known(received[1], known) or fallback
    elif origin is not None and origin.message_id:
        return _ReplyToPlan(fallback, origin.message_id, known)
    if ticket.id is not None:
        cache[ticket.id] = answer
    return _ReplyToPlan(answer)


def _first_known(addresses: Iterable[Any], known: dict[str, str]) -> str | None:
    for address in addresses:
        if isinstance(address, str) and base_address(address) in known:
            return known[base_address(address)]
    return None


def _inbound_addresses(session: Session, message_ids: Iterable[str]) -> dict[str, list[Any]]:
    """The addresses each inbound mail came in on (its mailbox, then its envelope
    recipients), by Message-ID; the first stored mail of an id counts."""
    found: dict[str, list[Any]] = {}
    wanted = list(dict.fromkeys(message_ids))
    for chunk in _chunks(wanted):
        rows = session.execute(
            select(InboundMessage.message_id, InboundMessage.mailbox, InboundMessage.envelope_to)
            .where(InboundMessage.message_id.in_(chunk))
            .order_by(InboundMessage.id)
        )
        for message_id, mailbox, envelope_to in rows:
            found.setdefault(message_id, [mailbox, *(envelope_to or [])])
    return found


def _remember_reply_to(
    session: Session, ticket: Ticket, plan: _ReplyToPlan, addresses: list[Any] | None
) -> str | None:
    answer = (
        (_first_known(addresses or [], plan.known or {}) or plan.mailbox)
        if plan.origin
        else plan.mailbox
    )
    if ticket.id is not None:
        _memo(session).setdefault("reply_to", {})[ticket.id] = answer
    return answer


def signed_reply_to(session: Session, ticket: Ticket, user: User) -> str | None:
    """The Reply-To of a mail to ``user`` about ``ticket``: the ticket's mailbox
    (:func:`_reply_to`) signed for this ticket and this recipient
    (:func:`core.mail.reply_address.sign`), so a reply to it shows it comes from someone who
    got our mail. The plain mailbox when the session has no secret key (``core.db.secret_key``:
    bare session factories in tests and scripts), for a user not stored yet, or when the
    signed address would be too long for the mailbox's name."""
    return _signed(session, ticket, user, _reply_to(session, ticket))


def _signed(session: Session, ticket: Ticket, user: User, mailbox: str | None) -> str | None:
    secret = secret_key(session)
    if mailbox is None or secret is None or user.id is None or ticket.number is None:
        return mailbox
    try:
        return reply_address.sign(secret, mailbox, ticket.number, user.id)
    except ValueError as exc:
        log.warning(
            "ticket #%s: plain Reply-To %s for %s: %s", ticket.number, mailbox, user.email, exc
        )
        return mailbox


# --- Queueing: every notification goes through an outbox batch -------------------------------
#
# A hook decides who is told and what they read; the rest (loop protection, the thread's
# References, the Reply-To of a ticket that came by mail) needs the outbox and the inbound
# mail, and is decided when the batch is written (core.mail.outbox.batch): for all the
# notifications of the batch with one query each, then in the order they were queued, with
# the mails decided before counted as if they were stored already. Alone (no batch around
# the hook) that is one notification's queries, as before; in a bulk change of 1,000 tickets
# it is three queries and one INSERT instead of three statements a mail.


@dataclass(eq=False)
class _Notice:
    """One notification: what the hook decided when it ran, waiting for its batch."""

    ticket: Ticket
    user: User
    template: str
    context: dict[str, Any]
    mail_domain: str
    language: str
    now: datetime
    auto_submitted: str | None
    in_reply_to: str | None
    # Loop protection applies: an automatic mail to a client.
    capped: bool
    # The ticket was opened in this transaction: its thread is what was queued here.
    opened: bool
    # The Message-ID of the mail that opened the ticket, the root of the thread.
    origin: str | None
    reply_to: _ReplyToPlan

    def decide(self, batch: OutboxBatch) -> OutboundMail | None:
        return _Lookups.of(batch).decide(self)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _chunks(values: list[Any], size: int = 5000) -> Iterator[list[Any]]:
    # Far below both databases' limits on bound parameters (SQLite 32,766, PostgreSQL 65,535).
    for start in range(0, len(values), size):
        yield values[start : start + size]


class _Lookups:
    """What the notifications of one batch write need from the database, asked once for all
    of them, and kept current with the rows the write decides before each one."""

    def __init__(self, batch: OutboxBatch) -> None:
        self.session = batch.session
        self.batch = batch
        notices = [m for m in batch.writing if isinstance(m, _Notice)]
        # Loop protection: when each client address got an automatic mail in the window.
        self.automatic: dict[str, list[datetime]] = {}
        capped = [n for n in notices if n.capped]
        if capped:
            since = min(_utc(n.now) for n in capped) - LOOP_WINDOW
            addresses = sorted({n.user.email.lower() for n in capped})
            address = func.lower(OutboundMail.to_addr)
            auto = OutboundMail.headers["Auto-Submitted"].as_string()
            for chunk in _chunks(addresses):
                # Only each address's LOOP_LIMIT newest automatic mails: whether LOOP_LIMIT of
                # them fall in a window depends on those alone, and a busy address no longer
                # makes every batch read (and decode) its whole last ten minutes.
                ranked = (
                    select(
                        address.label("address"),
                        OutboundMail.created_at.label("created_at"),
                        func.row_number()
                        .over(partition_by=address, order_by=OutboundMail.created_at.desc())
                        .label("newest"),
                    )
                    .where(
                        address.in_(chunk),
                        OutboundMail.created_at > since,
                        auto.is_not(None),
                        auto != "",
                    )
                    .subquery()
                )
                newest = self.session.execute(
                    select(ranked.c.address, ranked.c.created_at).where(
                        ranked.c.newest <= LOOP_LIMIT
                    )
                )
                for found, created_at in newest:
                    self.automatic.setdefault(found, []).append(_utc(created_at))
        # Threads: our earlier mails to each (ticket, address), oldest first.
        self.earlier: dict[tuple[int, str], list[tuple[datetime, int, int, str]]] = {}
        threaded = [n for n in notices if n.ticket.id is not None and not n.opened]
        if threaded:
            ticket_ids = sorted({cast(int, n.ticket.id) for n in threaded})
            pairs = {(n.ticket.id, n.user.email) for n in threaded}
            for chunk in _chunks(ticket_ids):
                rows = self.session.execute(
                    select(
                        OutboundMail.ticket_id, OutboundMail.to_addr, OutboundMail.created_at,
                        OutboundMail.id, OutboundMail.message_id,
                    ).where(OutboundMail.ticket_id.in_(chunk))
                )  # fmt: skip
                for ticket_id, to_addr, created_at, row_id, message_id in rows:
                    if (ticket_id, to_addr) in pairs:
                        self.earlier.setdefault((cast(int, ticket_id), to_addr), []).append(
                            (_utc(created_at), 0, row_id, message_id)
                        )
        # Reply-To: the inbound mails the tickets came in by.
        origins = [n.reply_to.origin for n in notices if n.reply_to.origin is not None]
        self.inbound = _inbound_addresses(self.session, origins) if origins else {}
        self.seen = 0

    @classmethod
    def of(cls, batch: OutboxBatch) -> _Lookups:
        found = batch.memo.get(INFO_KEY)
        if not isinstance(found, _Lookups):
            found = batch.memo[INFO_KEY] = cls(batch)
        return found

    def _catch_up(self) -> None:
        """Count the rows decided since the last notification, as the database would."""
        for row in self.batch.written[self.seen :]:
            created = _utc(row.created_at)
            if (row.headers or {}).get("Auto-Submitted"):
                self.automatic.setdefault(row.to_addr.lower(), []).append(created)
            ticket_id = row.ticket.id if row.ticket is not None else None
            if ticket_id is not None:
                self.earlier.setdefault((ticket_id, row.to_addr), []).append(
                    (created, 1, self.seen, row.message_id)
                )
            self.seen += 1

    def decide(self, notice: _Notice) -> OutboundMail | None:
        self._catch_up()
        ticket, to = notice.ticket, notice.user.email
        if notice.capped:
            cutoff = _utc(notice.now) - LOOP_WINDOW
            sent = sum(1 for t in self.automatic.get(to.lower(), ()) if t > cutoff)
            if sent >= LOOP_LIMIT:
                log.warning(
                    "ticket #%s: %s to %s skipped, loop protection (%d automatic mails in %s)",
                    ticket.number,
                    notice.template,
                    to,
                    LOOP_LIMIT,
                    LOOP_WINDOW,
                )
                return None
        plan = notice.reply_to
        if plan.origin is None:
            mailbox = plan.mailbox
        else:
            # Another notification of this write may have looked the ticket up already.
            cache = _memo(self.session).setdefault("reply_to", {})
            if ticket.id is not None and ticket.id in cache:
                mailbox = cache[ticket.id]
            else:
                mailbox = _remember_reply_to(
                    self.session, ticket, plan, self.inbound.get(plan.origin)
                )
        row = build_mail(
            template=notice.template,
            to=to,
            context=notice.context,
            mail_domain=notice.mail_domain,
            language=notice.language,
            ticket=ticket,
            auto_submitted=notice.auto_submitted,
            in_reply_to=notice.in_reply_to,
            references=self._thread(notice),
            reply_to=_signed(self.session, ticket, notice.user, mailbox),
            now=notice.now,
        )
        _memo(self.session).setdefault("queued", []).append((ticket.id, to, row.message_id))
        return row

    def _thread(self, notice: _Notice) -> list[str]:
        """References for the mail: the client's original mail first, then ours to them.

        RFC 5322 3.6.4: References lists the thread's ids oldest first and In-Reply-To names
        the parent; :func:`core.mail.outbox.queue_mail` takes the last reference as the parent.
        Ours are ordered as the outbox stores them (by creation, then id).
        """
        ticket, to = notice.ticket, notice.user.email
        refs: list[str] = [notice.origin] if notice.origin else []
        if ticket.id is not None:
            if notice.opened:
                # Opened in this transaction: its only mails are the ones queued just now.
                previous: Iterable[str] = [
                    mid
                    for tid, addr, mid in _memo(self.session).get("queued", [])
                    if tid == ticket.id and addr == to
                ]
            else:
                previous = [e[3] for e in sorted(self.earlier.get((ticket.id, to), []))]
            refs.extend(m for m in previous if m not in refs)
        return refs


def _send(
    session: Session,
    ticket: Ticket,
    user: User,
    template: str,
    context: dict[str, Any],
    config: NotifyConfig,
    now: datetime,
    *,
    auto_submitted: str | None = "auto-generated",
    in_reply_to: str | None = None,
) -> None:
    """Queue the ``template`` mail to ``user`` in the session's outbox batch (one of its own
    when none is open, written at once); loop protection decides when the batch is written."""
    if not mailable(user):
        return
    if not wants(user, template, ticket):
        log.debug("ticket #%s: %s to %s off by preference", ticket.number, template, user.email)
        return
    shown = {**context, "recipient": user.display}
    if ticket.status is not None and "status" in shown:
        # What this reader may see: a client (subcontractor) reads a status kept from them
        # by its category, as in the console and the API (core.access.permissions).
        shown["status"] = visible_status_name(user, ticket.status)
    notice = _Notice(
        ticket=ticket,
        user=user,
        template=template,
        context=shown,
        mail_domain=config.mail_domain,
        language=user.language or DEFAULT_LANGUAGE,
        now=now,
        auto_submitted=auto_submitted,
        in_reply_to=in_reply_to,
        # The cap guards against loops with outside autoresponders (Zammad's rule for
        # customers); our own staff and subcontractor users are no autoresponders, and
        # capping them would drop a new-ticket mail after a burst of SLA warnings (seen
        # under make run).
        capped=auto_submitted is not None and user.role == "client",
        opened=ticket.id is not None and ticket.id in _memo(session).get("opened", ()),
        origin=origin.message_id if (origin := _origin(ticket)) is not None else None,
        reply_to=_reply_to_plan(session, ticket),
    )
    with outbox.batch(session) as pending:
        pending.defer(notice)


def _each(users: Iterable[User | None], *, besides: User | None) -> list[User]:
    seen: list[User] = []
    for user in users:
        if user is None or user is besides or user in seen:
            continue
        seen.append(user)
    return seen


def _assignees(session: Session, ticket: Ticket) -> list[User]:
    """The assignee, else the subcontractor company's active users."""
    if ticket.assignee is not None:
        return [ticket.assignee]
    if ticket.subcontractor is not None:
        return list(
            session.scalars(
                select(User)
                .where(User.subcontractor_id == ticket.subcontractor.id, User.active.is_(True))
                .order_by(User.id)
            )
        )
    return []


def _requester_and_copied(
    ticket: Ticket, *, besides: User | None, staff_requester: bool = True
) -> list[User]:
    """The requester (a staff requester only when ``staff_requester``), then the contacts
    copied on the ticket (``core.tickets.contacts.copied``), each once, never ``besides``."""
    requester: User | None = ticket.requester
    if requester is not None and requester.is_staff and not staff_requester:
        requester = None
    return _each([requester, *copied(ticket)], besides=besides)


def _readers(users: Iterable[User], event: TicketEvent) -> list[User]:
    """Those of ``users`` who may read ``event`` on the ticket (``can_see_event``)."""
    return [user for user in users if can_see_event(user, event)]


# --- Hooks the ticket services call ----------------------------------------------------------

_P = ParamSpec("_P")


def _one_batch(
    hook: Callable[Concatenate[Session, _P], None],
) -> Callable[Concatenate[Session, _P], None]:
    """Run a hook in an outbox batch: the mails it queues for several people are stored
    together (or with the caller's batch, when one is open)."""

    @functools.wraps(hook)
    def run(session: Session, *args: _P.args, **kwargs: _P.kwargs) -> None:
        with outbox.batch(session):
            hook(session, *args, **kwargs)

    return run


@_one_batch
def on_ticket_opened(
    session: Session, ticket: Ticket, event: TicketEvent, *, author: User | None
) -> None:
    """Acknowledge to the requester; tell coordinators (and an assignee given at once)."""
    config = config_of(session)
    if config is None:
        return
    _memo(session).setdefault("opened", set()).add(ticket.id)
    now = event.at or utcnow()
    context = _base_context(ticket, config)
    requester = ticket.requester
    if _fact(session, "no_autoreply") or event.data.get("no_autoreply"):
        log.info("ticket #%s: no acknowledgement, list or bulk mail", ticket.number)
    else:
        # RFC 3834 section 5: an acknowledgement is an automatic response ("auto-replied"),
        # threaded under the client's own mail (section 3.1.5). The contacts copied on the
        # ticket get it too (they were on that mail), not whoever opened it for the requester.
        besides = None if author is None or author is requester else author
        for person in _requester_and_copied(ticket, besides=besides, staff_requester=False):
            _send(
                session,
                ticket,
                person,
                "ticket_ack",
                context,
                config,
                now,
                auto_submitted="auto-replied",
                in_reply_to=event.message_id,
            )
    actor = author or requester
    staff = with_substitutes(session, contract_coordinators(session, ticket), now)
    for user in _each(staff, besides=actor):
        _send(session, ticket, user, "ticket_new", context, config, now)
    if ticket.assignee is not None or ticket.subcontractor is not None:
        _notify_assigned(session, ticket, actor, config, now)


@_one_batch
def on_comment(session: Session, ticket: Ticket, event: TicketEvent) -> None:
    """A public staff comment goes to the requester; a client's reply to the assignee.

    Internal notes are mailed to nobody, whatever their audience (``data["audience"]``): a
    note for the subcontractor is read on the ticket. Every recipient below is also checked
    with ``core.access.permissions.can_see_event`` (:func:`_readers`), so a mail never carries
    text its reader could not read on the ticket."""
    config = config_of(session)
    if config is None or not event.public:
        return
    if event.data.get("auto_reply") or event.data.get("bounce"):
        return
    author = event.author
    now = event.at or utcnow()
    context = _base_context(ticket, config)
    context.update(
        author=author.display if author is not None else None,
        body=(event.body_text or "").strip(),
    )
    if author is not None and not author.is_staff:
        # A client wrote (portal or mail): the people working on the ticket hear of it.
        staff = with_substitutes(session, _assignees(session, ticket), now)
        for user in _readers(_each(staff, besides=author), event):
            _send(session, ticket, user, "ticket_reply", context, config, now)
        return
    if event.type == "email_in":
        # Staff mailed the thread themselves; the client was on that mail or will be told by
        # the person who wrote it, so do not forward it a second time.
        return
    # A comment a person wrote: no Auto-Submitted (RFC 3834 section 5: "no"), so the client's
    # mail program and the client may answer it. The requester and the copied contacts.
    for person in _readers(_requester_and_copied(ticket, besides=author), event):
        _send(session, ticket, person, "ticket_comment", context, config, now, auto_submitted=None)


@_one_batch
def on_status_changed(
    session: Session, ticket: Ticket, event: TicketEvent, *, old: Status, new: Status
) -> None:
    """Tell the requester and the copied contacts about a change to a status they can see."""
    config = config_of(session)
    if config is None or not new.visible_to_client:
        return
    people = _requester_and_copied(ticket, besides=event.author)
    if not people:
        return
    if _fact(session, "no_autoreply"):
        return
    now = event.at or utcnow()
    context = _base_context(ticket, config)
    context.update(
        old_status=old.name if old.visible_to_client else None,
        new_status=new.name,
        note=(event.body_text or "").strip() or None,
    )
    for person in people:
        _send(session, ticket, person, "ticket_status", context, config, now)


@_one_batch
def on_assigned(
    session: Session, ticket: Ticket, event: TicketEvent, *, actor: User | None
) -> None:
    """Tell the new assignee (or the subcontractor's users) about the assignment."""
    config = config_of(session)
    if config is None:
        return
    changed_assignee = event.data.get("assignee") != event.data.get("from_assignee")
    changed_sub = event.data.get("subcontractor") != event.data.get("from_subcontractor")
    if not (changed_assignee or changed_sub):
        return
    _notify_assigned(session, ticket, actor, config, event.at or utcnow())


def _notify_assigned(
    session: Session, ticket: Ticket, actor: User | None, config: NotifyConfig, now: datetime
) -> None:
    context = _base_context(ticket, config)
    context.update(
        assignee=ticket.assignee.display if ticket.assignee is not None else None,
        subcontractor=ticket.subcontractor.name if ticket.subcontractor is not None else None,
        actor=actor.display if actor is not None else None,
    )
    people = with_substitutes(session, _assignees(session, ticket), now)
    for user in _each(people, besides=actor):
        _send(session, ticket, user, "ticket_assigned", context, config, now)
