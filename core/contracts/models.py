"""Contracts and what each defines: ticket types with their SLA, statuses, custom fields."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.directory.models import Client, Product, User
from core.orm import Base
from core.sla.models import Calendar

if TYPE_CHECKING:
    from core.mail.models import Mailbox


STATUS_CATEGORIES = ("new", "open", "paused", "closed")


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

# The technicians who serve a contract (issue 15): its unassigned tickets are their queue
# ("do wzięcia"), and they may take one (core.tickets.queue).
contract_technicians = Table(
    "contract_technicians",
    Base.metadata,
    Column("contract_id", ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

subcontractor_contracts = Table(
    "subcontractor_contracts",
    Base.metadata,
    Column(
        "subcontractor_id", ForeignKey("subcontractors.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("contract_id", ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True),
)


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
    # When each custom field must be filled on this contract's tickets: {name: "open"|"close"}
    # (core.tickets.fields.missing_fields).
    required_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The work log (core.worklog): whether new entries are billable unless said otherwise,
    # the hourly rate in minor units of ``currency`` (a work type may have its own), and
    # whether the client sees the billable entries of their tickets on the portal.
    worklog_billable: Mapped[bool] = mapped_column(Boolean, default=True)
    hourly_rate: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="PLN")
    worklog_visible_to_client: Mapped[bool] = mapped_column(Boolean, default=False)

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
    # Serve its tickets: see its unassigned ones as their queue and may take them.
    technicians: Mapped[list[User]] = relationship(secondary=contract_technicians)

    def is_active(self, on: date) -> bool:
        return (self.valid_from is None or self.valid_from <= on) and (
            self.valid_to is None or on <= self.valid_to
        )


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
    # {"items": [text, ...], "required_to_close": bool}: copied onto every new ticket of this
    # type (core.tickets.checklists); NULL: no checklist.
    checklist: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    contract: Mapped[Contract] = relationship(back_populates="ticket_types")


class Status(Base):
    """A ticket status. ``contract_id`` NULL: the instance defaults, used by triage tickets
    and by contracts that define no statuses of their own.

    ``resume_on_client_reply`` NULL means the default rule (``resumes_on_client_reply``), so
    the default follows a later change of ``visible_to_client`` (migration 0013)."""

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
    resume_on_client_reply: Mapped[bool | None] = mapped_column(Boolean)

    contract: Mapped[Contract | None] = relationship(back_populates="statuses")

    @property
    def resumes_on_client_reply(self) -> bool:
        """Whether a client's public reply moves a ticket in this status back to an open one
        (``core.tickets.services.resume_on_client_reply``). Only a paused status resumes;
        unless configured, one that waits for the client, that is, one clients can see."""
        if self.category != "paused":
            return False
        if self.resume_on_client_reply is None:
            return bool(self.visible_to_client)
        return self.resume_on_client_reply


class CustomField(Base):
    """A custom ticket field. ``contract_id`` NULL: applies to every ticket."""

    __tablename__ = "custom_fields"
    __table_args__ = (UniqueConstraint("contract_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    # text textarea number date bool select multiselect (core.tickets.fields.TYPES)
    type: Mapped[str] = mapped_column(String(16), default="text")
    options: Mapped[list[Any]] = mapped_column(default=list)
    # Required on close on every ticket it applies to (contracts[].required_fields says more).
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    visible_to_client: Mapped[bool] = mapped_column(Boolean, default=True)
    # NULL: as visible_to_client (a field kept from the client is ours, not the subcontractor's).
    visible_to_subcontractor: Mapped[bool | None] = mapped_column(Boolean)
    # The label per language ({"pl": ..., "en": ...}); ``label`` is the one for any language.
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Help text under the field: a string, or one per language.
    help: Mapped[Any] = mapped_column(JSON, nullable=True)
    position: Mapped[int] = mapped_column(default=0)
    # Roles that may set it; NULL: admin, coordinator, technician (core.tickets.fields.may_edit).
    edit: Mapped[list[Any] | None] = mapped_column(JSON)
    min_value: Mapped[float | None] = mapped_column(Float)
    max_value: Mapped[float | None] = mapped_column(Float)
    # {"field": name, "options": {parent value: [options]}} or {"field": name, "when": [values]}
    depends_on: Mapped[dict[str, Any] | None] = mapped_column(JSON)
