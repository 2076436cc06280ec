"""What the reports need from SQL that the two backends spell differently.

- :func:`months`, :func:`iso_weeks` and :func:`bucket`: the month (``YYYY-MM``) or ISO week
  (``YYYY-Www``) in the report zone of a stored UTC instant, as an index into edges computed
  in Python (so both backends follow the same tz database across daylight saving time).
- :func:`percentile`: the continuous percentile of a column (linear interpolation between the
  two nearest values, NULLs ignored): ``percentile_cont ... WITHIN GROUP`` on PostgreSQL, a
  registered aggregate on SQLite (:func:`register_sqlite`, installed on every connection by
  ``core.db.make_engine``) that gives the same numbers. One grouped query then answers
  counts and percentiles together.
- :func:`half_up`: money rounding, once per group, of a sum of ``minutes * rate``.
- :func:`room_to_hash`: the memory a report's grouped query needs on PostgreSQL.
- :func:`in_index_order`: group by walking an index rather than hashing, on PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import ARRAY, ColumnElement, DateTime, Float, Integer, case, func, literal, text
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from core.reports.base import Period

# The zone of core.reports.base.REPORT_ZONE, named here so that core.db can import this
# module without importing the reports (and through them the permissions).
ZONE_NAME = "Europe/Warsaw"
_ZONE = ZoneInfo(ZONE_NAME)


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# A year's million work log entries summed by ticket make some 200,000 groups; their hash
# table takes about 70 MB, so the default 4 MB of work_mem makes PostgreSQL sort the entries
# on disk to group them, or walk the ticket_id index with a heap fetch per entry, both about
# twice as slow as one hash aggregate. SET LOCAL lasts to the end of the report's transaction.
REPORT_WORK_MEM = "64MB"


def room_to_hash(session: Session) -> None:
    """Let the report's queries hash-aggregate in memory (PostgreSQL only: SQLite has no such
    limit). Called at the start of a report over work log entries."""
    if dialect(session) == "postgresql":
        session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))


@contextmanager
def in_index_order(session: Session) -> Iterator[None]:
    """Within the block, PostgreSQL groups rows by walking an index in order rather than by
    hashing them (``enable_hashagg`` off, restored after; SQLite: nothing).

    For the work log summed by ticket over a large part of its history: the covering index
    ``ix_work_log_entries_ticket_id`` (ticket_id, with started_at, minutes, billable and rate
    included) hands the entries over ticket by ticket without a heap fetch, and a group
    aggregate sums them as they pass, where a hash aggregate puts 200,000 groups in a 70 MB
    table. Measured on a million entries: 230 ms against 640 ms. The planner does not know
    this (it prices the hash lower), hence the nudge; the caller decides when it pays
    (:func:`core.reports.worktime.per_ticket`)."""
    if dialect(session) != "postgresql":
        yield
        return
    before = session.execute(text("SELECT current_setting('enable_hashagg')")).scalar_one()
    session.execute(text("SELECT set_config('enable_hashagg', 'off', true)"))
    try:
        yield
    finally:
        session.execute(text("SELECT set_config('enable_hashagg', :v, true)"), {"v": before})


Bucket = tuple[str, datetime]  # (label, first instant in UTC)


def months(period: Period) -> list[Bucket]:
    """The months (``YYYY-MM``) the period's days fall in, each with its first instant
    inside the period."""
    return _buckets(period, lambda day: f"{day.year:04d}-{day.month:02d}")


def iso_weeks(period: Period) -> list[Bucket]:
    """The ISO weeks (``2026-W12``) the period's days fall in, likewise."""

    def label(day: date) -> str:
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"

    return _buckets(period, label)


def _buckets(period: Period, label: Callable[[date], str]) -> list[Bucket]:
    found: list[Bucket] = []
    day = period.start
    while day <= period.end:
        name = label(day)
        if not found or found[-1][0] != name:
            start = datetime.combine(day, time(0), tzinfo=_ZONE).astimezone(UTC)
            found.append((name, start))
        day += timedelta(days=1)
    return found


def bucket(session: Session, column: Any, buckets: list[Bucket]) -> ColumnElement[int]:
    """The index in ``buckets`` of the bucket an instant of the period falls in.

    The buckets' edges are computed in Python in the report zone (so daylight saving time is
    the tz database's business), and SQL only compares instants: PostgreSQL's
    ``width_bucket`` binary-searches an array of edges (as cheap as no bucketing at all, where
    ``to_char(timezone(...))`` on a million rows costs most of a second); SQLite gets the
    same answer from a ``CASE`` over the edges."""
    edges = [start for _, start in buckets[1:]]
    if not edges:
        return literal(0, Integer)
    if dialect(session) == "postgresql":
        array = literal(edges, ARRAY(DateTime(timezone=True)))
        return func.width_bucket(column, array, type_=Integer)
    return case(*((column < edge, index) for index, edge in enumerate(edges)), else_=len(edges))


def percentile(session: Session, fraction: float, column: Any) -> ColumnElement[float]:
    if dialect(session) == "postgresql":
        return func.percentile_cont(fraction).within_group(column)  # type: ignore[no-any-return]
    return func.pulpit_percentile(column, literal(fraction), type_=Float)


def half_up(value: int | None, divisor: int = 60) -> int | None:
    """``value / divisor`` rounded half up (the sums are never negative)."""
    if value is None:
        return None
    return (int(value) * 2 + divisor) // (2 * divisor)


def whole_minutes(value: float | None) -> int | None:
    """A percentile of minutes as whole minutes (half up): 12.5 -> 13."""
    if value is None:
        return None
    return math.floor(float(value) + 0.5)


# --- SQLite ------------------------------------------------------------------------------------


class _Percentile:
    """SQLite aggregate with PostgreSQL's ``percentile_cont`` arithmetic."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, value: float | None, fraction: float) -> None:
        self.fraction = float(fraction)
        if value is not None:
            self.values.append(float(value))

    def finalize(self) -> float | None:
        if not self.values:
            return None
        values = sorted(self.values)
        rank = self.fraction * (len(values) - 1)
        lo = math.floor(rank)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (values[hi] - values[lo]) * (rank - lo)


def register_sqlite(dbapi_conn: Any) -> None:
    """Install the report aggregate on a new SQLite connection."""
    dbapi_conn.create_aggregate("pulpit_percentile", 2, _Percentile)
