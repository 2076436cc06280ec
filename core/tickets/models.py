"""Tickets, their append-only timeline of events, attachments and the number counter."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.contracts.models import Contract, Status, TicketType
from core.directory.models import Client, Product, Subcontractor, User
from core.orm import Base, UTCDateTime

if TYPE_CHECKING:
    from core.blobs import Blob

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
    "requester",
)

# Contacts copied on a ticket ("request participants"): they get the requester's mail about
# it and see it in the portal while they belong to the ticket's client (core.tickets.contacts).
ticket_contacts = Table(
    "ticket_contacts",
    Base.metadata,
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("added_at", UTCDateTime(), nullable=False, default=utcnow),
    Index("ix_ticket_contacts_user", "user_id"),
)


class Counter(Base):
    """Monotonic counters (ticket numbers), bumped with an UPDATE so two writers never collide."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


# The tickets a list shows by default (``state=open``): the predicate of the partial indexes.
OPEN = text("status_category <> 'closed'")
# What the lists filter the open tickets by (states, scopes, the overdue filter): in
# ix_tickets_open_number on PostgreSQL, so a page's numbers and a count come from it alone.
OPEN_COVERED = [
    "status_category",
    "client_id",
    "contract_id",
    "assignee_id",
    "requester_id",
    "subcontractor_id",
    "first_response_at",
    "reaction_due",
    "resolution_due",
]

#: Ticket counts by the columns the list's filters and scopes use, for counting at a million
#: tickets without reading them (``core.tickets.tallies``). Rows are deltas: PostgreSQL
#: triggers on ``tickets`` append one per change (migration 0025) and the scheduler folds them
#: into one row per combination. Unused (and empty) on SQLite, where ``count(*)`` is cheap.
ticket_tallies = Table(
    "ticket_tallies",
    Base.metadata,
    Column("client_id", Integer, nullable=True),
    Column("contract_id", Integer, nullable=True),
    Column("ticket_type_id", Integer, nullable=True),
    Column("status_id", Integer, nullable=True),
    Column("status_category", String(16), nullable=True),
    Column("assignee_id", Integer, nullable=True),
    Column("subcontractor_id", Integer, nullable=True),
    Column("n", BigInteger, nullable=False),
)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_category", "status_category"),
        Index("ix_tickets_reaction_due", "reaction_due"),  # core.reports.metrics, migration 0021
        Index("ix_tickets_resolution_due", "resolution_due"),
        Index("ix_tickets_client", "client_id"),
        Index("ix_tickets_contract", "contract_id"),
        Index("ix_tickets_assignee", "assignee_id"),
        Index("ix_tickets_requester", "requester_id"),
        Index("ix_tickets_subcontractor", "subcontractor_id"),
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_resolved_at", "resolved_at"),  # the reports' closures per week
        # Issue 16, a million tickets (migration 0022, bench/list_tickets.py): the lists show
        # the few percent of tickets still open, so these hold only those. Newest first and
        # the count walk the first (covering the filters' columns: a page's numbers and a
        # count come from it alone); a client manager's list and count the second;
        # ``ix_tickets_open_deadline`` (below the class: it needs the columns) serves the
        # nearest-deadline sort. SQLite cannot use them with bound parameters; they cost little.
        Index(
            "ix_tickets_open_number",
            "number",
            postgresql_where=OPEN,
            sqlite_where=OPEN,
            postgresql_include=OPEN_COVERED,
        ),
        Index(
            "ix_tickets_open_client",
            "client_id",
            "number",
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        ),
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

    # SLA: derived from the event history by core.sla.clocks and stored for fast lists.
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
    # The checklist's progress, kept by core.tickets.checklists for the list (3/5).
    checklist_done: Mapped[int] = mapped_column(Integer, default=0)
    checklist_total: Mapped[int] = mapped_column(Integer, default=0)
    # Work time, kept by core.worklog for the list and the reports (minutes).
    worked_minutes: Mapped[int] = mapped_column(Integer, default=0)
    billable_minutes: Mapped[int] = mapped_column(Integer, default=0)
    # The SLA as the reports read it, stored by core.sla.clocks.recompute: business minutes
    # until the first response and until resolution (NULL while not met), and business
    # minutes spent paused (up to the resolution, or to the last recompute while open).
    reaction_minutes: Mapped[int | None] = mapped_column(Integer)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)
    paused_minutes: Mapped[int | None] = mapped_column(Integer)
    # Merged into another ticket (core.tickets.merge): closed, its timeline moved there, and
    # mail threaded to it lands in that one (followed to the end of a chain).
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", name="fk_tickets_merged_into_id", ondelete="SET NULL")
    )

    client: Mapped[Client | None] = relationship()
    contract: Mapped[Contract | None] = relationship()
    ticket_type: Mapped[TicketType | None] = relationship()
    status: Mapped[Status] = relationship()
    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    subcontractor: Mapped[Subcontractor | None] = relationship()
    product: Mapped[Product | None] = relationship()
    merged_into: Mapped[Ticket | None] = relationship(remote_side=[id])
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="(TicketEvent.at, TicketEvent.id)"
    )
    # Copied contacts; change them through core.tickets.contacts (it checks and records).
    cc: Mapped[list[User]] = relationship(
        secondary=ticket_contacts, order_by="User.email", passive_deletes=True
    )
    checklist: Mapped[list[ChecklistItem]] = relationship(
        back_populates="ticket",
        order_by="(ChecklistItem.position, ChecklistItem.id)",
        passive_deletes=True,
    )


def nearest_deadline() -> ColumnElement[Any]:
    """The nearest open deadline: reaction until someone answered, then resolution."""
    return case(
        (
            and_(Ticket.first_response_at.is_(None), Ticket.reaction_due.is_not(None)),
            func.coalesce(
                case(
                    (Ticket.resolution_due < Ticket.reaction_due, Ticket.resolution_due),
                    else_=Ticket.reaction_due,
                ),
                Ticket.reaction_due,
            ),
        ),
        else_=Ticket.resolution_due,
    )


def clock_group(due: Any, met: Any) -> ColumnElement[Any]:
    """0 while the clock towards ``due`` runs, 1 while it is paused, 2 when there is none
    (met, closed, no target): how a deadline sort groups tickets
    (``core.tickets.queries.deadline_order``)."""
    running = and_(Ticket.status_category != "closed", due.is_not(None), met.is_(None))
    return case((and_(running, Ticket.sla_paused.is_(False)), 0), (running, 1), else_=2)


# The nearest-deadline sort of the open tickets (the console's "deadline" column) walks this
# index and stops at the page, instead of sorting every open ticket (issue 16). Its expressions
# are ``clock_group(nearest_deadline(), Ticket.resolved_at)`` and ``nearest_deadline()``, the
# ORDER BY of ``core.tickets.queries.deadline_order``, written as PostgreSQL prints them back
# (``pg_get_indexdef``) so Alembic's comparison of models and database finds them equal;
# PostgreSQL matches them to the query by their parsed form (tests/integration/
# test_list_indexes.py checks the plan). PostgreSQL only: SQLite cannot use it with bound
# parameters.
PG_DEADLINE_GROUP = "(\nCASE\n    WHEN status_category::text <> 'closed'::text AND\n    CASE\n        WHEN first_response_at IS NULL AND reaction_due IS NOT NULL THEN COALESCE(\n        CASE\n            WHEN resolution_due < reaction_due THEN resolution_due\n            ELSE reaction_due\n        END, reaction_due)\n        ELSE resolution_due\n    END IS NOT NULL AND resolved_at IS NULL AND sla_paused IS FALSE THEN 0\n    WHEN status_category::text <> 'closed'::text AND\n    CASE\n        WHEN first_response_at IS NULL AND reaction_due IS NOT NULL THEN COALESCE(\n        CASE\n            WHEN resolution_due < reaction_due THEN resolution_due\n            ELSE reaction_due\n        END, reaction_due)\n        ELSE resolution_due\n    END IS NOT NULL AND resolved_at IS NULL THEN 1\n    ELSE 2\nEND)"
PG_NEAREST_DEADLINE = "(\nCASE\n    WHEN first_response_at IS NULL AND reaction_due IS NOT NULL THEN COALESCE(\n    CASE\n        WHEN resolution_due < reaction_due THEN resolution_due\n        ELSE reaction_due\n    END, reaction_due)\n    ELSE resolution_due\nEND)"
Index(
    "ix_tickets_open_deadline",
    text(PG_DEADLINE_GROUP),
    text(PG_NEAREST_DEADLINE),
    Ticket.number.desc(),
    postgresql_where=OPEN,
).ddl_if(dialect="postgresql")


class ChecklistItem(Base):
    """One step of a ticket's checklist: copied from its ticket type's checklist when the
    ticket was opened (or re-typed), or added to this ticket by staff (``ticket_type`` NULL).
    Ticked and unticked through core.tickets.checklists, which records each on the timeline."""

    __tablename__ = "ticket_checklist_items"
    __table_args__ = (Index("ix_ticket_checklist_items_ticket", "ticket_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(String(500))
    # Closing the ticket waits for it (its type's ``required_to_close``, or staff said so).
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    ticket_type: Mapped[str | None] = mapped_column(String(100))
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    done_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="checklist")
    done_by: Mapped[User | None] = relationship(foreign_keys=[done_by_id])


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
    # So one flush inserts a new content's ``blobs`` row before the attachment naming it
    # (a batch of inbound mail flushes once: mailgw.process.run_batch).
    blob: Mapped[Blob] = relationship(lazy="raise_on_sql")
