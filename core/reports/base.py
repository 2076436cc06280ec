"""The shape every report shares, the period it covers and whose tickets it may count.

- :class:`Period`: first and last day, inclusive, in the report zone (Europe/Warsaw, as the
  console shows times); :meth:`Period.bounds` gives the UTC instants to compare with.
- :class:`Scope`: all tickets (staff allowed the ``reports`` action) or one client's (that
  client's manager, on the portal).
- :class:`Report`: ``columns`` (key, catalogued label, kind) and ``rows``, each a dict by
  column key plus ``key`` (the group's label) and ``id`` (what a drill-down link passes);
  ``totals`` is one more such dict, or None.

Kinds of column: ``text``; ``count`` (int); ``minutes`` (int, business or worked minutes);
``percent`` (float 0-100, or None when nothing to measure); ``money`` (int, minor units of
``Report.currency``); ``date`` and ``month`` (``YYYY-MM``) as text.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.access.permissions import can
from core.directory.models import User
from core.errors import N_, Forbidden, InputError

REPORT_ZONE = ZoneInfo("Europe/Warsaw")
KINDS = ("text", "count", "minutes", "percent", "money", "date", "month")
# The longest period one report covers (a year and a bit: "this year" plus slack).
MAX_DAYS = 400


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) as UTC instants: midnight of the first day to midnight after the
        last, in the report zone."""
        lo = datetime.combine(self.start, time(0), tzinfo=REPORT_ZONE)
        hi = datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=REPORT_ZONE)
        return lo.astimezone(UTC), hi.astimezone(UTC)

    @classmethod
    def month_of(cls, day: date) -> Period:
        last = calendar.monthrange(day.year, day.month)[1]
        return cls(day.replace(day=1), day.replace(day=last))

    @classmethod
    def parse(cls, start: str | None, end: str | None, *, today: date) -> Period:
        """From the ``from`` and ``to`` of a request (YYYY-MM-DD, or YYYY-MM for a whole
        month); either left out: the current month's first or last day. 400 with a sentence
        when unreadable, reversed or longer than :data:`MAX_DAYS`."""
        month = cls.month_of(today)
        lo = _day(start, "from", first=True) if start else month.start
        hi = _day(end, "to", first=False) if end else month.end
        if hi < lo:
            raise InputError(N_("the period ends before it starts (to < from)"))
        if (hi - lo).days + 1 > MAX_DAYS:
            raise InputError(
                N_("a report covers at most %(days)s days; ask for a shorter period"),
                days=MAX_DAYS,
            )
        return cls(lo, hi)

    def __str__(self) -> str:
        return f"{self.start.isoformat()} – {self.end.isoformat()}"


def _day(text: str, name: str, *, first: bool) -> date:
    text = text.strip()
    try:
        if len(text) == 7:  # YYYY-MM: the month's first or last day
            month = Period.month_of(date.fromisoformat(text + "-01"))
            return month.start if first else month.end
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(
            N_("%(name)s should be a date (YYYY-MM-DD) or a month (YYYY-MM), not %(value)r"),
            name=name,
            value=text,
        ) from None


@dataclass(frozen=True)
class Scope:
    """Whose tickets a report counts: every ticket (``client_id`` None) or one client's.

    ``client_view``: the client is reading (their manager on the portal, the monthly
    statement mail). Their work time counts only what the client is shown of the work log:
    billable entries of contracts with ``worklog_visible_to_client``."""

    client_id: int | None = None
    client_view: bool = False

    @classmethod
    def for_user(cls, user: User) -> Scope:
        """Staff allowed ``reports``: everything; a client's manager: their client's; anyone
        else is refused (403)."""
        if user.role == "client":
            if user.manager and user.client_id is not None:
                return cls(client_id=user.client_id, client_view=True)
            raise Forbidden(N_("only a manager of your company sees its reports"))
        if not can(user, "reports"):
            raise Forbidden(N_("you may not see reports"))
        return cls()


@dataclass(frozen=True)
class Column:
    key: str
    label: str  # a template marked with N_ (the console translates it)
    kind: str = "count"


@dataclass
class Report:
    name: str  # "sla", "worktime", "backlog", "arrivals", "statement"
    title: str  # N_
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] | None = None
    period: Period | None = None
    group_by: str | None = None
    currency: str | None = None
    caption: str | None = None  # plain text under the title (a statement's client)

    def column(self, key: str) -> Column:
        for c in self.columns:
            if c.key == key:
                return c
        raise KeyError(key)

    def as_json(self) -> dict[str, Any]:
        """The API's body: ``rows`` (and ``totals``) by column key, plus what was asked."""
        body: dict[str, Any] = {"report": self.name, "rows": self.rows, "totals": self.totals}
        if self.period is not None:
            body["from"] = self.period.start.isoformat()
            body["to"] = self.period.end.isoformat()
        if self.group_by is not None:
            body["group_by"] = self.group_by
        if self.currency is not None:
            body["currency"] = self.currency
        if self.caption is not None:
            body["caption"] = self.caption
        body["columns"] = [{"key": c.key, "kind": c.kind} for c in self.columns]
        return body
