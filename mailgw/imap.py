"""IMAP in: pollers that fetch mail from configured mailboxes and store it like SMTP mail.

A mailbox in the YAML may carry ``imap: {host, port, tls, user, password_env, folder,
processed_folder}``. One :class:`ImapPoller` thread per such mailbox keeps a connection open,
waits with IDLE (RFC 2177) when the server offers it and polls every ``poll_seconds``
otherwise, and reconnects with back-off after any error.

The order of work is what makes it safe (GNU Mailman's rule: store first, then acknowledge):

1. fetch with ``BODY.PEEK[]`` (RFC 3501 section 6.4.5), which does not set ``\\Seen``;
2. in one transaction, store the message (:func:`core.mail.inbound.store_inbound`: blob fsynced,
   row added, processing queued after commit) and raise the folder's ``last_uid``
   (:mod:`core.mail.imap_state`), then commit;
3. only then flag it ``\\Seen``, or MOVE it to ``processed_folder`` (RFC 6851; COPY, ``\\Deleted``
   and EXPUNGE on servers without MOVE).

A crash before 3 leaves the message unseen on the server but recorded as stored: it is not
read again (its UID is at or below ``last_uid``). A crash before the commit leaves it unseen
and unrecorded: it is read again on the next poll. UIDs are only meaningful under the same
UIDVALIDITY (RFC 3501 section 2.3.1.1); when that changes the poller starts over from UID 1
and processing deduplicates by Message-ID.

Passwords come from the environment variable named by ``password_env`` and never appear in
logs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import BlobStore, open_blob_store
from core.clock import utcnow
from core.db import unit_of_work
from core.mail.imap_state import folder_state, record_stored_uid
from core.mail.inbound import store_inbound
from core.mail.models import Mailbox

log = logging.getLogger(__name__)

SEEN = b"\\Seen"
DELETED = b"\\Deleted"
FETCH_BATCH = 25  # messages fetched per round trip: bounds memory with large attachments
IDLE_CHECK_SECONDS = 30.0
# RFC 2177: a server may drop a client that stays in IDLE for 30 minutes; re-issue it sooner.
IDLE_RENEW_SECONDS = 25 * 60.0
POLL_SECONDS = 60.0
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
CONNECT_TIMEOUT_SECONDS = 30.0

# What a broken connection or server looks like; anything else is a bug and is logged with
# its traceback (the poller still survives it).
# (ssl.SSLError and socket timeouts are OSErrors; IMAPClientError is imaplib's IMAP4.error.)
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, IMAPClientError)


@dataclass(frozen=True)
class ImapConfig:
    """A mailbox's ``imap:`` block with its defaults filled in (port 993 with TLS, else 143)."""

    host: str
    user: str
    port: int = 993
    tls: bool = True
    password_env: str | None = None
    folder: str = "INBOX"
    processed_folder: str | None = None
    poll_seconds: float = POLL_SECONDS

    @classmethod
    def from_dict(cls, cfg: dict[str, Any], mailbox_address: str) -> ImapConfig:
        tls = bool(cfg.get("tls", True))
        return cls(
            host=str(cfg["host"]),
            user=str(cfg.get("user") or mailbox_address),
            port=int(cfg.get("port") or (993 if tls else 143)),
            tls=tls,
            password_env=cfg.get("password_env"),
            folder=str(cfg.get("folder") or "INBOX"),
            processed_folder=cfg.get("processed_folder") or None,
            poll_seconds=float(cfg.get("poll_seconds") or POLL_SECONDS),
        )

    def describe(self) -> str:
        """Where this is, for logs: never the password."""
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"


def _config(imap_cfg: ImapConfig | dict[str, Any], mailbox_address: str) -> ImapConfig:
    if isinstance(imap_cfg, ImapConfig):
        return imap_cfg
    return ImapConfig.from_dict(imap_cfg, mailbox_address)


def connect(cfg: ImapConfig, password: str) -> IMAPClient:
    """Open and log in; the caller selects the folder and logs out."""
    client = IMAPClient(cfg.host, port=cfg.port, ssl=cfg.tls, timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        client.login(cfg.user, password)
    except BaseException:
        _close(client)
        raise
    return client


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # already broken: just drop the socket
        try:
            client.shutdown()
        except Exception:  # nothing more to do with a dead socket
            pass


def drain(
    client: IMAPClient,
    session_factory: sessionmaker[Session],
    mailbox_address: str,
    cfg: ImapConfig,
    *,
    blobs: BlobStore,
    now: datetime | None = None,
) -> int:
    """Store every message of the folder newer than the recorded UID; returns how many.

    ``client`` is logged in; the folder is (re)selected here, which also gives the current
    UIDVALIDITY (RFC 3501 section 6.3.1). Errors propagate: what was committed stays
    committed, what was not stays unseen on the server and is read on the next try.
    """
    selected = client.select_folder(cfg.folder)
    uidvalidity = int(selected[b"UIDVALIDITY"])
    with session_factory() as session:
        state = folder_state(session, mailbox_address, cfg.folder)
        last_uid = 0
        if state is not None and state.uidvalidity == uidvalidity:
            last_uid = state.last_uid
        elif state is not None:
            log.warning(
                "IMAP %s for mailbox %s: UIDVALIDITY changed from %s to %s; reading the folder "
                "again from UID 1 (processing drops what it already has by Message-ID)",
                cfg.describe(),
                mailbox_address,
                state.uidvalidity,
                uidvalidity,
            )
    # "UID n:*" always matches the highest UID, even when it is below n (RFC 3501 section
    # 6.4.8 and 9, seq-range: "*" is the largest number in use), so filter what comes back.
    uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
    stored = 0
    for start in range(0, len(uids), FETCH_BATCH):
        batch = uids[start : start + FETCH_BATCH]
        # BODY.PEEK[] leaves \Seen alone (RFC 3501 section 6.4.5): nothing is marked read
        # before it is stored.
        fetched = client.fetch(batch, ["BODY.PEEK[]"])
        for uid in batch:
            raw = fetched.get(uid, {}).get(b"BODY[]")
            if raw is None:  # expunged by someone else between SEARCH and FETCH
                log.info("IMAP %s: UID %s vanished before it was fetched", cfg.describe(), uid)
                continue
            if _store(session_factory, mailbox_address, cfg, uidvalidity, uid, raw, blobs, now):
                stored += 1
            _acknowledge(client, cfg, uid)
    return stored


def _store(
    session_factory: sessionmaker[Session],
    mailbox_address: str,
    cfg: ImapConfig,
    uidvalidity: int,
    uid: int,
    raw: bytes,
    blobs: BlobStore,
    now: datetime | None,
) -> bool:
    """Store one message and record its UID in one transaction; False if already stored."""
    with unit_of_work(session_factory) as session:
        # Re-read under a row lock: another poller of the same mailbox may have stored it.
        state = folder_state(session, mailbox_address, cfg.folder, for_update=True)
        if state is not None and state.uidvalidity == uidvalidity and state.last_uid >= uid:
            return False
        row = store_inbound(
            session,
            raw,
            source="imap",
            blobs=blobs,
            mailbox=mailbox_address,
            envelope_to=[mailbox_address],
            now=now or utcnow(),
        )
        record_stored_uid(
            session, mailbox_address, cfg.folder, uidvalidity=uidvalidity, uid=uid, now=now
        )
        log.info(
            "IMAP %s: stored UID %s as inbound message %s (Message-ID %s)",
            cfg.describe(),
            uid,
            row.id,
            row.message_id,
        )
    return True


def _acknowledge(client: IMAPClient, cfg: ImapConfig, uid: int) -> None:
    """After the commit: move the message to ``processed_folder``, or flag it \\Seen."""
    if not cfg.processed_folder:
        client.add_flags([uid], [SEEN], silent=True)
        return
    if client.has_capability("MOVE"):
        client.move([uid], cfg.processed_folder)  # RFC 6851
        return
    # RFC 6851 section 3.3: without MOVE, a client emulates it with COPY, STORE \Deleted and
    # EXPUNGE. UID EXPUNGE (RFC 4315, UIDPLUS) removes only this message; a plain EXPUNGE
    # would also remove whatever else someone flagged \Deleted in the folder.
    client.copy([uid], cfg.processed_folder)
    client.add_flags([uid], [DELETED], silent=True)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge([uid])
    else:
        client.expunge()


def _ensure_folder(client: IMAPClient, folder: str | None) -> None:
    if folder and not client.folder_exists(folder):
        client.create_folder(folder)


def poll_once(
    session_factory: sessionmaker[Session],
    mailbox_address: str,
    imap_cfg: ImapConfig | dict[str, Any],
    *,
    blobs: BlobStore,
    password: str,
    now: datetime | None = None,
) -> int:
    """Connect, store every new message of the folder, acknowledge each, log out.

    Returns how many messages were stored. Errors propagate to the caller.
    """
    cfg = _config(imap_cfg, mailbox_address)
    client = connect(cfg, password)
    try:
        _ensure_folder(client, cfg.processed_folder)
        return drain(client, session_factory, mailbox_address, cfg, blobs=blobs, now=now)
    finally:
        _close(client)


class ImapPoller(threading.Thread):
    """Fetches one mailbox's mail for as long as it runs; :meth:`stop` ends it promptly."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        mailbox_address: str,
        imap_cfg: ImapConfig | dict[str, Any],
        *,
        blobs: BlobStore,
        password: str,
        idle_check_seconds: float = IDLE_CHECK_SECONDS,
        idle_renew_seconds: float = IDLE_RENEW_SECONDS,
        backoff_max_seconds: float = BACKOFF_MAX_SECONDS,
        use_idle: bool = True,
    ) -> None:
        super().__init__(name=f"imap-poller-{mailbox_address}", daemon=True)
        self.session_factory = session_factory
        self.mailbox_address = mailbox_address
        self.cfg = _config(imap_cfg, mailbox_address)
        self.blobs = blobs
        self._password = password
        self.idle_check_seconds = idle_check_seconds
        self.idle_renew_seconds = min(idle_renew_seconds, IDLE_RENEW_SECONDS)
        self.backoff_max_seconds = backoff_max_seconds
        self.use_idle = use_idle
        self.stored = 0  # messages stored since start, for tests and status pages
        self.connected = threading.Event()  # set while logged in and waiting for mail
        self._stopping = threading.Event()
        self._client: IMAPClient | None = None

    def __repr__(self) -> str:  # never the password
        return f"<ImapPoller {self.mailbox_address} {self.cfg.describe()}>"

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to end, wake it from IDLE or a wait, and join it."""
        self._stopping.set()
        client = self._client
        if client is not None:
            try:  # wakes a blocking idle_check(): the socket read returns at once
                client.socket().shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def run(self) -> None:
        backoff = BACKOFF_FIRST_SECONDS
        while not self._stopping.is_set():
            try:
                self._session()
                backoff = BACKOFF_FIRST_SECONDS
            except NETWORK_ERRORS as exc:
                if self._stopping.is_set():
                    break
                log.warning(
                    "IMAP %s for mailbox %s failed (%s: %s); reconnecting in %.0f s",
                    self.cfg.describe(),
                    self.mailbox_address,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
            except Exception:
                if self._stopping.is_set():
                    break
                # e.g. the database is down: nothing was acknowledged, so the mail waits
                # on the server until the next try.
                log.exception(
                    "IMAP %s for mailbox %s: could not store mail; retrying in %.0f s",
                    self.cfg.describe(),
                    self.mailbox_address,
                    backoff,
                )
            finally:
                self.connected.clear()
                if self._client is not None:
                    _close(self._client)
                    self._client = None
            if self._stopping.wait(backoff):
                break
            backoff = min(backoff * 2, self.backoff_max_seconds)

    def _drain(self, client: IMAPClient) -> None:
        self.stored += drain(
            client, self.session_factory, self.mailbox_address, self.cfg, blobs=self.blobs
        )

    def _session(self) -> None:
        """One connection's life: drain, then wait for more (IDLE or a timer), repeat."""
        client = connect(self.cfg, self._password)
        self._client = client
        _ensure_folder(client, self.cfg.processed_folder)
        idle = self.use_idle and client.has_capability("IDLE")
        log.info(
            "IMAP %s for mailbox %s: connected, %s",
            self.cfg.describe(),
            self.mailbox_address,
            "waiting with IDLE" if idle else f"polling every {self.cfg.poll_seconds:.0f} s",
        )
        while not self._stopping.is_set():
            self._drain(client)
            self.connected.set()
            if idle:
                self._idle(client)
            else:
                # NOOP keeps the connection alive and lets the server report news (RFC 3501
                # section 6.1.2); the next drain searches anyway.
                if self._stopping.wait(self.cfg.poll_seconds):
                    return
                client.noop()

    def _idle(self, client: IMAPClient) -> None:
        """Wait in IDLE (RFC 2177) until the server reports something or a check times out.

        An IDLE never lasts longer than ``idle_renew_seconds`` (RFC 2177: re-issue it before
        the server's 30-minute inactivity timer). After ``idle_check_seconds`` without news
        the poller leaves IDLE and searches anyway: a cheap safety net against a lost
        untagged EXISTS, and the re-IDLE that follows keeps the connection fresh.
        """
        client.idle()
        try:
            client.idle_check(timeout=min(self.idle_check_seconds, self.idle_renew_seconds))
        finally:
            if not self._stopping.is_set():
                client.idle_done()


@dataclass
class PollerHandle:
    """What :func:`start_pollers` returns: the running pollers and a way to stop them all."""

    pollers: list[ImapPoller] = field(default_factory=list)

    def stop(self, timeout: float = 10.0) -> None:
        for poller in self.pollers:
            poller._stopping.set()
        for poller in self.pollers:
            poller.stop(timeout)


def _mailboxes_with_imap(
    session_factory: sessionmaker[Session],
) -> list[tuple[str, dict[str, Any]]]:
    with session_factory() as session:
        rows: Iterable[Mailbox] = session.scalars(
            select(Mailbox).where(Mailbox.imap.is_not(None)).order_by(Mailbox.address)
        )
        return [(row.address, dict(row.imap)) for row in rows if row.imap]


def start_pollers(settings: Settings, session_factory: sessionmaker[Session]) -> PollerHandle:
    """Start one poller per mailbox with an ``imap:`` block; returns a handle with ``stop()``.

    A mailbox whose password variable is not set is logged as an error (naming the variable,
    not a value) and skipped: the others still run.
    """
    handle = PollerHandle()
    blobs = open_blob_store(settings.blob_url, settings.blob_dir, session_factory)
    for address, raw_cfg in _mailboxes_with_imap(session_factory):
        try:
            cfg = ImapConfig.from_dict(raw_cfg, address)
        except (KeyError, TypeError, ValueError) as exc:
            log.error(
                "mailbox %s: its imap settings are incomplete (%s); not polling it", address, exc
            )
            continue
        if not cfg.password_env:
            log.error(
                "mailbox %s: imap has no password_env; set it to the name of the environment "
                "variable holding the password. Not polling it.",
                address,
            )
            continue
        password = os.environ.get(cfg.password_env)
        if password is None:
            log.error(
                "mailbox %s: environment variable %s (its IMAP password) is not set; "
                "not polling %s",
                address,
                cfg.password_env,
                cfg.describe(),
            )
            continue
        poller = ImapPoller(session_factory, address, cfg, blobs=blobs, password=password)
        poller.start()
        handle.pollers.append(poller)
    log.info("started %d IMAP poller(s)", len(handle.pollers))
    return handle
