"""Who is mailed about what happens on a ticket, and with which headers.

The ticket services in :mod:`core.tickets.services` call the ``on_*`` hooks below at the end of
``open_ticket``, ``add_comment``, ``record_email``, ``_apply_status`` and ``assign``. A hook only
decides the recipients and builds the context; every mail is queued with
:func:`core.mail.outbox.queue_mail` in the caller's transaction, so it goes out exactly when the
change it reports is committed (and not at all on a rollback).

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

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import can_see_event, visible_status_name
from core.clock import utcnow
from core.contracts.models import Status
from core.db import secret_key, transaction_memo
from core.directory.models import User
from core.mail import reply_address
from core.mail.mailboxes import base_address, mailboxes
from core.mail.models import InboundMessage, OutboundMail
from core.mail.outbox import mailable, queue_mail, ticket_context, ticket_timezone
from core.notify.preferences import wants
from core.notify.recipients import contract_coordinators, with_substitutes
from core.tickets.contacts import copied
from core.tickets.models import Ticket, TicketEvent

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
    """The event that opened the ticket (the client's first mail, if it came by mail)."""
    for event in ticket.events:
        if event.data.get("opened_ticket"):
            return event
    return ticket.events[0] if ticket.events else None


def _thread(session: Session, ticket: Ticket, to: str) -> list[str]:
    """References for a mail to ``to``: the client's original mail first, then ours to them.

    RFC 5322 3.6.4: References lists the thread's ids oldest first and In-Reply-To names the
    parent; :func:`core.mail.outbox.queue_mail` takes the last reference as the parent.
    """
    refs: list[str] = []
    origin = _origin(ticket)
    if origin is not None and origin.message_id:
        refs.append(origin.message_id)
    if ticket.id is not None:
        if ticket.id in _memo(session).setdefault("opened", set()):
            # Opened in this transaction: its only mails are the ones queued just now.
            previous: Iterable[str] = [
                mid
                for tid, addr, mid in _memo(session).get("queued", [])
                if tid == ticket.id and addr == to
            ]
        else:
            previous = session.scalars(
                select(OutboundMail.message_id)
                .where(OutboundMail.ticket_id == ticket.id, OutboundMail.to_addr == to)
                .order_by(OutboundMail.created_at, OutboundMail.id)
            )
        refs.extend(m for m in previous if m not in refs)
    return refs


def _memo(session: Session) -> dict[str, Any]:
    """What this transaction already looked up (the Reply-To mailbox per ticket) or queued.

    Configuration does not change under a running transaction, and one inbound mail mails
    several people about one ticket: each lookup once per transaction, not once per mail.
    """
    memo: dict[str, Any] = transaction_memo(session).setdefault("notify", {})
    return memo


def _reply_to(session: Session, ticket: Ticket) -> str | None:
    """The mailbox the ticket came in on, else its contract's, else the first general one.

    Looked up once per ticket and transaction; :func:`signed_reply_to` signs it per recipient.
    """
    cache = _memo(session).setdefault("reply_to", {})
    if ticket.id is not None and ticket.id in cache:
        return cast(str | None, cache[ticket.id])
    answer = _find_reply_to(session, ticket)
    if ticket.id is not None:
        cache[ticket.id] = answer
    return answer


def _find_reply_to(session: Session, ticket: Ticket) -> str | None:
    boxes = mailboxes(session)
    # A mail that came in on a plus-address (a signed reply address) came to its mailbox.
    known = {base_address(m.address): m.address for m in boxes}
    origin = _origin(ticket)
    received = (session.info.get(FACTS_KEY) or {}).get("received")
    if origin is not None and received is not None and received[0] == origin.message_id:
        # The mail being processed opened the ticket: the gateway said where it came in.
        for address in received[1]:
            if isinstance(address, str) and base_address(address) in known:
                return known[base_address(address)]
    elif origin is not None and origin.message_id:
        inbound = session.scalars(
            select(InboundMessage)
            .where(InboundMessage.message_id == origin.message_id)
            .order_by(InboundMessage.id)
            .limit(1)
        ).first()
        if inbound is not None:
            for address in [inbound.mailbox, *(inbound.envelope_to or [])]:
                if isinstance(address, str) and base_address(address) in known:
                    return known[base_address(address)]
    if ticket.contract_id is not None:
        for m in boxes:
            if m.contract_id == ticket.contract_id:
                return m.address
    return next((m.address for m in boxes if m.contract_id is None), None)


def signed_reply_to(session: Session, ticket: Ticket, user: User) -> str | None:
    """The Reply-To of a mail to ``user`` about ``ticket``: the ticket's mailbox
    (:func:`_reply_to`) signed for this ticket and this recipient
    (:func:`core.mail.reply_address.sign`), so a reply to it shows it comes from someone who
    got our mail. The plain mailbox when the session has no secret key (``core.db.secret_key``:
    bare session factories in tests and scripts), for a user not stored yet, or when the
    signed address would be too long for the mailbox's name."""
    mailbox = _reply_to(session, ticket)
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


def _loop_limited(session: Session, to: str, now: datetime) -> bool:
    """True when ``to`` already got :data:`LOOP_LIMIT` automatic mails in the window."""
    rows = session.scalars(
        select(OutboundMail.headers).where(
            func.lower(OutboundMail.to_addr) == to.lower(),
            OutboundMail.created_at > now - LOOP_WINDOW,
        )
    )
    count = sum(1 for headers in rows if (headers or {}).get("Auto-Submitted"))
    return count >= LOOP_LIMIT


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
) -> OutboundMail | None:
    if not mailable(user):
        return None
    if not wants(user, template, ticket):
        log.debug("ticket #%s: %s to %s off by preference", ticket.number, template, user.email)
        return None
    to = user.email
    # The cap guards against loops with outside autoresponders (Zammad's rule for customers);
    # our own staff and subcontractor users are no autoresponders, and capping them would
    # drop a new-ticket mail after a burst of SLA warnings (seen under make run).
    if auto_submitted is not None and user.role == "client" and _loop_limited(session, to, now):
        log.warning(
            "ticket #%s: %s to %s skipped, loop protection (%d automatic mails in %s)",
            ticket.number,
            template,
            to,
            LOOP_LIMIT,
            LOOP_WINDOW,
        )
        return None
    shown = {**context, "recipient": user.display}
    if ticket.status is not None and "status" in shown:
        # What this reader may see: a client (subcontractor) reads a status kept from them
        # by its category, as in the console and the API (core.access.permissions).
        shown["status"] = visible_status_name(user, ticket.status)
    row = queue_mail(
        session,
        template=template,
        to=to,
        context=shown,
        mail_domain=config.mail_domain,
        language=user.language or DEFAULT_LANGUAGE,
        ticket=ticket,
        auto_submitted=auto_submitted,
        in_reply_to=in_reply_to,
        references=_thread(session, ticket, to),
        reply_to=signed_reply_to(session, ticket, user),
        now=now,
    )
    if row is not None:
        _memo(session).setdefault("queued", []).append((ticket.id, to, row.message_id))
    return row


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
