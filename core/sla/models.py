"""Working-hours calendars as stored; :mod:`core.sla.calendar` computes with them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.orm import Base


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
