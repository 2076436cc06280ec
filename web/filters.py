"""Jinja filters for the console: times in the viewer's zone, durations, quoting."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote as _quote
from zoneinfo import ZoneInfo

from jinja2 import Environment

from core.access.permissions import can
from core.directory.models import UNKNOWN_SENDER
from web.admin_areas import ADMIN_AREAS

DISPLAY_TZ = ZoneInfo("Europe/Warsaw")


def quote(value: str) -> str:
    return _quote(value, safe="/")


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    return value.astimezone(DISPLAY_TZ).strftime(fmt)


def iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def time_left(due: datetime | None, now: datetime) -> str:
    """Compact signed wall-clock time to a deadline: '2h 15m', '-1d 3h' (overdue)."""
    if due is None:
        return ""
    delta: timedelta = due - now
    sign = "-" if delta.total_seconds() < 0 else ""
    seconds = abs(int(delta.total_seconds()))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes}m"
    return f"{sign}{minutes}m"


def install(env: Environment) -> None:
    env.filters.update(local_time=local_time, iso=iso, time_left=time_left, urlquote=quote)
    env.globals["UNKNOWN_SENDER"] = UNKNOWN_SENDER  # the placeholder requester's address
    # ``can(user, "assign", ticket)``: pages show a control only to who may use it.
    env.globals["can"] = can
    env.globals["admin_areas"] = ADMIN_AREAS  # the admin console's side menu
