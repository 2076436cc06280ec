"""Records of what happened outside tickets: the audit log and background job runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.orm import Base


class AuditEntry(Base):
    """Who changed what outside tickets (configuration, users, tokens, substitutions)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # For a configuration change: what it changed (``contract``, ``ACME-2026``), so each
    # object's page lists its history; NULL for other entries.
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_key: Mapped[str | None] = mapped_column(String(255))


class JobRun(Base):
    """A record that a background job ran; used by health checks and the broker tests."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("actor", "key"),)
