"""Mail as stored: mailboxes, inbound messages, the outbox and IMAP folder positions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.contracts.models import Contract
from core.orm import Base
from core.tickets.models import Ticket


class Mailbox(Base):
    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(255), unique=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id", ondelete="SET NULL"))
    imap: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    contract: Mapped[Contract | None] = relationship(back_populates="mailboxes")


class InboundMessage(Base):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_messages_state", "state"),
        Index("ix_inbound_messages_message_id", "message_id"),
        Index("ix_inbound_messages_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(16))  # smtp, lmtp, imap, api
    mailbox: Mapped[str | None] = mapped_column(String(255))  # IMAP: the configured mailbox
    envelope_from: Mapped[str | None] = mapped_column(String(998))
    envelope_to: Mapped[list[Any]] = mapped_column(default=list)
    message_id: Mapped[str | None] = mapped_column(String(998))  # as found in the header
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    decisions: Mapped[list[Any]] = mapped_column(default=list)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket_events.id", ondelete="SET NULL")
    )
    processed_at: Mapped[datetime | None] = mapped_column()


class OutboundMail(Base):
    """One outgoing mail to one recipient: what to render, where to, and how sending went."""

    __tablename__ = "outbound_mail"
    __table_args__ = (
        UniqueConstraint("message_id", name="uq_outbound_mail_message_id"),
        UniqueConstraint("dedupe_key", name="uq_outbound_mail_dedupe_key"),
        Index("ix_outbound_mail_state_next_attempt", "state", "next_attempt_at"),
        Index("ix_outbound_mail_ticket", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Fixed at creation, so every retry is the same message to the recipient's client, and a
    # reply's In-Reply-To leads back to this row and its ticket.
    message_id: Mapped[str] = mapped_column(String(998))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL", name="fk_outbound_mail_ticket_id_tickets")
    )
    template: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="pl")
    to_addr: Mapped[str] = mapped_column(String(500))
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(500))
    # Files sent with it, kept in the blob store: [{"sha256", "filename", "content_type"}]
    # (a monthly statement's XLSX).
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When a mail.send job was last handed over for this row (queue_mail, then each sweep).
    enqueued_at: Mapped[datetime | None] = mapped_column()
    claimed_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)

    ticket: Mapped[Ticket | None] = relationship()


# Loop protection asks, for every automatic mail to a client, how many went to that address in
# the last minutes (core.notify.notifications._loop_limited): without this index a scan of the whole
# outbox, which grew slower with every mail sent (seen in bench/run_ingest.sh's 3,000 mails).
Index(
    "ix_outbound_mail_recipient_created",
    func.lower(OutboundMail.to_addr),
    OutboundMail.created_at,
)


class ImapFolderState(Base):
    __tablename__ = "imap_folder_states"
    __table_args__ = (
        UniqueConstraint("mailbox", "folder", name="uq_imap_folder_states_mailbox_folder"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(255))  # the configured mailbox address
    folder: Mapped[str] = mapped_column(String(255))
    # Both are unsigned 32-bit numbers in IMAP (RFC 3501 section 9, nz-number): too big for a
    # signed 32-bit column.
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
