"""Jinja filters for the console: times in the viewer's zone, durations, quoting."""

from __future__ import annotations

from datetime import datetime
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
    """Compact wall-clock time to a deadline: '2d 3h', '2h 15m', '15m', '<1m'; for one already
    past, how long ago ('1d 3h', '5m', '<1m': the template says "late"), never '-0m'."""
    if due is None:
        return ""
    seconds = abs(int((due - now).total_seconds()))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else "<1m"


def install(env: Environment) -> None:
    env.filters.update(local_time=local_time, iso=iso, time_left=time_left, urlquote=quote)
    env.globals["UNKNOWN_SENDER"] = UNKNOWN_SENDER  # the placeholder requester's address
    # ``can(user, "assign", ticket)``: pages show a control only to who may use it.
    env.globals["can"] = can
    env.globals["admin_areas"] = ADMIN_AREAS  # the admin console's side menu
