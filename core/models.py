"""The database models: SQLAlchemy 2 typed mappings of Pulpit's domain.

Times are stored in UTC (``UTCDateTime``); calendar logic happens in the calendar's zone in
``core.sla``. Natural keys (calendar name, client name, contract code, user e-mail, ...) are
unique so that declarative configuration can upsert by them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.clock import utcnow
from core.db import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


# --- Roles and categories -------------------------------------------------------------------

ROLES = ("admin", "coordinator", "technician", "client", "subcontractor")
STAFF_ROLES = ("admin", "coordinator", "technician")
ROLE_ALIASES = {
    "contact": "client",
    "client_contact": "client",
    "customer": "client",
    "agent": "technician",
    "subcontractor_user": "subcontractor",
}
STATUS_CATEGORIES = ("new", "open", "paused", "closed")
EVENT_TYPES = (
    "email_in",
    "email_out",
    "comment",
    "note",
    "status",
    "assignment",
    "worklog",
    "field",
    "sla",
    "attachment",
    "created",
    "contract",
    "cc",
)


contract_products = Table(
    "contract_products",
    Base.metadata,
    Column("contract_id", ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True),
    Column("product_id", ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
)

contract_coordinators = Table(
    "contract_coordinators",
    Base.metadata,
    Column("contract_id", ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

# Contacts copied on a ticket ("request participants"): they get the requester's mail about
# it and see it in the portal while they belong to the ticket's client (core.ticket_contacts).
ticket_contacts = Table(
    "ticket_contacts",
    Base.metadata,
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("added_at", UTCDateTime(), nullable=False, default=utcnow),
    Index("ix_ticket_contacts_user", "user_id"),
)

subcontractor_contracts = Table(
    "subcontractor_contracts",
    Base.metadata,
    Column(
        "subcontractor_id", ForeignKey("subcontractors.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("contract_id", ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True),
)


class Calendar(Base):
    __tablename__ = "calendars"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Warsaw")
    # {"mon": ["08:00-16:00"], ...} or the string "24/7"
    hours: Mapped[Any] = mapped_column(JSON)
    holidays: Mapped[str | None] = mapped_column(String(8))
    extra_holidays: Mapped[list[Any]] = mapped_column(default=list)
    day_length_minutes: Mapped[int | None] = mapped_column(Integer)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    language: Mapped[str] = mapped_column(String(8), default="pl")

    domains: Mapped[list[ClientDomain]] = relationship(
        back_populates="client", cascade="all, delete-orphan", order_by="ClientDomain.domain"
    )
    contracts: Mapped[list[Contract]] = relationship(back_populates="client")


class ClientDomain(Base):
    __tablename__ = "client_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(255), unique=True)

    client: Mapped[Client] = relationship(back_populates="domains")


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class Subcontractor(Base):
    __tablename__ = "subcontractors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)

    contracts: Mapped[list[Contract]] = relationship(secondary=subcontractor_contracts)


class Contract(Base):
    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    key: Mapped[bool] = mapped_column(Boolean, default=False)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("calendars.id"))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    warning_threshold: Mapped[float] = mapped_column(default=0.8)

    client: Mapped[Client] = relationship(back_populates="contracts")
    calendar: Mapped[Calendar | None] = relationship()
    products: Mapped[list[Product]] = relationship(secondary=contract_products)
    ticket_types: Mapped[list[TicketType]] = relationship(
        back_populates="contract", cascade="all, delete-orphan", order_by="TicketType.id"
    )
    statuses: Mapped[list[Status]] = relationship(
        back_populates="contract", cascade="all, delete-orphan", order_by="Status.position"
    )
    mailboxes: Mapped[list[Mailbox]] = relationship(back_populates="contract")
    # Told about the contract's SLA warnings and breaches; none named means every coordinator.
    coordinators: Mapped[list[User]] = relationship(secondary=contract_coordinators)

    def is_active(self, on: date) -> bool:
        return (self.valid_from is None or self.valid_from <= on) and (
            self.valid_to is None or on <= self.valid_to
        )


class Mailbox(Base):
    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(255), unique=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id", ondelete="SET NULL"))
    imap: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    contract: Mapped[Contract | None] = relationship(back_populates="mailboxes")


class TicketType(Base):
    __tablename__ = "ticket_types"
    __table_args__ = (UniqueConstraint("contract_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    default: Mapped[bool] = mapped_column(Boolean, default=False)
    # Durations as written in the configuration ("2h", "1d"); ``d`` depends on the calendar.
    reaction: Mapped[str | None] = mapped_column(String(32))
    resolution: Mapped[str | None] = mapped_column(String(32))
    subject_keywords: Mapped[list[Any]] = mapped_column(default=list)

    contract: Mapped[Contract] = relationship(back_populates="ticket_types")


class Status(Base):
    """A ticket status. ``contract_id`` NULL: the instance defaults, used by triage tickets
    and by contracts that define no statuses of their own."""

    __tablename__ = "statuses"
    __table_args__ = (UniqueConstraint("contract_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(default=0)
    visible_to_client: Mapped[bool] = mapped_column(Boolean, default=True)
    visible_to_subcontractor: Mapped[bool] = mapped_column(Boolean, default=True)
    client_can_set: Mapped[bool] = mapped_column(Boolean, default=False)

    contract: Mapped[Contract | None] = relationship(back_populates="statuses")


class CustomField(Base):
    """A custom ticket field. ``contract_id`` NULL: applies to every ticket."""

    __tablename__ = "custom_fields"
    __table_args__ = (UniqueConstraint("contract_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16), default="text")  # text number date bool select
    options: Mapped[list[Any]] = mapped_column(default=list)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    visible_to_client: Mapped[bool] = mapped_column(Boolean, default=True)


class User(Base):
    """Every person: staff, client contacts (role ``client``) and subcontractor users."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The time step of the last accepted authenticator code: never accepted twice (RFC 6238 5.2).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    subcontractor_id: Mapped[int | None] = mapped_column(
        ForeignKey("subcontractors.id", ondelete="SET NULL")
    )
    manager: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="pl")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by a permanent-failure delivery report (RFC 3464, status 5.x.x) for this address;
    # cleared when ordinary mail from the address arrives (it works again).
    mail_bouncing_since: Mapped[datetime | None] = mapped_column()
    # Which notification mails the user wants (``core.preferences``): ``{"off": [kind, ...],
    # "clients": [name, ...], "products": [name, ...]}``; NULL means the defaults (all on).
    notify_prefs: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    client: Mapped[Client | None] = relationship()
    subcontractor: Mapped[Subcontractor | None] = relationship()

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def display(self) -> str:
        return self.name or self.email


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # sha256 of the token: tokens are 256-bit random, so a fast hash is enough (unlike passwords)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    user_agent: Mapped[str | None] = mapped_column(String(500))

    user: Mapped[User] = relationship()


class Counter(Base):
    """Monotonic counters (ticket numbers), bumped with an UPDATE so two writers never collide."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_category", "status_category"),
        Index("ix_tickets_resolution_due", "resolution_due"),
        Index("ix_tickets_client", "client_id"),
        Index("ix_tickets_contract", "contract_id"),
        Index("ix_tickets_assignee", "assignee_id"),
        Index("ix_tickets_requester", "requester_id"),
        Index("ix_tickets_subcontractor", "subcontractor_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    ref: Mapped[str | None] = mapped_column(String(64), unique=True)  # natural key for seeding
    subject: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"))
    ticket_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket_types.id", ondelete="SET NULL")
    )
    status_id: Mapped[int] = mapped_column(ForeignKey("statuses.id"))
    # Denormalised from the status so lists filter on it without a join.
    status_category: Mapped[str] = mapped_column(String(16), default="new")
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    subcontractor_id: Mapped[int | None] = mapped_column(ForeignKey("subcontractors.id"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(16), default="web")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # SLA: derived from the event history by core.sla_clock and stored for fast lists.
    reaction_due: Mapped[datetime | None] = mapped_column()
    resolution_due: Mapped[datetime | None] = mapped_column()
    first_response_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    reaction_breached_at: Mapped[datetime | None] = mapped_column()
    resolution_breached_at: Mapped[datetime | None] = mapped_column()
    sla_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    ever_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    # The next instant the scheduler must look at this ticket (warning or breach), or NULL.
    sla_next_check: Mapped[datetime | None] = mapped_column(index=True)

    client: Mapped[Client | None] = relationship()
    contract: Mapped[Contract | None] = relationship()
    ticket_type: Mapped[TicketType | None] = relationship()
    status: Mapped[Status] = relationship()
    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    subcontractor: Mapped[Subcontractor | None] = relationship()
    product: Mapped[Product | None] = relationship()
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="(TicketEvent.at, TicketEvent.id)"
    )
    # Copied contacts; change them through core.ticket_contacts (it checks and records).
    cc: Mapped[list[User]] = relationship(
        secondary=ticket_contacts, order_by="User.email", passive_deletes=True
    )


class TicketEvent(Base):
    """One entry of a ticket's append-only timeline."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        Index("ix_ticket_events_ticket_at", "ticket_id", "at"),
        Index("ix_ticket_events_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(998))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")
    author: Mapped[User | None] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="event", order_by="Attachment.id"
    )


class Blob(Base):
    """File content, stored once by sha256 under the data dir."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("ticket_events.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer)
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str | None] = mapped_column(String(500))

    event: Mapped[TicketEvent] = relationship(back_populates="attachments")


class AuditEntry(Base):
    """Who changed what outside tickets (configuration, users, tokens, substitutions)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class JobRun(Base):
    """A record that a background job ran; used by health checks and the broker tests."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("actor", "key"),)
