"""Processing of one stored inbound mail: the ``mail.process`` actor's work.

The rules of :mod:`mailgw.rules` run in order (parse, our_own, duplicate, auto_submitted, bulk,
thread, route) and every hit is appended to ``InboundMessage.decisions``, so an admin can see
why a mail went where it went (GNU Mailman). The outcome is recorded on the row: ``processed``
with the ticket and event it became, or ``ignored`` with the reason.

:func:`process_inbound` takes a session and never commits; :func:`run_process` is the actor's
entry point: one unit of work for the processing, and on failure a *new* unit of work that
counts the attempt and, after ``MAX_ATTEMPTS``, quarantines the message (nothing is dropped).

Who sent the mail is a claim until proven (:mod:`mailgw.trust`, the table in docs/mail.md): a
staff member's mail acts as staff only with DMARC pass or as a reply to the signed address
given to them, else it is kept on its ticket as an unverified internal note without an author;
so is a client's reply failing DMARC for a domain publishing ``p=reject``/``quarantine``. A mail
whose From cannot be read opens a triage ticket under a placeholder requester, answered by no
one: mail is never ignored for its From.

A delivery report (RFC 3464) with Action ``failed`` and a permanent 5.x.x Status about one of
our outbound mails marks the user with that address ``mail_bouncing_since``; ordinary mail
*from* the address later clears the mark. Both are recorded in the decisions (rule ``bouncing``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session, sessionmaker

from core.access.accounts import get_user_by_email, prefetch_people
from core.blobs import BlobStore, prefetch_rows, sha256_of
from core.clock import utcnow
from core.contracts import snapshot as config_snapshot
from core.contracts.models import Contract
from core.db import DoneRecently, secret_key, unit_of_work
from core.directory.models import User
from core.directory.services import find_or_create_contact, unknown_sender
from core.errors import InputError
from core.mail import outbox
from core.mail.inbound import MAX_ATTEMPTS, claim_batch
from core.mail.models import InboundMessage, OutboundMail
from core.notify import notifications
from core.tickets import search
from core.tickets.models import Ticket, TicketEvent
from core.tickets.services import (
    DEFER_FLUSH,
    NewTicket,
    open_ticket,
    record_email,
    reopen,
    reserve_numbers,
)
from core.tickets.timeline import NewAttachment
from mailgw import copied, rules
from mailgw.bodies import html_to_text, sanitize_html, visible_reply
from mailgw.parsing import ParsedMail, parse_message
from mailgw.thread_match import (
    find_thread,
    likely_new,
    lock_held,
    lock_threads,
    may_follow_up,
    names_held,
    ticket_for_message_id,
)
from mailgw.trust import TrustSettings, Verdict, verdict

log = logging.getLogger(__name__)

# Mails processed together in one unit of work (``PULPIT_MAIL_BATCH``): enough to take the
# commit, the claim and the configuration reads off each mail's bill, few enough that a
# failing batch costs little to redo one by one.
BATCH = 64


# The mails this process's batches committed, so their own jobs end without a statement.
_done_here = DoneRecently()
_ONE_BATCH_AT_A_TIME = threading.Lock()


class InboundMissing(LookupError):
    """The inbound row does not exist (deleted, or a job from another database)."""


class SenderError(Exception):
    """The mail's From names no usable address: the sender's fault, so the mail opens a triage
    ticket for a coordinator (never retried, never ignored)."""


# Decisions are buffered on the row and written once at the end of processing: assigning the
# JSON column after every rule made each following query autoflush an UPDATE of the row (five
# extra statements per mail).
_PENDING = "_pulpit_pending_decisions"


def _decide(row: InboundMessage, hit: rules.Hit) -> rules.Hit:
    row.__dict__.setdefault(_PENDING, []).append(hit.as_decision())
    return hit


def _write_decisions(row: InboundMessage) -> None:
    pending = row.__dict__.pop(_PENDING, None)
    if pending:
        # Reassign, not append: the JSON column only notices a new list.
        row.decisions = [*row.decisions, *pending]


# In a batch (run_batch) the outcome waits on the row too, and every row of the batch is
# updated in one executemany at the end instead of one UPDATE between each two mails.
_OUTCOME = "_pulpit_pending_outcome"
_EVENT = "_event"


def _finish(row: InboundMessage, **values: Any) -> InboundMessage:
    pending: dict[str, Any] | None = row.__dict__.get(_OUTCOME)
    if pending is not None:
        pending.update(values)
        return row
    _set_outcome(row, values)
    return row


def _apply_outcome(row: InboundMessage) -> None:
    """The batch's outcome on ``row``, after the flush that gave its event an id."""
    _set_outcome(row, row.__dict__.pop(_OUTCOME, None) or {})
    _write_decisions(row)


def _set_outcome(row: InboundMessage, values: dict[str, Any]) -> None:
    event: TicketEvent | None = values.pop(_EVENT, None)
    if event is not None:
        # Read now, not when the mail was done: in a batch the event is inserted at its end.
        values.update(ticket_id=event.ticket_id, event_id=event.id)
    for name, value in values.items():
        setattr(row, name, value)


def _ignore(row: InboundMessage, reason: str, now: datetime) -> InboundMessage:
    return _finish(row, state="ignored", reason=reason, processed_at=now)


def _done(row: InboundMessage, event: TicketEvent, now: datetime) -> InboundMessage:
    return _finish(row, state="processed", processed_at=now, reason=None, **{_EVENT: event})


def _bodies(mail: ParsedMail) -> tuple[str, str | None, dict[str, Any]]:
    """(visible text, sanitised HTML, extra event data) of a mail.

    Forwarded messages (``message/rfc822`` parts, ``mail.forwarded``) follow the mail's own
    text in the full text, each under a "Forwarded message" separator with its From, Date and
    Subject; a mail with no text of its own (a bare forward) shows them as its visible body.
    """
    own = mail.text or ""
    if not own and mail.html:
        own = html_to_text(mail.html)
    forwards = [
        "\n".join(
            [
                "---------- Forwarded message ----------",
                f"From: {fwd.from_}",
                f"Date: {fwd.date}",
                f"Subject: {fwd.subject}",
                "",
                fwd.text,
            ]
        ).rstrip()
        for fwd in mail.forwarded
    ]
    if not forwards:
        full, visible = own, visible_reply(own)
    elif own.strip():
        full = "\n\n".join([own.rstrip(), *forwards])
        visible = visible_reply(own)
    else:
        full = visible = "\n\n".join(forwards)
    data: dict[str, Any] = {"full_text": full, "subject": mail.subject, "from": mail.from_addr}
    return visible, (sanitize_html(mail.html) or None), data


def _bounce_ticket(session: Session, mail: ParsedMail) -> Ticket | None:
    """The ticket of the mail that bounced, by the original Message-ID in the report."""
    ids = [mail.original_message_id, *mail.in_reply_to, *reversed(mail.references)]
    for mid in ids:
        if mid:
            ticket_id = session.scalar(
                select(OutboundMail.ticket_id).where(OutboundMail.message_id == mid).limit(1)
            )
            if ticket_id is not None:
                return session.get(Ticket, ticket_id)
            ticket = ticket_for_message_id(session, mid)
            if ticket is not None:
                return ticket
    return None


def _mark_bouncing(session: Session, row: InboundMessage, mail: ParsedMail, now: datetime) -> None:
    """RFC 3464: a permanent failure (Action ``failed``, Status 5.x.x) marks the user with the
    failed address as bouncing. Only a report about a mail we really sent counts (its original
    Message-ID is one of our ``OutboundMail``), so a made-up report cannot mark an address."""
    addr = mail.failed_recipient
    if not addr:
        _decide(row, rules.Hit("bouncing", None, "the report names no failed recipient"))
        return
    status = f"Action {mail.dsn_action or '?'}, Status {mail.dsn_status or '?'}"
    if not mail.permanent_failure:
        why = f"{status}: not a permanent failure (RFC 3464 2.3.3), {addr} not marked"
        _decide(row, rules.Hit("bouncing", None, why))
        return
    ours = mail.original_message_id is not None and (
        session.scalar(
            select(OutboundMail.id).where(OutboundMail.message_id == mail.original_message_id)
        )
        is not None
    )
    if not ours:
        why = f"{status}, but about no outbound mail of ours: {addr} not marked"
        _decide(row, rules.Hit("bouncing", None, why))
        return
    user = get_user_by_email(session, addr)
    if user is None:
        _decide(row, rules.Hit("bouncing", None, f"{status}: no user with the address {addr}"))
        return
    if user.mail_bouncing_since is None:
        user.mail_bouncing_since = now
        why = f"{status}: {addr} marked as bouncing"
    else:
        why = f"{status}: {addr} bouncing since {user.mail_bouncing_since.isoformat()} already"
    _decide(row, rules.Hit("bouncing", addr, why, {"set": True}))


def _clear_bouncing(row: InboundMessage, sender: User) -> None:
    """Ordinary mail from an address marked as bouncing: it works again."""
    if sender.mail_bouncing_since is None:
        return
    since = sender.mail_bouncing_since.isoformat()
    sender.mail_bouncing_since = None
    why = f"mail from {sender.email}, bouncing since {since}: the address works again"
    _decide(row, rules.Hit("bouncing", sender.email, why, {"set": False}))


def _note_automatic(
    session: Session,
    row: InboundMessage,
    mail: ParsedMail,
    kind: str,
    *,
    now: datetime,
) -> InboundMessage:
    """An auto-reply or a bounce: an internal note on its ticket, else ignored; never answered."""
    if kind == "bounce":
        _mark_bouncing(session, row, mail, now)
        ticket = _bounce_ticket(session, mail)
        data: dict[str, Any] = {"bounce": True, "failed_recipient": mail.failed_recipient}
    else:
        match = find_thread(session, mail)
        ticket = match.ticket if match else None
        data = {"auto_reply": True}
    if ticket is None:
        what = "a delivery report" if kind == "bounce" else "an auto-reply"
        _decide(row, rules.Hit("thread", None, f"{what} about no ticket of ours"))
        return _ignore(row, f"{what} that belongs to no ticket", now)
    _decide(row, rules.Hit("thread", ticket.number, f"{kind} noted on #{ticket.number}"))
    text, _, extra = _bodies(mail)
    author = get_user_by_email(session, mail.from_addr) if mail.from_addr else None
    updated_at = ticket.updated_at  # noted "without changing anything" about the ticket
    event = record_email(
        session,
        ticket,
        author=author,
        body=text or mail.subject,
        public=False,
        at=now,
        message_id=mail.message_id,
        data={**extra, **data},
    )
    ticket.updated_at = updated_at
    return _done(row, event, now)


def _sender(session: Session, mail: ParsedMail) -> User:
    if not mail.from_addr or "@" not in mail.from_addr:
        raise SenderError("the mail has no usable From address")
    try:
        return find_or_create_contact(session, mail.from_addr, mail.from_name or None)
    except InputError as exc:
        raise SenderError(f"the From address is unusable: {exc}") from exc


@dataclass(frozen=True)
class _Proof:
    """Whether the mail's From is proven to be its sender (docs/mail.md, the trust table)."""

    authenticated: bool
    verdict: Verdict
    how: str  # for the decisions log and the event's ``trust``

    def unverified_for(self, sender: User) -> str | None:
        """Why this sender's mail must not act as them, or None when it may."""
        if self.authenticated:
            return None
        if sender.is_staff:
            return f"staff mail without proof ({self.how}): it does not act as {sender.email}"
        if self.verdict.enforced_failure:
            return f"{self.verdict.describe()}: the domain asks to reject such mail"
        return None


def _proof(
    row: InboundMessage, raw: bytes, mail: ParsedMail, sender: User, trust: TrustSettings
) -> _Proof:
    """DMARC pass (from the trusted MTA or checked here), or a reply to the signed address
    that was given to this very sender."""
    signed = None
    if trust.secret:
        from core.mail.reply_address import find_signed

        recipients = [row.mailbox, *(row.envelope_to or []), *mail.to, *mail.cc]
        signed = find_signed(trust.secret, [a for a in recipients if isinstance(a, str)])
    found = verdict(raw, mail.from_addr, trust)
    if signed is not None and signed.user_id == sender.id:
        how = f"a reply to the address signed for {sender.email} on #{signed.ticket_number}"
        return _Proof(True, found, how)
    if found.passed:
        return _Proof(True, found, found.describe())
    how = found.describe()
    if signed is not None:
        how += f"; the signed reply address was given to someone else (user {signed.user_id})"
    return _Proof(False, found, how)


def process_inbound(
    session: Session,
    inbound_id: int,
    *,
    blobs: BlobStore,
    mail_domain: str,
    now: datetime,
    reopen_days: int = 14,
    trust: TrustSettings | None = None,
) -> InboundMessage:
    """Turn one stored mail into a ticket or an event, or ignore it with a reason."""
    # The row lock makes a job delivered twice wait for the first instead of racing it.
    row = session.get(InboundMessage, inbound_id, with_for_update=True)
    if row is None:
        raise InboundMissing(f"no inbound message {inbound_id}")
    return _process_row(
        session,
        row,
        blobs=blobs,
        mail_domain=mail_domain,
        now=now,
        reopen_days=reopen_days,
        trust=trust,
    )


def _process_row(
    session: Session,
    row: InboundMessage,
    *,
    blobs: BlobStore,
    mail_domain: str,
    now: datetime,
    reopen_days: int,
    trust: TrustSettings | None,
) -> InboundMessage:
    """:func:`process_inbound` for a row the caller has locked."""
    if row.state != "received":
        return row  # already done (a job delivered twice, or a sweep racing the first job)
    try:
        trust = trust or TrustSettings()
        if trust.secret is None:
            # The entry points put the instance's key on the session (core.db).
            trust = replace(trust, secret=secret_key(session))
        done = _process(session, row, blobs, mail_domain, now, reopen_days, trust)
    except BaseException:
        row.__dict__.pop(_PENDING, None)  # rolled back with the rest; the failure is recorded
        raise
    if _OUTCOME not in row.__dict__:
        _write_decisions(row)
    return done


def _process(
    session: Session,
    row: InboundMessage,
    blobs: BlobStore,
    mail_domain: str,
    now: datetime,
    reopen_days: int,
    trust: TrustSettings,
) -> InboundMessage:
    if any(d.get("rule") == "erased" for d in row.decisions or []) and not blobs.exists(row.sha256):
        # Its sender was erased (core.privacy.erase) with the raw file: nothing to process.
        return _ignore(row, "the raw mail was erased with its sender's personal data", now)
    parsed: tuple[bytes, ParsedMail] | None = row.__dict__.pop(_PARSED, None)
    if parsed is not None:
        raw, mail = parsed  # read and parsed with the rest of its batch (run_batch)
    else:
        raw = blobs.read(row.sha256)
        mail = parse_message(raw, mail_domain=mail_domain)
    why = f"{len(raw)} bytes, {len(mail.attachments)} attachment(s)"
    if mail.message_id_generated:
        why += f"; no Message-ID, made {mail.message_id}"
    notes = {"notes": mail.notes} if mail.notes else {}  # e.g. an unreadable winmail.dat
    _decide(row, rules.Hit("parse", mail.message_id, why, notes))

    locked = session.info.get(_LOCKED_IDS, ())
    if session.get_bind().dialect.name == "postgresql" and mail.message_id not in locked:
        # Two copies of one mail (sent to two of our mailboxes, or re-sent after a lost 250)
        # processed at the same moment: serialise on the Message-ID so the second sees the
        # first as a duplicate. SQLite needs nothing: its writers are serialised already.
        session.execute(
            sql_text("SELECT pg_advisory_xact_lock(hashtextextended(:mid, 0))"),
            {"mid": mail.message_id},
        )
    before: rules.Seen | None = row.__dict__.pop(_SEEN, None)  # looked up with its batch
    if before is None:
        before = rules.seen(session, row, mail)
    if _decide(row, rules.our_own(mail, mail_domain, before)).result:
        return _ignore(row, "our own mail came back", now)
    dup = _decide(row, rules.duplicate(session, mail, before))
    if dup.result:
        return _ignore(row, dup.why, now)

    auto = _decide(row, rules.auto_submitted(mail))
    kind = auto.result
    if kind is None and rules.null_sender(row):
        kind = "bounce"
        _decide(row, rules.Hit("auto_submitted", kind, "null envelope sender (RFC 5321 4.5.5)"))
    if kind is not None:
        return _note_automatic(session, row, mail, str(kind), now=now)

    bulk = _decide(row, rules.bulk(mail))
    flags: dict[str, Any] = {"no_autoreply": True} if bulk.result else {}

    text, html, data = _bodies(mail)
    data.update(flags)
    content = _Content(text, html, mail.message_id, mail.attachments, blobs)
    try:
        sender = _sender(session, mail)
    except SenderError as exc:
        # A client's mail all the same: never ignored for its From (docs/mail.md).
        return _open_for_unknown_sender(session, row, mail, str(exc), data, content, now)
    _clear_bouncing(row, sender)
    proof = _proof(row, raw, mail, sender, trust)
    if proof.authenticated or proof.verdict.dmarc != "none":
        _decide(row, rules.Hit("trust", proof.authenticated, proof.how))

    # The notification hooks in core.tickets.services must not answer list or bulk mail (RFC 3834
    # section 2), so the gateway's finding travels with the session while it acts.
    received = (mail.message_id, [row.mailbox, *(row.envelope_to or [])])
    with notifications.facts(session, no_autoreply=bool(bulk.result), received=received):
        return _thread_or_open(
            session, row, mail, sender, proof, data, content, now, reopen_days, trust
        )


@dataclass(frozen=True)
class _Content:
    """What a mail adds to a ticket, whether it opens one or answers one."""

    body: str | None
    body_html: str | None
    message_id: str | None
    attachments: Sequence[NewAttachment]
    blobs: BlobStore

    def record(
        self,
        session: Session,
        ticket: Ticket,
        *,
        author: User | None,
        public: bool,
        data: dict[str, Any],
        now: datetime,
    ) -> TicketEvent:
        """The mail on ``ticket``'s timeline (``email_in``)."""
        return record_email(
            session,
            ticket,
            author=author,
            public=public,
            data=data,
            body=self.body,
            body_html=self.body_html,
            at=now,
            message_id=self.message_id,
            attachments=self.attachments,
            blobs=self.blobs,
        )

    def open(
        self,
        session: Session,
        mail: ParsedMail,
        *,
        requester: User,
        contract: Contract | None,
        data: dict[str, Any],
        now: datetime,
        cc: Sequence[User] = (),
    ) -> Ticket:
        """A new ticket opened by the mail."""
        new = NewTicket(
            subject=mail.subject.strip() or "(bez tematu)",
            requester=requester,
            body=self.body,
            body_html=self.body_html,
            contract=contract,
            source="email",
            at=now,
            message_id=self.message_id,
            attachments=self.attachments,
            data=data,
            cc=cc,
        )
        return open_ticket(session, new, blobs=self.blobs)


def _open_for_unknown_sender(
    session: Session,
    row: InboundMessage,
    mail: ParsedMail,
    why: str,
    data: dict[str, Any],
    content: _Content,
    now: datetime,
) -> InboundMessage:
    """A mail whose From cannot be read: a triage ticket under the placeholder requester, the
    raw From kept on the event for a coordinator to read, and nothing sent back."""
    raw_from = mail.raw_from or mail.header("from")
    _decide(row, rules.Hit("sender", None, f"{why}: From as received {raw_from!r}"))
    data.update(raw_from=raw_from, unknown_sender=True, no_autoreply=True)
    with notifications.facts(session, no_autoreply=True):
        ticket = content.open(
            session, mail, requester=unknown_sender(session), contract=None, data=data, now=now
        )
    _decide(
        row, rules.Hit("route", None, f"triage #{ticket.number}: a coordinator names the requester")
    )
    return _done(row, ticket.events[0], now)


def _note_unverified(
    session: Session,
    row: InboundMessage,
    ticket: Ticket,
    sender: User,
    proof: _Proof,
    reason: str,
    data: dict[str, Any],
    content: _Content,
    now: datetime,
) -> InboundMessage:
    """Keep the mail on its ticket without letting it act as its From: an internal note with
    no author, marked unverified, that changes no status and no clock."""
    _decide(row, rules.Hit("thread", ticket.number, f"internal note, unverified: {reason}"))
    updated_at = ticket.updated_at
    unverified = {"unverified": True, "claimed_from": sender.email, "trust": proof.how}
    event = content.record(
        session, ticket, author=None, public=False, data={**data, **unverified}, now=now
    )
    ticket.updated_at = updated_at
    return _done(row, event, now)


def _thread_or_open(
    session: Session,
    row: InboundMessage,
    mail: ParsedMail,
    sender: User,
    proof: _Proof,
    data: dict[str, Any],
    content: _Content,
    now: datetime,
    reopen_days: int,
    trust: TrustSettings,
) -> InboundMessage:
    """Add the mail to the ticket it answers, or open a ticket for it."""
    recipients = [a for a in [row.mailbox, *(row.envelope_to or [])] if isinstance(a, str)]
    match = find_thread(session, mail, recipients=recipients, secret=trust.secret, sender=sender)
    unverified = proof.unverified_for(sender)
    follow_up_of: int | None = None
    if match is not None:
        ticket = match.ticket
        allowed, why = may_follow_up(sender, ticket)
        if allowed and unverified is not None:
            return _note_unverified(
                session, row, ticket, sender, proof, unverified, data, content, now
            )
        if not allowed:
            _decide(row, rules.Hit("thread", None, f"{match.how} #{ticket.number}, but {why}"))
        elif ticket.status_category == "closed" and not _recently_resolved(
            ticket, now, reopen_days
        ):
            follow_up_of = ticket.number
            why = f"#{ticket.number} closed over {reopen_days} days ago: a new linked ticket"
            _decide(row, rules.Hit("thread", None, why, {"follow_up_of": ticket.number}))
        else:
            if ticket.status_category == "closed":
                reopen(session, ticket, actor=sender, at=now)
                why += f"; #{ticket.number} reopened"
            how = match.how
            if match.merged_from is not None:  # core.tickets.merge
                how += f" #{match.merged_from}, merged into #{ticket.number}"
            _decide(row, rules.Hit("thread", ticket.number, f"{how}; {why}"))
            event = content.record(session, ticket, author=sender, public=True, data=data, now=now)
            if (cc_hit := copied.for_follow_up(session, ticket, mail, sender, now)) is not None:
                _decide(row, cc_hit)
            return _done(row, event, now)
    else:
        _decide(row, rules.Hit("thread", None, "no subject tag or known Message-ID"))

    if unverified is not None:
        data.update(unverified=True, trust=proof.how)
    contract, hit = rules.route(session, row, mail, now.date(), sender=sender)
    _decide(row, hit)
    if follow_up_of is not None:
        data["follow_up_of"] = follow_up_of
    cc, cc_hit = copied.for_new_ticket(session, mail, sender, contract)  # mailgw/copied.py
    if cc_hit is not None:
        _decide(row, cc_hit)
    ticket = content.open(
        session, mail, requester=sender, contract=contract, data=data, now=now, cc=cc
    )
    first = ticket.events[0]
    tt = ticket.ticket_type.name if ticket.ticket_type else None
    _decide(row, rules.Hit("ticket_type", tt, "subject keywords, else the contract's default"))
    return _done(row, first, now)


def _recently_resolved(ticket: Ticket, now: datetime, days: int) -> bool:
    return ticket.resolved_at is None or now - ticket.resolved_at <= timedelta(days=days)


def run_process(
    session_factory: sessionmaker[Session],
    inbound_id: int,
    *,
    blobs: BlobStore,
    mail_domain: str,
    clock: Callable[[], datetime] = utcnow,
    reopen_days: int = 14,
    trust: TrustSettings | None = None,
) -> str:
    """The ``mail.process`` actor's body for one mail; returns the row's state afterwards.

    A deadlock or serialisation failure is the database's, not the mail's: the mail is tried
    again at once, up to :data:`TRANSIENT_TRIES` times, before it counts an attempt."""
    for tried in range(1, TRANSIENT_TRIES + 1):
        try:
            with unit_of_work(session_factory) as session:
                row = process_inbound(
                    session,
                    inbound_id,
                    blobs=blobs,
                    mail_domain=mail_domain,
                    now=clock(),
                    reopen_days=reopen_days,
                    trust=trust,
                )
                state, mid = row.state, row.message_id
            log.info("inbound %s (%s): %s", inbound_id, mid, state)
            return state
        except InboundMissing:
            log.warning("inbound %s: no such message", inbound_id)
            return "missing"
        except Exception as exc:
            if transient(exc) and tried < TRANSIENT_TRIES:
                log.info(
                    "inbound %s: %s, trying again",
                    inbound_id,
                    type(getattr(exc, "orig", exc)).__name__,
                )
                continue
            # Our fault or the operator's (a bug, a missing blob, the database): count the
            # attempt in a fresh transaction, the failed one is rolled back.
            log.exception("inbound %s: processing failed", inbound_id)
            return record_failure(session_factory, inbound_id, f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")  # pragma: no cover


# Deadlock detected, serialisation failure (PostgreSQL's SQLSTATEs).
_TRANSIENT_SQLSTATES = {"40P01", "40001"}
TRANSIENT_TRIES = 3


def transient(exc: BaseException) -> bool:
    """Whether the database gave up on the transaction for a reason of its own (a deadlock
    with another worker), so that the same work may well succeed at once."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


_LOCKED_IDS = "pulpit_locked_message_ids"
_PARSED = "_pulpit_parsed"
_SEEN = "_pulpit_seen"


def _parse_ahead(
    session: Session, rows: Sequence[InboundMessage], blobs: BlobStore, mail_domain: str
) -> None:
    """Read and parse the batch's mails first, then look their senders up in one query
    (:func:`core.access.accounts.prefetch_people`). A mail that cannot be read or parsed here
    is left to fail, or be handled, in its own turn."""
    senders: list[str] = []
    parsed: list[tuple[InboundMessage, ParsedMail]] = []
    for row in rows:
        try:
            raw = blobs.read(row.sha256)
            mail = parse_message(raw, mail_domain=mail_domain)
        except Exception:
            continue
        row.__dict__[_PARSED] = (raw, mail)
        parsed.append((row, mail))
        if mail.from_addr:
            senders.append(mail.from_addr)
    prefetch_people(session, senders)
    prefetch_rows(session, (sha256_of(a.data) for _, m in parsed for a in m.attachments))
    # The contracts the batch's new tickets may be opened under, with what opening a ticket
    # reads of them: four queries, not four per contract (a reply's contract is its ticket's).
    config = config_snapshot.current(session)
    config_snapshot.preload(
        session,
        {
            contract_id
            for row, mail in parsed
            for contract_id in rules.candidate_contracts(
                config,
                row,
                mail,
                get_user_by_email(session, mail.from_addr) if mail.from_addr else None,
            )
        },
    )
    lock_threads(session, [mail for _, mail in parsed])
    # The duplicate rule's lookups, for the mails that no other mail of the batch copies and
    # whose Message-ID lock is held already (a copy must see its twin's outcome).
    locked = session.info.get(_LOCKED_IDS)
    mids = Counter(mail.message_id for _, mail in parsed)
    shas = Counter(row.sha256 for row, _ in parsed)
    alone = [
        (row, mail)
        for row, mail in parsed
        if mids[mail.message_id] == 1
        and shas[row.sha256] == 1
        and (locked is None or mail.message_id in locked)
    ]
    by_id = {row.id: row for row, _ in alone}
    for row_id, found in rules.seen_many(session, alone).items():
        by_id[row_id].__dict__[_SEEN] = found
    _reserve_numbers(session, parsed, mail_domain)


def _held_last(
    session: Session, rows: Sequence[InboundMessage]
) -> tuple[list[InboundMessage], int]:
    """The batch's rows, those whose mail names a ticket another transaction holds
    (:func:`mailgw.thread_match.lock_threads`) moved to the end, and the index where they
    begin (the number of rows when there are none). A mail naming one of those by its
    Message-ID goes with it, so a reply still comes after the mail it answers; each part
    keeps the order of arrival."""
    first: list[InboundMessage] = []
    last: list[InboundMessage] = []
    last_ids: set[str] = set()
    for row in rows:
        parsed: tuple[bytes, ParsedMail] | None = row.__dict__.get(_PARSED)
        mail = parsed[1] if parsed is not None else None
        if mail is not None and (
            names_held(session, mail)
            or not last_ids.isdisjoint((*mail.in_reply_to, *mail.references))
        ):
            last.append(row)
            if mail.message_id:
                last_ids.add(mail.message_id)
        else:
            first.append(row)
    return first + last, len(first)


def _reserve_numbers(
    session: Session, parsed: Sequence[tuple[InboundMessage, ParsedMail]], mail_domain: str
) -> None:
    """Reserve the numbers of the tickets the batch will open, in one statement instead of
    one each (``core.tickets.services.reserve_numbers``), for the mails that name no ticket
    and that the loop rules will not set aside (our own mail, a copy, a bounce or an
    auto-reply). A number reserved and then not used is a gap in the ticket numbers, so
    nothing is reserved for a lone new mail, where reserving saves nothing: it is numbered
    when it opens its ticket."""
    rows = {id(mail): row for row, mail in parsed}
    opening = 0
    for mail in likely_new(session, [mail for _, mail in parsed]):
        row = rows[id(mail)]
        before: rules.Seen | None = row.__dict__.get(_SEEN)
        if (
            before is None  # a copy of another mail of the batch, or not looked up
            or before.outbound_id is not None
            or before.inbound_id is not None
            or before.event_id is not None
            or rules.our_own(mail, mail_domain, before).result
            or rules.auto_submitted(mail).result
            or rules.null_sender(row)
        ):
            continue
        opening += 1
    if opening > 1:
        reserve_numbers(session, opening)


def _lock_message_ids(session: Session, message_ids: Sequence[str | None]) -> None:
    """The advisory locks of :func:`_process` for a whole batch, in one statement.

    Taken in a fixed order (another batch with a copy of one of these mails waits, and
    PostgreSQL breaks a deadlock by failing one batch, whose mails are then processed alone).
    A mail whose parsed Message-ID differs from the stored one still takes its own lock.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    wanted = sorted({m for m in message_ids if m})
    session.info[_LOCKED_IDS] = frozenset(wanted)
    if not wanted:
        return
    session.execute(
        sql_text(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT hashtextextended(m, 0) AS h"
            " FROM unnest(CAST(:mids AS text[])) AS m ORDER BY h) AS ordered"
        ),
        {"mids": wanted},
    )


def run_batch(
    session_factory: sessionmaker[Session],
    inbound_id: int,
    *,
    blobs: BlobStore,
    mail_domain: str,
    clock: Callable[[], datetime] = utcnow,
    reopen_days: int = 14,
    trust: TrustSettings | None = None,
    batch: int = BATCH,
) -> str:
    """The ``mail.process`` actor's body: this mail and the others waiting, in one transaction.

    The job locks its own row and up to ``batch - 1`` other mails waiting for processing
    (:func:`core.mail.inbound.claim_batch`) and processes them in order in one unit of work:
    one claim, one commit, and one session whose identity map and transaction memo
    (mailboxes, contracts, statuses, calendars, the instance's key) serve every mail of the
    batch. The jobs of the mails taken along find them done with one read.

    A batch that fails is rolled back whole and each of its mails is processed again alone
    (:func:`run_process`), so one bad mail counts its attempt and the others commit. A worker
    killed mid-batch commits nothing: the rows stay ``received`` and the scheduler's sweep
    sends their jobs again. Returns the state of ``inbound_id`` afterwards (``taken`` when
    another worker's batch holds it).
    """

    def alone(one: int) -> str:
        return run_process(
            session_factory,
            one,
            blobs=blobs,
            mail_domain=mail_domain,
            clock=clock,
            reopen_days=reopen_days,
            trust=trust,
        )

    if batch <= 1:
        return alone(inbound_id)
    known = _done_here.take(session_factory, inbound_id)
    if known is not None:
        return known  # taken along by one of this process's batches a moment ago
    # One batch at a time in this process. The jobs that wait here meanwhile find their mails
    # taken along by the batch they waited for, or make the next batch of all the mails that
    # arrived in the meantime: under load batches grow instead of splitting what is due into
    # one small batch per thread, and a batch's fixed cost (claim, configuration, commit) is
    # paid less often. Threads of one process share one interpreter lock, so two batches in
    # a process would mostly take turns on one core anyway; processes run batches side by
    # side (bench/INGEST_RESULTS.md has the runs that chose one over two).
    with _ONE_BATCH_AT_A_TIME:
        known = _done_here.take(session_factory, inbound_id)
        if known is not None:
            return known
        return _claim_and_process(
            session_factory,
            inbound_id,
            alone,
            blobs=blobs,
            mail_domain=mail_domain,
            clock=clock,
            reopen_days=reopen_days,
            trust=trust,
            batch=batch,
        )


def _claim_and_process(
    session_factory: sessionmaker[Session],
    inbound_id: int,
    alone: Callable[[int], str],
    *,
    blobs: BlobStore,
    mail_domain: str,
    clock: Callable[[], datetime],
    reopen_days: int,
    trust: TrustSettings | None,
    batch: int,
) -> str:
    """One batch of :func:`run_batch`, under its lock: claim, process, commit; on failure each
    claimed mail again with ``alone``."""
    claimed: list[int] = []
    try:
        with unit_of_work(session_factory) as session:
            # The search documents of the batch's tickets: one rebuild before the commit.
            search.rebuild_at_commit(session)
            # In the order they arrived (a reply after the mail it answers), whichever job ran.
            rows = sorted(claim_batch(session, inbound_id, limit=batch), key=lambda r: r.id)
            claimed = [row.id for row in rows]
            _lock_message_ids(session, [row.message_id for row in rows])
            if not rows:
                state = session.scalar(
                    select(InboundMessage.state).where(InboundMessage.id == inbound_id)
                )
                return "missing" if state is None else state if state != "received" else "taken"
            _parse_ahead(session, rows, blobs, mail_domain)
            rows, first_held = _held_last(session, rows)
            session.info[DEFER_FLUSH] = True
            # The notifications of the whole batch: loop protection asked once, one INSERT.
            with outbox.batch(session):
                for n, row in enumerate(rows):
                    if n == first_held:
                        lock_held(session)  # the other batch has most likely committed by now
                    row.__dict__[_OUTCOME] = {}
                    _process_row(
                        session,
                        row,
                        blobs=blobs,
                        mail_domain=mail_domain,
                        now=clock(),
                        reopen_days=reopen_days,
                        trust=trust,
                    )
            # The batch's new tickets, events and attachments: one INSERT per table (open_ticket
            # and the blob store leave them to this flush, and reads that cannot depend on them
            # do not flush them early: core.tickets.services.next_number and others).
            session.flush()
            for row in rows:
                _apply_outcome(row)
            states = {row.id: row.state for row in rows}
            done = [(row.id, row.message_id, row.state) for row in rows]
    except Exception as exc:
        if not claimed:
            raise
        if transient(exc):
            # Another worker's transaction crossed this one; PostgreSQL chose this one to fail.
            log.info(
                "a batch of %d inbound mails: %s",
                len(claimed),
                type(getattr(exc, "orig", exc)).__name__,
            )
        else:
            log.warning(
                "a batch of %d inbound mails failed; processing each alone",
                len(claimed),
                exc_info=True,
            )
        states = {one: alone(one) for one in claimed}
        return states.get(inbound_id, "taken")
    for one, mid, state in done:
        log.info("inbound %s (%s): %s", one, mid, state)
    # Only mails done with: one still waiting is its own job's to process.
    done_with = {one: state for one, state in states.items() if state != "received"}
    _done_here.add(session_factory, done_with, skip=(inbound_id,))
    return states.get(inbound_id, "taken")


def record_failure(session_factory: sessionmaker[Session], inbound_id: int, reason: str) -> str:
    with unit_of_work(session_factory) as session:
        row = session.get(InboundMessage, inbound_id)
        if row is None:
            return "missing"
        row.attempts += 1
        row.reason = reason[:2000]
        if row.attempts >= MAX_ATTEMPTS:
            row.state = "quarantined"
            log.error("inbound %s (%s) quarantined: %s", inbound_id, row.message_id, reason)
        return row.state
