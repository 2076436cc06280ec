"""The transactional outbox for outgoing mail: one row per recipient, sent after commit.

Whoever decides that a mail goes out (an SLA warning, an acknowledgement, a reply) calls
:func:`queue_mail` inside its own transaction. The row and the ``mail.send`` job are one unit:
if the transaction rolls back, neither exists; if it commits, the job is handed to the broker
(``core.db.enqueue``) and, should that message ever be lost, the scheduler's sweep finds the row
again (:func:`due_for_sweep`). The database, not the broker, is the source of truth (Polar).

A row moves ``pending -> sending -> sent``, or back to ``pending`` with a later
``next_attempt_at`` after a temporary failure, or to ``failed`` for good. :func:`claim` is a
conditional UPDATE, so two workers given the same id never both send it; a worker that dies
mid-send leaves a ``sending`` row that the sweep puts back after ``stale_after``. Delivery is
therefore at least once: a crash between the relay's ``250`` and our commit sends the mail a
second time, with the same ``Message-ID``, which mail clients show once.

Everything the template needs is captured in ``context`` when the row is created, so the mail
says what was true then, even if it is sent an hour later. Rendering and SMTP live in
``mailgw.outbound``; this module imports nothing above ``core``.

Many mails of one unit of work (a bulk status change, a batch of inbound mail) are stored
together by :func:`batch`: one flush (one multi-row INSERT on PostgreSQL) and their jobs
buffered together, instead of a flush per mail; ``core.notify.notifications`` queues through it.

The context is made clean text on the way in (:func:`clean_context`): a ticket subject that
came from a client's broken mail (a lone surrogate, a control character, a line break, the
literal text of an encoded word whose bytes are no text) would otherwise fail on every
attempt to build the mail's headers, and the row would wait forever.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.errors import HeaderParseError
from email.header import decode_header
from email.utils import parseaddr
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import (
    ColumnElement,
    event,
    exists,
    func,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction, selectinload

from core.access.permissions import can
from core.audit import AuditEntry
from core.clock import utcnow
from core.db import enqueue, merge_jobs_of
from core.directory.models import User
from core.errors import N_, Forbidden, InputError, NotFound
from core.mail.mailboxes import DOT_ATOM_ADDRESS
from core.mail.models import OutboundMail
from core.tickets.models import Ticket
from core.tickets.timeline import append_event

SEND_ACTOR = "mail.send"
STATES = ("pending", "sending", "sent", "failed")

# Retries: 1 min, 2, 4, ... capped at 1 h; the 10th failed attempt gives up, about four hours
# after the first. An SLA warning that arrives later than that says nothing useful any more.
MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=1)

# Before the sweep re-sends a pending row, the job sent after its commit gets this long to
# arrive, so a normal send is not doubled by a sweep that runs right after the commit.
SWEEP_GRACE = timedelta(seconds=30)
# A row claimed longer ago than this belongs to a worker that died: SMTP timeouts are 30 s.
STALE_AFTER = timedelta(minutes=10)

# RFC 3834 section 5: "auto-generated" for mail that is not a response, "auto-replied" for
# automatic responses (acknowledgements). None or "no" marks a mail a person wrote.
AUTO_SUBMITTED_VALUES = ("auto-generated", "auto-replied", "no")
# Long threads: keep the root and the most recent ids (RFC 5322 3.6.4 lets a References field
# be shortened; some servers refuse very long header lines).
MAX_REFERENCES = 20

_TEMPLATE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MSG_ID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")


# --- Helpers for callers ---------------------------------------------------------------------


# Never in mail text: lone surrogates (no encoding has them) and control characters other than
# tab and line breaks; in a value on one line (one that may become a header), no line break.
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSAFE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
# RFC 2047 encoded-word syntax: an outgoing header decodes it, and fails on bytes that are no
# text in its charset (``=?utf-8?q?=FF=FE?=``).
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?]*\?=")


def _decoded_word(match: re.Match[str]) -> str:
    word = match.group(0)
    try:
        parts = decode_header(word)
    except (HeaderParseError, ValueError):
        return word.replace("=?", "= ?")
    out: list[str] = []
    for data, charset in parts:
        if isinstance(data, str):
            out.append(data)
            continue
        try:
            out.append(data.decode(charset or "utf-8", "replace"))
        except LookupError:
            out.append(data.decode("utf-8", "replace"))
    return "".join(out)


def clean_header_text(value: str) -> str:
    """Text that can go into a header of an outgoing mail: no lone surrogates, no control
    characters (tab stays), no line breaks, and no encoded-word syntax (decoded here, bytes
    that are no text replaced, so the header never decodes it into something it cannot
    encode again)."""
    if "=?" in value:
        value = _ENCODED_WORD.sub(_decoded_word, value)
    if _UNSAFE_LINE.search(value) is None:
        return value
    return _UNSAFE_LINE.sub(lambda m: " " if m.group(0) in "\r\n" else "", value)


def clean_body_text(value: str) -> str:
    """Text that can go into the body of an outgoing mail: no lone surrogates and no control
    characters (tab and line breaks stay)."""
    return _UNSAFE_TEXT.sub("", value) if _UNSAFE_TEXT.search(value) else value


# Context keys the subject templates use (templates/mail/*/subject.txt): always one line.
HEADER_KEYS = frozenset({"ticket_subject", "subject", "account", "failed_to", "new_status"})


def clean_context(value: Any, key: str = "") -> Any:
    """A mail context with every string clean: :func:`clean_header_text` for what a subject
    template uses (:data:`HEADER_KEYS`, any ``*subject``) and for any value on one line;
    :func:`clean_body_text` for the other, longer texts."""
    if isinstance(value, str):
        if key in HEADER_KEYS or key.endswith("subject"):
            return " ".join(clean_header_text(value).split())
        if "\n" in value or "\r" in value:
            return clean_body_text(value)
        return clean_header_text(value)
    if isinstance(value, dict):
        return {k: clean_context(item, str(k)) for k, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_context(item, key) for item in value]
    return value


def derive_mail_domain(configured: str, public_url: str) -> str:
    """The domain of our Message-IDs: the configured one, else the public URL's host.

    Takes plain values so ``web`` and ``workers`` can both call it with their settings
    (``mailgw.outbound.mail_domain(settings)`` wraps it).
    """
    if configured.strip():
        return configured.strip().lower()
    host = urlsplit(public_url).hostname or ""
    # An IP address or a bare "localhost" is no domain a reader can recognise (RFC 5322 3.6.4
    # only asks for uniqueness, but a dotted name keeps spam filters calm); .localhost is
    # reserved (RFC 6761), so the fallback can never be someone else's domain.
    if not host or host.replace(".", "").isdigit() or ":" in host or "." not in host:
        return "pulpit.localhost"
    return host.lower()


def new_message_id(mail_domain: str) -> str:
    """A globally unique ``<random@domain>`` (RFC 5322 3.6.4): 128 random bits."""
    domain = mail_domain.strip()
    if not domain or any(c.isspace() or c in "<>@" for c in domain):
        raise ValueError(f"{mail_domain!r} is not a usable Message-ID domain")
    return f"<{secrets.token_hex(16)}@{domain}>"


DEFAULT_TIMEZONE = "Europe/Warsaw"  # for tickets without a contract calendar, and staff mail


def ticket_timezone(ticket: Ticket) -> str:
    """The zone a mail shows the ticket's times in: its contract calendar's, else Warsaw."""
    calendar = ticket.contract.calendar if ticket.contract is not None else None
    return calendar.timezone if calendar is not None else DEFAULT_TIMEZONE


def mailable(user: User | None) -> bool:
    """May this user be sent mail at all: active, with an address not marked as bouncing."""
    return (
        user is not None and user.active and bool(user.email) and user.mail_bouncing_since is None
    )


def ticket_url(public_url: str, number: int) -> str:
    """The console page of a ticket, for links in mail."""
    return f"{public_url.rstrip('/')}/tickets/{number}"


def ticket_context(ticket: Ticket, *, public_url: str) -> dict[str, Any]:
    """What every mail about a ticket shows; ``ticket_number`` adds the ``[#N]`` subject tag."""
    return {
        "ticket_number": ticket.number,
        "ticket_subject": ticket.subject,
        "client": ticket.client.name if ticket.client is not None else None,
        "contract": ticket.contract.code if ticket.contract is not None else None,
        "url": ticket_url(public_url, ticket.number),
    }


def sla_context(
    ticket: Ticket,
    *,
    clock: str,
    due: datetime,
    used_percent: int,
    public_url: str,
    breached_at: datetime | None = None,
) -> dict[str, Any]:
    """The context of ``sla_warning`` (and, with ``breached_at``, ``sla_breach``).

    Times are stored as ISO 8601 in UTC with the calendar's zone beside them; the template
    shows them in that zone, in the reader's language (``mailgw.outbound``).
    """
    if clock not in ("reaction", "resolution"):
        raise ValueError(f"clock must be 'reaction' or 'resolution', not {clock!r}")
    context = ticket_context(ticket, public_url=public_url)
    context.update(
        clock=clock,
        due=_iso(due),
        timezone=ticket_timezone(ticket),
        used_percent=int(used_percent),
        breached_at=_iso(breached_at) if breached_at is not None else None,
    )
    return context


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given for a mail; use an aware UTC datetime")
    return moment.astimezone(UTC).isoformat()


# --- Queueing --------------------------------------------------------------------------------


def queue_mail(
    session: Session,
    *,
    template: str,
    to: str,
    context: dict[str, Any],
    mail_domain: str,
    language: str = "pl",
    ticket: Ticket | None = None,
    auto_submitted: str | None = "auto-generated",
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    reply_to: str | None = None,
    dedupe_key: str | None = None,
    now: datetime | None = None,
    attachments: Sequence[dict[str, str]] = (),
) -> OutboundMail | None:
    """Add a mail to the outbox in the caller's transaction; None when ``dedupe_key`` exists.

    The ``mail.send`` job is sent only after the caller commits. ``references`` are the
    thread's known Message-IDs, oldest first; ``in_reply_to`` defaults to the last of them
    and is appended to them when missing (RFC 5322 3.6.4), which is what threads in Outlook,
    Gmail and Thunderbird. ``attachments`` name files already in the blob store
    (``{"sha256", "filename", "content_type"}``); the sender reads them when it builds the mail.

    The row is stored (flushed) at once and returned with its id, also inside a :func:`batch`:
    the batch's waiting mails are written first, so the outbox keeps the order they were
    queued in. Mails that may wait for the end of a unit of work go to the batch instead
    (:meth:`OutboxBatch.queue`).
    """
    now = now or utcnow()
    to_addr, stored_context = _checked(template, to, context, auto_submitted)
    waiting = session.info.get(BATCH_INFO)
    if isinstance(waiting, OutboxBatch) and waiting.waiting:
        waiting.write()

    if dedupe_key is not None:
        exists = session.scalar(
            select(OutboundMail.id).where(OutboundMail.dedupe_key == dedupe_key)
        )
        if exists is not None:
            return None

    row = _new_row(
        now=now,
        mail_domain=mail_domain,
        ticket=ticket,
        template=template,
        language=language,
        to_addr=to_addr,
        context=stored_context,
        headers=_thread_headers(auto_submitted, in_reply_to, references, reply_to),
        dedupe_key=dedupe_key,
        attachments=attachments,
    )
    if dedupe_key is None:
        # Nothing here can collide (the Message-ID is new): no savepoint needed, which saves
        # three statements per mail on the hot path of every ticket change.
        session.add(row)
        session.flush()
        enqueue(session, SEND_ACTOR, outbound_id=row.id)
        return row
    # The caller's own pending changes first, so an error in them is not taken for ours.
    session.flush()
    jobs = list(session.info.get("pending_jobs", []))
    try:
        # A savepoint, so losing a race on dedupe_key costs only this row, not the caller's
        # whole transaction (the unique constraint is the last guard; the check above is the
        # cheap common case).
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # core.db drops every buffered job on any rollback, a savepoint's included; the
        # caller's jobs from before the savepoint still belong to its transaction.
        session.info["pending_jobs"] = jobs
        if dedupe_key is not None and session.scalar(
            select(OutboundMail.id).where(OutboundMail.dedupe_key == dedupe_key)
        ):
            return None
        raise
    enqueue(session, SEND_ACTOR, outbound_id=row.id)
    return row


def build_mail(
    *,
    template: str,
    to: str,
    context: dict[str, Any],
    mail_domain: str,
    language: str = "pl",
    ticket: Ticket | None = None,
    auto_submitted: str | None = "auto-generated",
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    reply_to: str | None = None,
    now: datetime | None = None,
    attachments: Sequence[dict[str, str]] = (),
) -> OutboundMail:
    """The outbox row :func:`queue_mail` would store (same checks, a new Message-ID), not
    added to any session: for :meth:`OutboxBatch.queue` and a :class:`DeferredMail`'s
    ``decide``, whose rows the batch stores together."""
    now = now or utcnow()
    to_addr, stored_context = _checked(template, to, context, auto_submitted)
    return _new_row(
        now=now,
        mail_domain=mail_domain,
        ticket=ticket,
        template=template,
        language=language,
        to_addr=to_addr,
        context=stored_context,
        headers=_thread_headers(auto_submitted, in_reply_to, references, reply_to),
        dedupe_key=None,
        attachments=attachments,
    )


def _checked(
    template: str, to: str, context: dict[str, Any], auto_submitted: str | None
) -> tuple[str, dict[str, Any]]:
    """The recipient and the stored context of a mail, or an error for the caller."""
    if not _TEMPLATE_NAME.match(template):
        raise ValueError(f"{template!r} is not a mail template name (lower case, digits, _)")
    to_addr = _check_recipient(to)
    if auto_submitted is not None and auto_submitted not in AUTO_SUBMITTED_VALUES:
        raise ValueError(f"Auto-Submitted must be one of {AUTO_SUBMITTED_VALUES}")
    try:
        # Round-trip now: a datetime or an object in the context fails here, in the caller's
        # request, not minutes later in a worker.
        stored_context = clean_context(json.loads(json.dumps(context)))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"mail context must be plain JSON (ISO strings for times): {exc}") from None
    return to_addr, stored_context


def _new_row(
    *,
    now: datetime,
    mail_domain: str,
    ticket: Ticket | None,
    template: str,
    language: str,
    to_addr: str,
    context: dict[str, Any],
    headers: dict[str, str],
    dedupe_key: str | None,
    attachments: Sequence[dict[str, str]],
) -> OutboundMail:
    return OutboundMail(
        created_at=now,
        message_id=new_message_id(mail_domain),
        ticket=ticket,
        template=template,
        language=(language or "pl").strip().lower()[:8],
        to_addr=to_addr,
        context=context,
        headers=headers,
        dedupe_key=dedupe_key,
        attachments=[dict(a) for a in attachments],
        state="pending",
        attempts=0,
        next_attempt_at=now,
        enqueued_at=now,
    )


# --- Batches: many mails of one unit of work, stored together --------------------------------

BATCH_INFO = "pulpit_outbox_batch"


class DeferredMail(Protocol):
    """A mail whose last decisions wait for its batch to be written.

    ``decide`` runs when the batch is written, in the order the mails were queued, and
    returns the row to store (:func:`build_mail`) or None to send nothing. It may look at
    :attr:`OutboxBatch.writing` (every mail of this write, to look things up for all of
    them at once, kept in :attr:`OutboxBatch.memo`) and :attr:`OutboxBatch.written` (the rows
    decided before it, which the database does not hold yet).
    ``core.notify.notifications`` defers its notifications this way, so loop protection and
    threading ask the database once per batch instead of once per mail.
    """

    def decide(self, batch: OutboxBatch) -> OutboundMail | None: ...


class OutboxBatch:
    """The mails one unit of work queues, stored with one flush (one multi-row INSERT) and
    their ``mail.send`` jobs buffered together when the batch is written.

    Open one with :func:`batch`; :func:`open_batch` gives the session's open one. What
    changes for the caller: a row queued here has no id and is not in the database before
    :meth:`write` (the end of the outermost ``with batch(...)``, a commit, or a
    :func:`queue_mail` call, which writes the waiting mails first to keep their order).
    A rollback drops the mails queued since the transaction or savepoint began, as it
    drops stored rows; a mail decided and written is the database's from then on.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._waiting: list[OutboundMail | DeferredMail] = []
        # Savepoint -> how many waiting mails it began after (core.db keeps jobs the same way).
        self._marks: dict[SessionTransaction, int] = {}
        self._depth = 0
        #: During :meth:`write`: every mail being written, in order.
        self.writing: list[OutboundMail | DeferredMail] = []
        #: During :meth:`write`: the rows decided so far, in order.
        self.written: list[OutboundMail] = []
        #: During :meth:`write`: what the deferred mails looked up for the whole write.
        self.memo: dict[str, Any] = {}

    @property
    def waiting(self) -> int:
        """How many mails wait to be written."""
        return len(self._waiting)

    def queue(
        self,
        *,
        template: str,
        to: str,
        context: dict[str, Any],
        mail_domain: str,
        language: str = "pl",
        ticket: Ticket | None = None,
        auto_submitted: str | None = "auto-generated",
        in_reply_to: str | None = None,
        references: Sequence[str] = (),
        reply_to: str | None = None,
        now: datetime | None = None,
        attachments: Sequence[dict[str, str]] = (),
    ) -> OutboundMail:
        """:func:`queue_mail` for the batch: checked now, stored when the batch is written
        (the row has no id before). No ``dedupe_key`` here: that needs its own savepoint."""
        row = build_mail(
            template=template,
            to=to,
            context=context,
            mail_domain=mail_domain,
            language=language,
            ticket=ticket,
            auto_submitted=auto_submitted,
            in_reply_to=in_reply_to,
            references=references,
            reply_to=reply_to,
            now=now,
            attachments=attachments,
        )
        self._waiting.append(row)
        return row

    def defer(self, mail: DeferredMail) -> None:
        """Queue a mail whose row is decided when the batch is written."""
        self._waiting.append(mail)

    def write(self) -> list[OutboundMail]:
        """Decide the deferred mails in order, store every row with one flush, and buffer
        their ``mail.send`` jobs for after the commit. Returns the stored rows."""
        stored: list[OutboundMail] = []
        while self._waiting:
            self.writing, self._waiting = self._waiting, []
            self.written, self.memo = [], {}
            try:
                for mail in self.writing:
                    row = mail if isinstance(mail, OutboundMail) else mail.decide(self)
                    if row is not None:
                        self.written.append(row)
                rows = self.written
                self.session.add_all(rows)
                self.session.flush()
            finally:
                self.writing, self.written, self.memo = [], [], {}
            for row in rows:
                enqueue(self.session, SEND_ACTOR, outbound_id=row.id)
            # What was written is in the database now, inside whichever savepoints are open:
            # their rollback removes it there. Only mails queued from now on wait here.
            self._marks = dict.fromkeys(self._marks, 0)
            stored += rows
        return stored


def open_batch(session: Session) -> OutboxBatch | None:
    """The session's open :class:`OutboxBatch`, if any."""
    found = session.info.get(BATCH_INFO)
    return found if isinstance(found, OutboxBatch) else None


@contextmanager
def batch(session: Session) -> Iterator[OutboxBatch]:
    """Collect the mails queued in the block and store them together at its end.

    Nested blocks join the outermost, which writes; a single mail queued this way is written
    at once, like :func:`queue_mail`. ``core.notify.notifications`` queues every
    notification through here, so wrapping a unit of work that notifies many people (a bulk
    status change, a batch of inbound mail) in ``with outbox.batch(session):`` stores all
    its notifications with one INSERT and asks loop protection once. When the block ends
    with an error nothing is written: the mails wait for the transaction's commit (which
    writes them) or its rollback (which drops them), as stored rows would.
    """
    current = open_batch(session)
    if current is None:
        current = OutboxBatch(session)
        session.info[BATCH_INFO] = current
    current._depth += 1
    try:
        yield current
    except BaseException:
        current._depth -= 1
        raise
    current._depth -= 1
    if current._depth == 0:
        try:
            current.write()
        finally:
            if current._depth == 0 and not current.waiting:
                session.info.pop(BATCH_INFO, None)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    # A unit of work that commits inside the block (or after leaving it with an error it
    # handled) still stores its mails: what is committed is what would have been flushed.
    found = open_batch(session)
    if found is not None and found.waiting and not session.in_nested_transaction():
        found.write()


@event.listens_for(Session, "after_transaction_create")
def _mark_batch_savepoint(session: Session, transaction: SessionTransaction) -> None:
    found = open_batch(session)
    if found is not None and transaction.nested:
        found._marks[transaction] = found.waiting


@event.listens_for(Session, "after_soft_rollback")
def _drop_batch_mails(session: Session, previous_transaction: SessionTransaction) -> None:
    # A savepoint's rollback drops the mails queued inside it (the outermost transaction's
    # end is handled below, which runs first).
    found = open_batch(session)
    if found is not None and previous_transaction.nested:
        mark = found._marks.pop(previous_transaction, None)
        if mark is not None:
            del found._waiting[mark:]


@event.listens_for(Session, "after_transaction_end")
def _forget_batch_mails(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended: committed mails were written before the commit, and
    # those still waiting belong to a rollback (or a close), so they are dropped with it.
    found = open_batch(session)
    if found is None or transaction.parent is not None:
        return
    found._waiting.clear()
    found._marks.clear()
    if found._depth == 0:
        session.info.pop(BATCH_INFO, None)


_DOT_ATOM_ADDRESS = re.compile(DOT_ATOM_ADDRESS)


def _check_recipient(to: str) -> str:
    value = (to or "").strip()
    if "\r" in value or "\n" in value:
        # A line break here would let a caller add headers of their choosing.
        raise ValueError("a recipient address cannot contain a line break")
    if _DOT_ATOM_ADDRESS.fullmatch(value):
        # What nearly every recipient is (a user's stored address), which parseaddr gives back.
        return value
    name, addr = parseaddr(value)
    if not addr or "@" not in addr or " " in addr:
        raise ValueError(f"{to!r} is not an e-mail address")
    return value


def _normalise_msg_id(value: str) -> str:
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    if not _MSG_ID.match(value):
        raise ValueError(f"{value!r} is not a Message-ID")
    return value


def _thread_headers(
    auto_submitted: str | None,
    in_reply_to: str | None,
    references: Sequence[str],
    reply_to: str | None,
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if auto_submitted is not None and auto_submitted != "no":
        headers["Auto-Submitted"] = auto_submitted
    refs: list[str] = []
    for ref in references:
        ref = _normalise_msg_id(ref)
        if ref not in refs:
            refs.append(ref)
    parent = _normalise_msg_id(in_reply_to) if in_reply_to else (refs[-1] if refs else None)
    if parent is not None and parent not in refs:
        refs.append(parent)
    if len(refs) > MAX_REFERENCES:
        refs = refs[:1] + refs[-(MAX_REFERENCES - 1) :]
    if parent is not None:
        headers["In-Reply-To"] = parent
        headers["References"] = " ".join(refs)
    if reply_to:
        headers["Reply-To"] = _check_recipient(reply_to)
    return headers


# --- Sending: the state machine the mail.send actor drives -----------------------------------


def claim(session: Session, outbound_id: int, now: datetime) -> OutboundMail | None:
    """Take a due pending row for sending; None when it is not (any more) ours to send.

    :func:`claim_batch` for this row alone: of two workers holding the same id, the one
    that finds it locked or already ``sending`` takes nothing, so a mail is never sent twice
    by a doubled job.
    """
    rows = claim_batch(session, outbound_id, now, limit=1)
    return rows[0] if rows else None


# How many due rows one mail.send job takes with it (its own first). A transaction's outgoing
# mails share one job for every so many (:func:`merge_send_jobs`), and a job with room takes
# the others due too: a claim, a render and an outcome per mail instead of a transaction each.
SEND_BATCH = 20


def merge_send_jobs(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``mail.send`` jobs of one commit as one job for every :data:`SEND_BATCH` rows: its
    ``outbound_id`` the first, ``also`` the others (``core.db.merge_jobs_of``)."""
    ids: list[int] = []
    for kwargs in jobs:
        ids += [kwargs["outbound_id"], *kwargs.get("also", ())]
    return [
        {"outbound_id": group[0], "also": group[1:]}
        if len(group) > 1
        else {"outbound_id": group[0]}
        for group in (ids[i : i + SEND_BATCH] for i in range(0, len(ids), SEND_BATCH))
    ]


merge_jobs_of(SEND_ACTOR, merge_send_jobs)


def claim_batch(
    session: Session,
    outbound_id: int,
    now: datetime,
    *,
    limit: int = SEND_BATCH,
    also: Sequence[int] = (),
) -> list[OutboundMail]:
    """Claim the job's own rows (``outbound_id`` and ``also``) that are due, then other due
    pending rows up to ``limit``; its own first.

    The job's own rows are all taken, whatever ``limit``: no other job will come for them.
    Empty when none of the job's own rows is ours to send (already sent, being sent, not due):
    a job never sends other rows without one of its own, so a doubled or late job changes
    nothing. Taking the others saves their jobs a transaction each and lets one relay
    connection carry them. Rows another worker is claiming are skipped, not waited for (``SKIP
    LOCKED`` on PostgreSQL; SQLite has one writer at a time anyway). The claim commits with the
    caller's unit of work.
    """
    mine = [outbound_id, *also]
    is_due = (OutboundMail.state == "pending", OutboundMail.next_attempt_at <= now)
    if session.get_bind().dialect.name == "postgresql":
        return _claim_in_one_statement(session, mine, is_due, now, limit=limit)
    # A cheap read first: a doubled or late job finds its rows sent by another's batch.
    if (
        session.scalar(select(OutboundMail.id).where(OutboundMail.id.in_(mine), *is_due).limit(1))
        is None
    ):
        return []
    ids = list(
        session.scalars(
            select(OutboundMail.id)
            .where(OutboundMail.id.in_(mine), *is_due)
            .order_by(OutboundMail.id)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    if len(ids) < limit:
        ids += session.scalars(
            select(OutboundMail.id)
            .where(*is_due, OutboundMail.id.not_in(mine))
            .order_by(OutboundMail.id)
            .limit(limit - len(ids))
            .with_for_update(skip_locked=True)
        )
    session.execute(
        update(OutboundMail)
        .where(OutboundMail.id.in_(ids), *is_due)
        .values(state="sending", claimed_at=now, attempts=OutboundMail.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    rows = session.scalars(
        select(OutboundMail)
        .where(OutboundMail.id.in_(ids), OutboundMail.state == "sending")
        .execution_options(populate_existing=True)
    ).all()
    return _own_first(rows, mine)


def _claim_in_one_statement(
    session: Session,
    mine: list[int],
    is_due: tuple[ColumnElement[bool], ...],
    now: datetime,
    *,
    limit: int,
) -> list[OutboundMail]:
    """:func:`claim_batch` on PostgreSQL: the job's own due rows and the others, locked
    (``SKIP LOCKED``), marked ``sending`` and read back with one ``UPDATE ... RETURNING``,
    where the steps took four statements (a send job's claim was a fifth of its CPU). The
    others are taken only when one of its own rows was, up to ``limit`` in all."""
    own = (
        select(OutboundMail.id)
        .where(OutboundMail.id.in_(mine), *is_due)
        .order_by(OutboundMail.id)
        .with_for_update(skip_locked=True)
        .cte("own")
    )
    taken = select(func.count()).select_from(own).scalar_subquery()
    others = (
        select(OutboundMail.id)
        .where(*is_due, OutboundMail.id.not_in(mine), exists(select(own.c.id)))
        .order_by(OutboundMail.id)
        .limit(func.greatest(limit - taken, 0))
        .with_for_update(skip_locked=True)
        .cte("others")
    )
    wanted = union_all(select(own.c.id), select(others.c.id))
    rows = session.scalars(
        update(OutboundMail)
        .where(OutboundMail.id.in_(wanted))
        .values(state="sending", claimed_at=now, attempts=OutboundMail.attempts + 1)
        .returning(OutboundMail)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).all()
    return _own_first(rows, mine)


def _own_first(rows: Sequence[OutboundMail], mine: Sequence[int]) -> list[OutboundMail]:
    """The claimed rows, the job's own first, each part by id."""
    own = set(mine)
    return sorted(rows, key=lambda row: (row.id not in own, row.id))


def release(row: OutboundMail) -> None:
    """Give back a claimed row that was not tried (the worker was stopped during its batch).

    The attempt is not counted and the row is due at once: its own job, or the sweep, sends it.
    """
    row.state = "pending"
    row.attempts = max(row.attempts - 1, 0)
    row.claimed_at = None


def mark_sent_many(session: Session, ids: Sequence[int], now: datetime) -> None:
    """:func:`mark_sent` for many rows in one statement."""
    if ids:
        session.execute(
            update(OutboundMail)
            .where(OutboundMail.id.in_(ids))
            .values(state="sent", sent_at=now)
            .execution_options(synchronize_session=False)
        )


def mark_sent(row: OutboundMail, now: datetime) -> None:
    """The relay accepted the mail."""
    row.state = "sent"
    row.sent_at = now


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: 1 min, 2, 4, ... at most 1 h."""
    delay = FIRST_RETRY * (2 ** max(attempts - 1, 0))
    return min(delay, MAX_RETRY)


def mark_retry(
    row: OutboundMail, error: str, now: datetime, *, max_attempts: int = MAX_ATTEMPTS
) -> DeliveryFailure | None:
    """A temporary failure: back to pending with a later attempt.

    After ``max_attempts`` it gives up: the row is marked failed and the failure is returned,
    for the caller to report (:func:`core.notify.delivery_failures.tell_staff`); None while
    another attempt is scheduled.
    """
    if row.attempts >= max_attempts:
        return mark_failed(row, f"gave up after {row.attempts} attempts: {error}", now=now)
    row.state = "pending"
    row.last_error = error[:2000]
    row.next_attempt_at = now + retry_delay(row.attempts)
    return None


@dataclass(frozen=True)
class DeliveryFailure:
    """A mail that will not be delivered, as reported to whoever marked it failed.

    The outbox sits below the notifications, so it does not tell anyone itself: the caller
    (the send actor, the sweep) hands each failure to
    :func:`core.notify.delivery_failures.tell_staff` in the same transaction.
    """

    row: OutboundMail
    error: str
    at: datetime
    subject: str | None = None


def mark_failed(
    row: OutboundMail, error: str, *, now: datetime | None = None, subject: str | None = None
) -> DeliveryFailure | None:
    """A permanent failure; a mail about a ticket leaves an internal note on its timeline.

    Staff then see that the client never got the mail, instead of waiting for an answer.
    Returns the failure to report, or None when the row had failed already.
    """
    if row.state == "failed":
        return None
    at = now or utcnow()
    row.state = "failed"
    row.last_error = error[:2000]
    failure = DeliveryFailure(row, error, at, subject)
    if row.ticket_id is None:
        return failure
    session = Session.object_session(row)
    if session is None:
        raise RuntimeError("mark_failed needs a row that belongs to a session")
    data: dict[str, Any] = {
        "delivery_failed": error[:2000],
        "to": row.to_addr,
        "template": row.template,
        "outbound_id": row.id,
    }
    if subject:
        data["subject"] = subject
    ticket = row.ticket
    if ticket is None:
        return failure
    append_event(
        session,
        ticket,
        "email_out",
        author=None,
        at=at,
        body_text=f"{row.to_addr}: {error}"[:2000],
        message_id=row.message_id,
        data=data,
    )
    return failure


# --- What admins see and do about the outbox -------------------------------------------------


def check_access(user: User) -> None:
    """The outbox holds every recipient's address: only users with the ``outbox`` action
    (administrators, ``core.access.permissions``) list it or send its mail again."""
    if not can(user, "outbox"):
        raise Forbidden(N_("the outbox is for administrators"))


def list_outbound(
    session: Session, *, state: str | None = None, limit: int = 200
) -> list[OutboundMail]:
    """Outbox rows, newest first; ``state`` narrows to one of :data:`STATES`."""
    if state is not None and state not in STATES:
        raise InputError(f"state must be one of {', '.join(STATES)}, not {state!r}")
    query = (
        select(OutboundMail)
        .options(selectinload(OutboundMail.ticket))
        .order_by(OutboundMail.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    if state is not None:
        query = query.where(OutboundMail.state == state)
    return list(session.scalars(query))


def outbound_json(row: OutboundMail) -> dict[str, Any]:
    """One outbox row as the API and ``pulpit mail outbox --json`` show it."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "id": row.id,
        "state": row.state,
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "next_attempt_at": iso(row.next_attempt_at) if row.state == "pending" else None,
        "to": row.to_addr,
        "template": row.template,
        "language": row.language,
        "message_id": row.message_id,
        "ticket": row.ticket.number if row.ticket is not None else None,
        "attempts": row.attempts,
        "last_error": row.last_error,
    }


def resend(
    session: Session, ids: Sequence[int], now: datetime, *, actor: str | None
) -> list[OutboundMail]:
    """Give failed rows a new start (the address was corrected, the relay fixed): pending, due
    now, attempts from zero, a job after the commit. Only ``failed`` rows: a pending or sending
    row is on its way already, and a sent one would reach its recipient twice."""
    wanted = list(dict.fromkeys(ids))
    rows = {
        row.id: row
        for row in session.scalars(select(OutboundMail).where(OutboundMail.id.in_(wanted)))
    }
    missing = [str(i) for i in wanted if i not in rows]
    if missing:
        raise NotFound(f"no outgoing mail with id {', '.join(missing)}")
    not_failed = [f"{i} ({rows[i].state})" for i in wanted if rows[i].state != "failed"]
    if not_failed:
        raise InputError(f"only failed mail can be sent again; not failed: {', '.join(not_failed)}")
    for outbound_id in wanted:
        row = rows[outbound_id]
        row.state = "pending"
        row.attempts = 0
        row.next_attempt_at = now
        row.enqueued_at = now
        row.claimed_at = None
        enqueue(session, SEND_ACTOR, outbound_id=row.id)
    if wanted:
        session.add(AuditEntry(actor=actor, action="outbox.resend", data={"ids": wanted}))
    return [rows[i] for i in wanted]


def release_stale(
    session: Session, now: datetime, *, stale_after: timedelta = STALE_AFTER, limit: int = 500
) -> list[DeliveryFailure]:
    """Rows left ``sending`` by a worker that died go back to pending, or fail when their
    attempts are spent; returns those failures for the caller to report."""
    failures: list[DeliveryFailure] = []
    stale = session.scalars(
        select(OutboundMail)
        .where(OutboundMail.state == "sending", OutboundMail.claimed_at < now - stale_after)
        .order_by(OutboundMail.id)
        .limit(limit)
    ).all()
    for row in stale:
        note = f"the worker stopped while sending (claimed at {row.claimed_at:%Y-%m-%dT%H:%M:%SZ})"
        if row.attempts >= MAX_ATTEMPTS:
            failure = mark_failed(row, note, now=now)
            if failure is not None:
                failures.append(failure)
        else:
            row.state = "pending"
            row.last_error = note
            row.next_attempt_at = now
            row.enqueued_at = None
    session.flush()
    return failures


def due_for_sweep(
    session: Session,
    now: datetime,
    *,
    grace: timedelta = SWEEP_GRACE,
    limit: int = 500,
) -> list[int]:
    """Ids of rows to send ``mail.send`` for again (after :func:`release_stale`).

    A pending row is due when its ``next_attempt_at`` has come and no job was handed over for
    it within ``grace`` (the job after a commit, or a previous sweep): that covers retries
    after a temporary failure and jobs lost with a memory:// broker. Marks the returned rows as
    just enqueued; the caller sends the jobs after its commit.
    """
    ids = list(
        session.scalars(
            select(OutboundMail.id)
            .where(
                OutboundMail.state == "pending",
                OutboundMail.next_attempt_at <= now,
                or_(OutboundMail.enqueued_at.is_(None), OutboundMail.enqueued_at <= now - grace),
            )
            .order_by(OutboundMail.next_attempt_at, OutboundMail.id)
            .limit(limit)
        )
    )
    if ids:
        session.execute(
            update(OutboundMail)
            .where(OutboundMail.id.in_(ids))
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids
