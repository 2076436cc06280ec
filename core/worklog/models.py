"""The work log's tables.

An entry is work done on one ticket by one person: when it started, how long it took (and
when it ended, when given as start and end), what was done, whether it is billable, and an
optional work type of the ticket's contract with its hourly rate. The rate is copied onto the
entry when it is written, so a later change of the price list does not rewrite a statement
already sent. Money is kept in minor units (grosze, cents) as integers: exact, and summed in
SQL.

The timeline keeps its ``worklog`` events (what the ticket page and the API history show);
the entry is the row reports and statements are computed from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.contracts.models import Contract
from core.directory.models import User
from core.orm import Base


class WorkType(Base):
    """A kind of work a contract prices on its own (on site, remote, travel)."""

    __tablename__ = "work_types"
    __table_args__ = (UniqueConstraint("contract_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # {"pl": ..., "en": ...}; the name when a language has none.
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Per hour, in minor units of the contract's currency; NULL: the contract's own rate.
    rate: Mapped[int | None] = mapped_column(Integer)
    # NULL: the contract's default (Contract.worklog_billable).
    billable: Mapped[bool | None] = mapped_column(Boolean)
    position: Mapped[int] = mapped_column(Integer, default=0)

    contract: Mapped[Contract] = relationship()


class WorkLogEntry(Base):
    __tablename__ = "work_log_entries"
    __table_args__ = (
        # Covering on PostgreSQL: a report by ticket walks it in order without heap fetches
        # (core.reports.sql.in_index_order); migration 0018.
        Index(
            "ix_work_log_entries_ticket_id",
            "ticket_id",
            postgresql_include=["started_at", "minutes", "billable", "rate"],
        ),
        Index("ix_work_log_entries_started_at", "started_at"),
        Index("ix_work_log_entries_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # When the work was done: its start, and its end when given as start and end.
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    minutes: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    billable: Mapped[bool] = mapped_column(Boolean, default=True)
    work_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("work_types.id", ondelete="SET NULL")
    )
    # The hourly rate in force when the entry was written (minor units); NULL: none.
    rate: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column()
    # The timeline event that told of it (its "worklog" event).
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket_events.id", ondelete="SET NULL")
    )

    user: Mapped[User] = relationship()
    work_type: Mapped[WorkType | None] = relationship()

    @property
    def amount(self) -> int | None:
        """What the entry is worth in minor units: billable minutes at its rate."""
        if not self.billable or self.rate is None:
            return None
        return round(self.minutes * self.rate / 60)


class WorkTimer(Base):
    """A running timer: one per person, on one ticket; stopping it writes an entry."""

    __tablename__ = "work_timers"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column()
