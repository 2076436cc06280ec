"""Inbound mail as stored: every message that reached us, its state and why it went where.

A message is stored (raw bytes in the blob store, fsynced; this row committed) before the
gateway answers 250 or the IMAP poller flags it seen (GNU Mailman's LMTP runner). Processing
happens afterwards in the ``mail.process`` actor; every decision it takes is appended to
``decisions`` so an admin can see why a mail went where it went. A message that fails
``MAX_ATTEMPTS`` times is quarantined with its reason; nothing is dropped silently.

States: ``received`` (stored, not yet processed), ``processed`` (it became a ticket or an
event), ``quarantined`` (processing failed; ``pulpit mail requeue`` retries it), ``ignored``
(deliberately not turned into anything: our own mail coming back, a duplicate; the reason
says which).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, case, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.blobs import Blob, BlobStore
from core.clock import utcnow
from core.db import enqueue
from core.mail.models import InboundMessage

PROCESS_ACTOR = "mail.process"
MAX_ATTEMPTS = 3
STATES = ("received", "processed", "quarantined", "ignored")


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID header of a raw message, read cheaply (headers only), or None."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    for i, line in enumerate(lines):
        if line[:11].lower() == b"message-id:":
            value = line[11:]
            for cont in lines[i + 1 :]:
                if cont[:1] in (b" ", b"\t"):
                    value += cont
                else:
                    break
            text = value.decode("ascii", "replace").strip()
            return text[:998] or None
    return None


def store_inbound(
    session: Session,
    raw: bytes,
    *,
    source: str,
    blobs: BlobStore,
    envelope_from: str | None = None,
    envelope_to: list[str] | None = None,
    mailbox: str | None = None,
    now: datetime | None = None,
) -> InboundMessage:
    """Store a message durably (blob fsynced, row added) and queue its processing after
    commit. The caller commits; only then may it answer 250 or flag the message seen."""
    arrival = Arrival(raw, envelope_from, list(envelope_to or []), mailbox)
    [inbound_id] = store_many(session, [arrival], source=source, blobs=blobs, now=now)
    return session.get_one(InboundMessage, inbound_id)


@dataclass(frozen=True)
class Arrival:
    """One message as it arrived: the raw bytes and the envelope."""

    raw: bytes
    envelope_from: str | None = None
    envelope_to: list[str] = field(default_factory=list)
    mailbox: str | None = None
    # Set by a caller that has already written the content to the blob store (the SMTP
    # gateway, in its thread pool) and read its Message-ID: not done again at the commit.
    sha256: str | None = None
    message_id: str | None = None


def store_many(
    session: Session,
    arrivals: Sequence[Arrival],
    *,
    source: str,
    blobs: BlobStore,
    now: datetime | None = None,
    jobs_per: int = 1,
) -> list[int]:
    """Store several messages in the caller's one transaction; their inbound row ids.

    ``jobs_per``: one ``mail.process`` job for every so many of them, the first of each
    group (``PULPIT_MAIL_BATCH``): a job processes its own mail and the others waiting
    (:func:`claim_batch`), so a job per mail would mostly find its mail done. A mail whose
    group's job took other mails instead is taken by the next job, and the scheduler's sweep
    sends a job for any mail still waiting after a minute.

    The SMTP gateway's group commit (:mod:`mailgw.group_commit`): two multi-row INSERTs for a
    batch instead of the ORM's unit of work per message, which was most of the gateway's CPU
    per mail. Blob files are written (fsynced) first, unless the arrival says its content is
    written already (``Arrival.sha256``: the connection's own thread wrote it).
    """
    received = now or utcnow()
    digests = [a.sha256 or blobs.write(a.raw) for a in arrivals]
    sizes = {digest: len(a.raw) for digest, a in zip(digests, arrivals, strict=True)}
    insert_blob = (
        pg_insert(Blob) if session.get_bind().dialect.name == "postgresql" else sqlite_insert(Blob)
    )
    session.connection().execute(
        insert_blob.on_conflict_do_nothing(index_elements=["sha256"]),
        [{"sha256": d, "size": n, "created_at": received} for d, n in sizes.items()],
    )
    # Table-level, not the ORM's bulk insert: nothing here needs an object back.
    table = cast(Table, InboundMessage.__table__)
    ids = (
        session.connection()
        .scalars(
            insert(table).returning(table.c.id, sort_by_parameter_order=True),
            [
                {
                    "received_at": received,
                    "source": source,
                    "mailbox": arrival.mailbox,
                    "envelope_from": arrival.envelope_from,
                    "envelope_to": list(arrival.envelope_to),
                    "message_id": arrival.message_id or header_message_id(arrival.raw),
                    "sha256": digest,
                    "size": len(arrival.raw),
                    "state": "received",
                    "attempts": 0,
                    "decisions": [],
                }
                for arrival, digest in zip(arrivals, digests, strict=True)
            ],
        )
        .all()
    )
    for first in ids[:: max(jobs_per, 1)]:
        enqueue(session, PROCESS_ACTOR, inbound_id=first)
    return list(ids)


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def list_messages(
    session: Session, state: str | None = None, limit: int = 200
) -> list[InboundMessage]:
    stmt = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(InboundMessage.state == state)
    return list(session.scalars(stmt))


def claim_batch(session: Session, inbound_id: int, *, limit: int) -> list[InboundMessage]:
    """Lock ``inbound_id`` and up to ``limit - 1`` other stored mails waiting for processing,
    in the order they arrived, for one unit of work to process together.

    ``inbound_id`` comes first when it still waits and no other worker holds it. The others
    are mails never tried (a mail that failed before is retried alone, by its own job). Rows
    another worker's batch holds are skipped, not waited for (``SKIP LOCKED`` on PostgreSQL;
    SQLite has one writer at a time, ``BEGIN IMMEDIATE``). Every row comes back locked until
    the caller commits, so a job delivered twice finds its row done or held and moves on.
    """
    own_first = case((InboundMessage.id == inbound_id, 0), else_=1)
    stmt = (
        select(InboundMessage)
        .where(
            InboundMessage.state == "received",
            or_(InboundMessage.id == inbound_id, InboundMessage.attempts == 0),
        )
        .order_by(own_first, InboundMessage.id)
        .limit(max(limit, 1))
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))
