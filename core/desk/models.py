"""Saved views, canned replies and macros.

Each belongs to its author (``owner_id``) or, with no owner, to the desk, shared with the
roles it names (``roles``: base role names or custom role names; an empty list means every
staff member). An admin publishes a view or shares a reply or macro by giving it roles.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.directory.models import User
from core.orm import Base


class SavedView(Base):
    """The ticket list's filters, sort and columns under a name (the list's query string)."""

    __tablename__ = "saved_views"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    # The list's query string without page: "state=open&overdue=true&sort=deadline"
    query: Mapped[str] = mapped_column(Text, default="")
    columns: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Published to these roles (shown in their sidebar); empty: the owner's own view.
    roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[User | None] = relationship()


class CannedReply(Base):
    """A text module: inserted into a reply by typing ``::`` and its shortcut; placeholders
    such as ``{{ ticket.number }}`` are filled from the ticket."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    shortcut: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[User | None] = relationship()


class Macro(Base):
    """One click: a reply (public or internal), a status, an assignment and field values."""

    __tablename__ = "macros"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    name: Mapped[str] = mapped_column(String(100))
    reply: Mapped[str | None] = mapped_column(Text)
    reply_public: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str | None] = mapped_column(String(100))  # a status name
    assignee: Mapped[str | None] = mapped_column(String(255))  # "me", "none" or an e-mail
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[User | None] = relationship()
