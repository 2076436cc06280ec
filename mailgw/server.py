"""The inbound SMTP (or LMTP) gateway: mail in, stored durably, then 250.

Modelled on GNU Mailman 3's LMTP runner:

* at ``RCPT`` a recipient that is no mailbox of ours is refused with ``550 5.1.1`` (RFC 5321
  4.2.2 / RFC 3463 X.1.1, bad destination mailbox), so the sending server tells its user at
  once instead of us bouncing later to a sender that may be forged;
* at ``DATA`` the raw bytes go to the fsynced blob store and an :class:`InboundMessage` row is
  committed (:func:`core.mail.inbound.store_many` inside :func:`core.db.unit_of_work`, mails that
  arrive together in one transaction: :mod:`mailgw.group_commit`), and only after the commit
  returned do we answer ``250 2.0.0``. Any failure to store answers ``451
  4.3.0`` (RFC 5321 4.2.5: the receiver must not answer 250 before it has taken
  responsibility; 4yz makes the sender keep the message and retry).

aiosmtpd answers ``500`` when a hook raises and ``250`` when no ``DATA`` hook exists; the
handler below has every hook and catches everything while storing, so neither can happen.

The blocking database and disk work runs off the event loop (the recipient check in its thread
pool, storing on the group committer's writer thread), so one slow commit does not hold up
the other connections. Errors that are the sender's fault (unknown
recipient) are logged at INFO; the operator's (database down, disk full) at ERROR with the
traceback and the Message-ID, as Zulip's email gateway separates them.

Lines longer than RFC 5321 4.5.3.1.6's 1000 octets are accepted (as Postfix does): a
client's broken mailer must not get a bounce from us. The size limit is announced with the
SIZE extension (RFC 1870) and enforced with ``552``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import BlobStore, open_blob_store
from core.contracts import snapshot
from core.db import Job, take_pending_jobs, unit_of_work
from core.mail.inbound import Arrival, header_message_id, store_many
from core.mail.outbox import derive_mail_domain
from mailgw.group_commit import GroupCommitter
from mailgw.recipients import Mailboxes
from mailgw.smtp_data import TooBig, read_data

log = logging.getLogger(__name__)

REPLY_UNKNOWN_MAILBOX = "550 5.1.1 <{address}>: no such mailbox here"
REPLY_TRY_LATER = "451 4.3.0 try again later"
REPLY_NOT_STORED = "451 4.3.0 Could not store the message; please retry"
REPLY_QUEUED = "250 2.0.0 Ok: queued as {id}"
REPLY_RCPT_OK = "250 2.1.5 Ok"
# RFC 3463 X.3.4: message too big for system. Replaces aiosmtpd's "500 Line too long", which
# it only says for a line longer than the whole size limit, i.e. for a message too big.
REPLY_TOO_BIG = "552 5.3.4 Message too big for system"

# Slack on top of the size limit for the stream reader's line buffer: a message within the
# limit may be one single line (base64 without breaks, minified HTML) and must still pass.
LINE_SLACK = 64 * 1024
UNLIMITED_LINE = 64 * 1024 * 1024


class _LongLines:
    """Mixin for aiosmtpd's SMTP and LMTP: lines as long as the size limit allows.

    aiosmtpd reads with an ``asyncio.StreamReader`` whose limit is the class attribute
    ``line_length_limit`` (1001, RFC 5321 4.5.3.1.6) and answers ``500 Line too long`` over
    it. Postfix accepts longer lines, and so do we: the limit becomes the message size limit.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        size = kwargs.get("data_size_limit")
        # Set before SMTP.__init__ builds the StreamReader from it; an instance attribute
        # shadows the class one.
        self.line_length_limit = size + LINE_SLACK if size else UNLIMITED_LINE
        super().__init__(*args, **kwargs)

    async def push(self, status: Any) -> None:
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else str(status)
        if text.startswith("500 Line too long"):
            status = REPLY_TOO_BIG
        await super().push(status)  # type: ignore[misc]


class _DataInPieces:
    """Mixin for aiosmtpd's SMTP and LMTP: ``DATA`` read in a few large pieces
    (:func:`mailgw.smtp_data.read_data`) instead of line by line, with aiosmtpd's answers
    otherwise; over the size limit (or the line limit, which is the size limit here) the
    answer is ``552 5.3.4`` either way. With ``decode_data`` on, aiosmtpd's own reading."""

    _decode_data: bool
    _handle_hooks: dict[str, Any]
    _reader: asyncio.StreamReader
    _writer: asyncio.StreamWriter
    envelope: Envelope | None
    data_size_limit: int | None
    line_length_limit: int

    async def smtp_DATA(self, arg: str) -> None:
        smtp: Any = self  # aiosmtpd's methods, which this mixin's own type does not know
        if self._decode_data or "DATA" not in self._handle_hooks:
            await super().smtp_DATA(arg)  # type: ignore[misc]
            return
        if await smtp.check_helo_needed() or await smtp.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await smtp.push("503 Error: need RCPT command")
            return
        if arg:
            await smtp.push("501 Syntax: DATA")
            return
        await smtp.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await read_data(
                self._reader, size_limit=self.data_size_limit, line_limit=self.line_length_limit
            )
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        except TooBig:
            smtp._set_post_data_state()
            await smtp.push(REPLY_TOO_BIG)
            return
        self.envelope.content = self.envelope.original_content = content
        status = await smtp._call_handler_hook("DATA")
        smtp._set_post_data_state()
        await smtp.push("250 OK" if status is MISSING else status)


# RFC 5321 4.1.2 Path in its everyday form: <dot-atom@domain>, then the parameters.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(
    rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+(\S.*))?[ \t]*",
    re.DOTALL,
)


class _PlainPaths:
    """Mixin: MAIL FROM and RCPT TO paths of the everyday form read by one regular expression.

    aiosmtpd's ``_getaddr`` parses every path with the email package's RFC 5322 parser and
    declares a ``typing.Protocol`` class on each call (a class creation per MAIL and RCPT):
    a few per cent of the gateway's CPU. The same answer for ``<local@domain> PARAMS``; any
    other form (``<>``, quoted local parts, comments, source routes) goes to aiosmtpd's.
    """

    local_part_limit: int

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.fullmatch(arg)
        if match is None:
            return super()._getaddr(arg)  # type: ignore[misc, no-any-return]
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, match.group(2) or ""


class GatewaySMTP(_PlainPaths, _DataInPieces, _LongLines, SMTP):
    """aiosmtpd's SMTP with long lines accepted and DATA read in pieces."""


class GatewayLMTP(_PlainPaths, _DataInPieces, _LongLines, LMTP):
    """aiosmtpd's LMTP (RFC 2033) with long lines accepted and DATA read in pieces."""


class GatewayHandler:
    """aiosmtpd hooks: check recipients at RCPT, store at DATA, answer only then."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        blobs: BlobStore,
        mail_domain: str,
        *,
        lmtp: bool = False,
        jobs_per: int = 1,
    ) -> None:
        self.session_factory = session_factory
        # One mail.process job per so many mails stored together (PULPIT_MAIL_BATCH).
        self.jobs_per = jobs_per
        self.blobs = blobs
        self.mail_domain = mail_domain
        self.lmtp = lmtp
        self.source = "lmtp" if lmtp else "smtp"
        # Our mailbox addresses: from the configuration snapshot, or a few seconds' read of
        # the table (mailgw.recipients).
        self._mailboxes: Mailboxes | None = None
        self._engine = snapshot.engine_of(session_factory)
        # Mails that arrive together are stored in one transaction (mailgw.group_commit).
        self._committer = GroupCommitter(self._store)

    # -- blocking work, run off the event loop ------------------------------------------------

    def _from_snapshot(self, config: snapshot.Snapshot) -> Mailboxes:
        """The mailbox list of a configuration snapshot, made again only when it changes."""
        mailboxes = self._mailboxes
        if mailboxes is None or mailboxes.token != config.token:
            mailboxes = self._mailboxes = Mailboxes(config.addresses, token=config.token)
        return mailboxes

    def _known_mailboxes(self) -> Mailboxes | None:
        """The mailboxes, when knowing them needs no database: the snapshot a running watch
        vouches for (PostgreSQL), else the table read less than a few seconds ago."""
        config = snapshot.cached(self._engine) if self._engine is not None else None
        if config is not None:
            return self._from_snapshot(config)
        mailboxes = self._mailboxes
        if mailboxes is not None and mailboxes.token is None and mailboxes.fresh():
            return mailboxes
        return None

    def _is_ours(self, address: str) -> bool:
        mailboxes = self._known_mailboxes()
        if mailboxes is None:
            config = snapshot.watched(self.session_factory)  # builds the snapshot if need be
            if config is not None:
                # Kept current by the configuration watch (PostgreSQL): no query per RCPT.
                mailboxes = self._from_snapshot(config)
            else:
                with self.session_factory() as session:
                    mailboxes = self._mailboxes = Mailboxes.load(session)
        return mailboxes.accepts(address, self.mail_domain)

    def _store(self, arrivals: Sequence[Arrival]) -> tuple[list[int], list[Job]]:
        """Store messages in one unit of work (the group committer's batch); their ids, and
        their processing jobs for the committer to send once the senders have their 250."""
        with unit_of_work(self.session_factory) as session:
            ids = store_many(
                session, arrivals, source=self.source, blobs=self.blobs, jobs_per=self.jobs_per
            )
            jobs = take_pending_jobs(session)
        # unit_of_work has committed when we get here: the messages are ours now.
        return ids, jobs

    def close(self) -> None:
        """Store what is in flight, then stop the writer thread."""
        self._committer.close()

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # -- aiosmtpd hooks -----------------------------------------------------------------------

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        try:
            mailboxes = self._known_mailboxes()
            if mailboxes is not None:
                ours = mailboxes.accepts(address, self.mail_domain)  # no database: no thread
            else:
                ours = await self._in_thread(self._is_ours, address)
        except Exception:
            # The operator's problem, not the sender's: never say 550 for a mailbox that may
            # exist; 451 makes the sending server retry (RFC 5321 4.2.5).
            log.exception("cannot check recipient %s: the database did not answer", address)
            return REPLY_TRY_LATER
        if not ours:
            log.info(
                "refused recipient %s from %s (peer %s): no such mailbox",
                address,
                envelope.mail_from,
                session.peer,
            )
            return REPLY_UNKNOWN_MAILBOX.format(address=address)
        envelope.rcpt_tos.append(address)
        return REPLY_RCPT_OK

    async def handle_DATA(self, server: SMTP, session: SMTPSession, envelope: Envelope) -> str:
        rcpt_tos = list(envelope.rcpt_tos)
        message_id: str | None = None
        try:
            raw = envelope.original_content
            if raw is None:
                content = envelope.content
                raw = (
                    content.encode("utf-8", "surrogateescape")
                    if isinstance(content, str)
                    else bytes(content or b"")
                )
            message_id = header_message_id(raw)
            # The blob file first, in the pool: its fsyncs run in parallel with the other
            # connections' instead of one after another on the committer's thread. Announced
            # meanwhile, so that a batch being formed waits for it (mailgw.group_commit).
            self._committer.announce()
            try:
                digest = await self._in_thread(self.blobs.write, raw)
                arrival = Arrival(
                    raw, envelope.mail_from, rcpt_tos, sha256=digest, message_id=message_id
                )
            except BaseException:
                self._committer.withdraw()  # else every batch would wait for it in vain
                raise
            inbound_id = await asyncio.wrap_future(self._committer.submit(arrival))
        except Exception:
            # Database down, disk full, anything: the sender keeps the message and retries.
            # Nothing is half-stored: the unit of work rolled back (a blob written before the
            # failure is content-addressed and harmless; the next attempt reuses it).
            log.exception(
                "could not store a message from %s to %s (Message-ID %s); answered 451",
                envelope.mail_from,
                ", ".join(rcpt_tos),
                message_id or "none",
            )
            return self._per_recipient(REPLY_NOT_STORED, rcpt_tos)
        log.info(
            "stored inbound message %d from %s to %s (Message-ID %s)",
            inbound_id,
            envelope.mail_from,
            ", ".join(rcpt_tos),
            message_id or "none",
        )
        return self._per_recipient(REPLY_QUEUED.format(id=inbound_id), rcpt_tos)

    def _per_recipient(self, reply: str, rcpt_tos: list[str]) -> str:
        # LMTP (RFC 2033 4.2) answers DATA once per accepted recipient, in RCPT order. The
        # message is stored once for all of them, so every recipient gets the same answer.
        if self.lmtp and rcpt_tos:
            return "\r\n".join(reply for _ in rcpt_tos)
        return reply


class _GatewayController(Controller):
    """aiosmtpd's Controller building our SMTP or LMTP class."""

    def __init__(self, handler: GatewayHandler, *, lmtp: bool, **kwargs: Any) -> None:
        self._lmtp = lmtp
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        cls = GatewayLMTP if self._lmtp else GatewaySMTP
        return cls(self.handler, **self.SMTP_kwargs)


@dataclass
class GatewayHandle:
    """A running gateway: where it listens, and how to stop it."""

    host: str
    port: int
    lmtp: bool
    controller: Controller = field(repr=False)

    def stop(self) -> None:
        self.controller.stop()
        handler = self.controller.handler
        if isinstance(handler, GatewayHandler):
            handler.close()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A server TLS context for STARTTLS (RFC 3207) when the settings name a certificate.

    ``smtp_tls_cert`` / ``smtp_tls_key`` are read with ``getattr``: the settings object may
    not have them yet, and then STARTTLS is simply not offered.
    """
    cert = settings.smtp_tls_cert
    if not cert:
        return None
    key = settings.smtp_tls_key or None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _free_port(host: str) -> int:
    # aiosmtpd's Controller connects to its own port once to start the server, so port 0
    # cannot be handed to it; pick a free one first (tests and benchmarks use this).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start(
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    blobs: BlobStore | None = None,
    lmtp: bool = False,
) -> GatewayHandle:
    """Start the gateway on ``settings.smtp_host:settings.smtp_port`` in a background thread.

    Returns once it listens. Port 0 picks a free port (see :attr:`GatewayHandle.port`).
    Raises ``OSError`` (or aiosmtpd's error wrapping it) when the address cannot be bound.
    """
    mail_domain = derive_mail_domain(settings.mail_domain, settings.public_url)
    if blobs is None:
        blobs = open_blob_store(settings.blob_url, settings.blob_dir, session_factory)
    handler = GatewayHandler(
        session_factory, blobs, mail_domain, lmtp=lmtp, jobs_per=settings.mail_batch
    )
    host = settings.smtp_host
    port = settings.smtp_port or _free_port(host)
    limit = settings.max_message_bytes or None
    controller = _GatewayController(
        handler,
        lmtp=lmtp,
        hostname=host,
        port=port,
        # A fixed name for the greeting: aiosmtpd would otherwise call socket.getfqdn() on
        # every connection, a DNS lookup in the path of each mail.
        server_hostname=mail_domain,
        data_size_limit=limit,
        decode_data=False,  # keep the raw bytes exactly as sent
        enable_SMTPUTF8=True,  # RFC 6531: internationalised addresses (Polish names)
        tls_context=tls_context(settings),
    )
    # aiosmtpd logs every command and connection at INFO on "mail.log": several lines per
    # mail, costly under load and noise next to our one line per stored message.
    if logging.getLogger("mail.log").level == logging.NOTSET:
        logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller.start()
    log.info(
        "%s gateway listening on %s:%d (size limit %s bytes%s)",
        "LMTP" if lmtp else "SMTP",
        host,
        port,
        limit or "no",
        ", STARTTLS" if controller.SMTP_kwargs.get("tls_context") else "",
    )
    return GatewayHandle(host=host, port=port, lmtp=lmtp, controller=controller)
