"""Business-time arithmetic for SLA deadlines: the engine behind the contract calendars.

A :class:`BusinessCalendar` says when the SLA clock runs: wall-clock intervals per weekday in
an IANA time zone, minus public holidays (from the ``holidays`` package) and extra whole days
off. ``add`` answers "when is this much business time used up?" and ``between`` answers "how
much business time passed?". Instants go in as aware datetimes and come out in UTC; the
calendar logic happens in the calendar's own zone.

Why it is fast: the per-weekday intervals (minutes since local midnight) are expanded once per
calendar year into a table of real intervals in epoch microseconds, with a running total of
business time at the start of every day. ``add`` and ``between`` are then a couple of binary
searches plus one hop per year crossed, so their cost grows with the years spanned, not the
days or minutes. Converting the wall-clock intervals day by day with the zone's rules is also
what makes DST right: on the day the clocks change, an interval holds exactly the real time
that passes between its local start and end, and 24/7 counts real elapsed time.
"""

from __future__ import annotations

import re
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

from core.errors import N_, InputError

__all__ = ["BusinessCalendar", "CalendarError", "format_duration", "parse_duration"]


class CalendarError(InputError, ValueError):
    """A bad calendar, duration or instant. A ValueError, so plain callers can catch that."""


Interval = tuple[int, int]
Week = tuple[tuple[Interval, ...], ...]
HoursSpec = str | Mapping[str, str | Sequence[str] | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")
# Building a year needs the local midnights of the neighbouring years, which datetime can
# only represent safely away from its year 1 and 9999 limits.
_MIN_YEAR, _MAX_YEAR = 2, 9998
_CONFIG_KEYS = frozenset({"timezone", "holidays", "extra_holidays", "hours", "day_length"})
_ALWAYS: Week = (((0, 24 * 60),),) * 7


class _Year(NamedTuple):
    starts: list[int]  # epoch µs of each local midnight, then the next year's first one
    days: list[tuple[Interval, ...]]  # each local day's open intervals, in epoch µs
    cum: list[int]  # business µs before each day; the last item is the year's total


def _us(instant: datetime) -> int:
    # Subtracting from a UTC epoch applies the instant's own offset, so this is real time.
    return (instant - _EPOCH) // _US


def _instant(value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise CalendarError(
            N_("The datetime %(value)s has no time zone; give an aware datetime."), value=value
        )
    return _us(value)


def _from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _elapsed_in(intervals: tuple[Interval, ...], micros: int) -> int:
    """Business µs of one day's intervals that lie before the instant ``micros``."""
    total = 0
    for start, end in intervals:
        if micros <= start:
            break
        total += (micros if micros < end else end) - start
    return total


@lru_cache(maxsize=1024)
def _public_holidays(code: str, year: int) -> frozenset[date]:
    # Shared by all calendars: building a country's holiday list is the slow part of a year.
    country, _, subdivision = code.partition("-")
    try:
        found = holidays_lib.country_holidays(country, subdiv=subdivision or None, years=year)
    except NotImplementedError:
        raise CalendarError(
            N_("Public holidays for %(code)r are unknown; use a country code like PL or DE-BY."),
            code=code,
        ) from None
    return frozenset(found)


def _zone(value: str | ZoneInfo) -> ZoneInfo:
    if isinstance(value, ZoneInfo) and value.key:
        return value
    try:
        return ZoneInfo(str(value).strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CalendarError(
            N_("Unknown time zone %(value)r; use an IANA name such as Europe/Warsaw."), value=value
        ) from None


def _minute(text: str, day: str, item: str, *, end: bool) -> int:
    match = _TIME.fullmatch(text.strip())
    hour, minute = (int(match[1]), int(match[2])) if match else (99, 99)
    if minute > 59 or hour > 24 or (hour == 24 and (minute or not end)):
        raise CalendarError(
            N_("The time %(time)r in %(item)r on %(day)s is not HH:MM (24:00 only as an end)."),
            time=text.strip(),
            item=item,
            day=day,
        )
    return hour * 60 + minute


def _parse_day(day: str, spec: str | Sequence[str] | None) -> tuple[Interval, ...]:
    items = [] if spec is None else [spec] if isinstance(spec, str) else list(spec)
    parsed: list[tuple[int, int, str]] = []
    for item in items:
        start, dash, end = str(item).partition("-")
        if not dash:
            raise CalendarError(
                N_('The interval %(item)r on %(day)s is not like "08:00-16:00".'),
                item=item,
                day=day,
            )
        first = _minute(start, day, str(item), end=False)
        last = _minute(end, day, str(item), end=True)
        if last <= first:
            raise CalendarError(
                N_("The interval %(item)r on %(day)s does not end after it starts."),
                item=item,
                day=day,
            )
        parsed.append((first, last, str(item)))
    parsed.sort()
    merged: list[Interval] = []
    for index, (first, last, item) in enumerate(parsed):
        if merged and first < merged[-1][1]:
            raise CalendarError(
                N_("The intervals %(first)r and %(second)r on %(day)s overlap."),
                first=parsed[index - 1][2],
                second=item,
                day=day,
            )
        if merged and first == merged[-1][1]:
            merged[-1] = (merged[-1][0], last)  # touching intervals are one open stretch
        else:
            merged.append((first, last))
    return tuple(merged)


def _parse_week(hours: HoursSpec) -> Week:
    if isinstance(hours, str) and hours.strip().lower() == "24/7":
        return _ALWAYS
    if not isinstance(hours, Mapping):
        raise CalendarError(
            N_('Working hours must be "24/7" or a mapping of mon..sun to intervals.')
        )
    week: list[tuple[Interval, ...]] = [()] * 7
    for key, spec in hours.items():
        day = str(key).strip().lower()
        if day not in _DAY_KEYS:
            raise CalendarError(
                N_("Unknown weekday %(key)r in the working hours; use mon..sun."), key=key
            )
        week[_DAY_KEYS.index(day)] = _parse_day(day, spec)
    if not any(week):
        raise CalendarError(N_("The working hours have no open interval on any weekday."))
    return tuple(week)


def _parse_dates(values: Iterable[str | date] | str | date | None) -> frozenset[date]:
    found: set[date] = set()
    for value in [values] if isinstance(values, str | date) else values or ():
        if isinstance(value, date):
            found.add(value.date() if isinstance(value, datetime) else value)
            continue
        try:
            found.add(date.fromisoformat(str(value).strip()))
        except ValueError:
            raise CalendarError(
                N_("The extra holiday %(value)r is not a date like 2026-12-31."), value=value
            ) from None
    return frozenset(found)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_interned: weakref.WeakValueDictionary[tuple[Any, ...], BusinessCalendar] = (
    weakref.WeakValueDictionary()
)


class BusinessCalendar:
    """When the SLA clock runs. Equal definitions compare and hash equal, so a calendar can
    key a cache; the per-year tables are built lazily and are not part of the definition."""

    def __init__(
        self,
        timezone: str | ZoneInfo,
        *,
        hours: HoursSpec,
        holidays: str | None = None,
        extra_holidays: Iterable[str | date] | None = None,
        day_length: timedelta | int | str | None = None,
    ) -> None:
        self._zone = _zone(timezone)
        self._week = _parse_week(hours)
        self._country = str(holidays).strip().upper() if holidays else None
        if self._country:
            _public_holidays(self._country, 2000)  # refuse an unknown country now, not later
        self._extra = _parse_dates(extra_holidays)
        longest = timedelta(minutes=max(sum(e - s for s, e in day) for day in self._week))
        self._default_day_length = longest
        self._day_length = longest if day_length is None else _parse_day_length(day_length)
        # With nothing ever closed, business time is plain elapsed time: skip the tables.
        self._elapsed = self._week == _ALWAYS and not self._country and not self._extra
        extra = tuple(sorted(self._extra))
        self._key = (self._zone.key, self._country, extra, self._week, self._day_length)
        self._years: dict[int, _Year] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BusinessCalendar:
        """Build a calendar from its YAML shape {timezone, hours, holidays, extra_holidays,
        day_length}; ``name`` and ``description`` are ignored. Equal definitions share one
        instance, so the year tables are built once per process."""
        if not isinstance(config, Mapping):
            raise CalendarError(
                N_("A calendar must be a mapping with at least timezone and hours.")
            )
        unknown = sorted(str(key) for key in set(config) - _CONFIG_KEYS - {"name", "description"})
        if unknown:
            raise CalendarError(N_("Unknown calendar key(s): %(keys)s."), keys=", ".join(unknown))
        for required in ("timezone", "hours"):
            if config.get(required) is None:
                raise CalendarError(N_("A calendar needs %(key)r."), key=required)
        options: dict[str, Any] = {k: config.get(k) for k in _CONFIG_KEYS - {"timezone"}}
        built = cls(config["timezone"], **options)
        return _interned.setdefault(built._key, built)

    def to_config(self) -> dict[str, Any]:
        """The YAML shape that ``from_config`` accepts, for ``pulpit config export``."""
        hours: HoursSpec = {
            _DAY_KEYS[i]: [f"{_clock(s)}-{_clock(e)}" for s, e in day]
            for i, day in enumerate(self._week)
            if day
        }
        if self._week == _ALWAYS:
            hours = "24/7"
        config: dict[str, Any] = {"timezone": self._zone.key, "hours": hours}
        if self._country:
            config["holidays"] = self._country
        if self._extra:
            config["extra_holidays"] = [d.isoformat() for d in sorted(self._extra)]
        if self._day_length != self._default_day_length:
            config["day_length"] = format_duration(self._day_length)
        return config

    @property
    def timezone(self) -> str:
        return str(self._zone.key)

    @property
    def day_length(self) -> timedelta:
        """What ``1d`` means: explicit, or the longest weekday's total hours (24h for 24/7)."""
        return self._day_length

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BusinessCalendar):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"BusinessCalendar.from_config({self.to_config()!r})"

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant, in UTC, at which ``duration`` of business time has elapsed since
        ``start``. A clock started outside hours starts at the next opening; a deadline that
        ends exactly at closing time is that closing time.

        A zero duration returns ``start`` itself, unchanged, even outside hours: nothing has
        to elapse, so there is no reason to move to the next opening (use ``next_opening``
        for that). Negative durations are refused with ``ValueError``."""
        micros = _instant(start)
        need = duration // _US
        if need < 0:
            raise CalendarError(
                N_("A business duration cannot be negative (got %(duration)s)."), duration=duration
            )
        if need == 0:
            return start
        if self._elapsed:
            return _from_us(micros + need)
        year, table, index = self._locate(micros, start.year)
        target = table.cum[index] + _elapsed_in(table.days[index], micros) + need
        while target > table.cum[-1]:
            target -= table.cum[-1]
            year += 1
            table = self._year(year)
        # bisect_left puts a target equal to a day's total on that day, not on the next one:
        # that is what makes "exactly at closing" the closing time.
        day = bisect_left(table.cum, target) - 1
        left = target - table.cum[day]
        for open_at, close_at in table.days[day]:
            if left <= close_at - open_at:
                return _from_us(open_at + left)
            left -= close_at - open_at
        raise AssertionError("the running totals promised business time on this day")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from ``start`` to ``end``; ``timedelta(0)`` when end <= start."""
        first, last = _instant(start), _instant(end)
        if last <= first:
            return timedelta(0)
        if self._elapsed:
            return timedelta(microseconds=last - first)
        year_a, table_a, index_a = self._locate(first, start.year)
        year_b, table_b, index_b = self._locate(last, end.year)
        total = sum(self._year(year).cum[-1] for year in range(year_a, year_b))
        total += table_b.cum[index_b] + _elapsed_in(table_b.days[index_b], last)
        total -= table_a.cum[index_a] + _elapsed_in(table_a.days[index_a], first)
        return timedelta(microseconds=total)

    def is_open(self, instant: datetime) -> bool:
        """Whether the clock runs at ``instant`` (opening time is open, closing time is not)."""
        micros = _instant(instant)
        if self._elapsed:
            return True
        _, table, index = self._locate(micros, instant.year)
        return any(start <= micros < end for start, end in table.days[index])

    def next_opening(self, instant: datetime) -> datetime:
        """``instant`` itself if the calendar is open then, else the next opening in UTC."""
        micros = _instant(instant)
        if self._elapsed:
            return instant
        year, table, index = self._locate(micros, instant.year)
        while True:
            for start, end in table.days[index]:
                if micros < end:
                    return instant if start <= micros else _from_us(start)
            index += 1
            if index == len(table.days):
                year, index = year + 1, 0
                table = self._year(year)

    def _locate(self, micros: int, year: int) -> tuple[int, _Year, int]:
        # The caller's year is the instant's year in its own zone: at most one off locally.
        table = self._year(year)
        while micros < table.starts[0]:
            year -= 1
            table = self._year(year)
        while micros >= table.starts[-1]:
            year += 1
            table = self._year(year)
        return year, table, bisect_right(table.starts, micros) - 1

    def _year(self, year: int) -> _Year:
        table = self._years.get(year)
        if table is None:
            table = self._years[year] = self._build_year(year)
        return table

    def _build_year(self, year: int) -> _Year:
        if not _MIN_YEAR <= year <= _MAX_YEAR:
            raise CalendarError(
                N_("The year %(year)s is outside %(first)s-%(last)s."),
                year=year,
                first=_MIN_YEAR,
                last=_MAX_YEAR,
            )
        closed = self._extra
        if self._country:
            closed = closed | _public_holidays(self._country, year)
        first = date(year, 1, 1)
        starts: list[int] = []
        days: list[tuple[Interval, ...]] = []
        cum = [0]
        for offset in range((date(year + 1, 1, 1) - first).days):
            day = first + timedelta(days=offset)
            midnight = datetime(day.year, day.month, day.day, tzinfo=self._zone)
            starts.append(_us(midnight))
            intervals: list[Interval] = []
            floor = starts[-1]
            for start, end in () if day in closed else self._week[day.weekday()]:
                # Adding to an aware datetime is wall-clock arithmetic, so each end is the
                # real instant of that local time; an interval across a DST change holds the
                # real time in between, and one inside the skipped hour holds nothing.
                real_start = max(_us(midnight + timedelta(minutes=start)), floor)
                real_end = max(_us(midnight + timedelta(minutes=end)), real_start)
                if real_end > real_start:
                    intervals.append((real_start, real_end))
                floor = real_end
            days.append(tuple(intervals))
            cum.append(cum[-1] + sum(end - start for start, end in intervals))
        starts.append(_us(datetime(year + 1, 1, 1, tzinfo=self._zone)))
        return _Year(starts, days, cum)


def _parse_day_length(value: timedelta | int | str) -> timedelta:
    if isinstance(value, timedelta):
        length = value
    elif isinstance(value, int) and not isinstance(value, bool):
        length = timedelta(minutes=value)
    elif isinstance(value, str):
        length = parse_duration(value)
    else:
        raise CalendarError(
            N_("The day_length %(value)r must be a duration such as 8h."), value=value
        )
    if length <= timedelta(0) or length % timedelta(minutes=1):
        raise CalendarError(
            N_("The day_length %(value)r must be a positive number of minutes."), value=value
        )
    return length


def parse_duration(text: str, calendar: BusinessCalendar | None = None) -> timedelta:
    """Read a business duration: ``30m``, ``2h``, ``1d`` (the calendar's day_length), ``1w``
    (five days) or a combination in that order, such as ``1h30m``. A bare number is refused:
    the unit must be explicit. ``d`` and ``w`` need the calendar."""
    compact = "".join(text.lower().split()) if isinstance(text, str) else ""
    match = _DURATION.fullmatch(compact)
    if not match or not any(match.groups()):
        raise CalendarError(
            N_("The duration %(text)r is not understood; write it like 30m, 2h, 1d, 1w or 1h30m."),
            text=text,
        )
    weeks, days, hours, minutes = (int(group) if group else 0 for group in match.groups())
    if (weeks or days) and calendar is None:
        raise CalendarError(
            N_("The duration %(text)r counts days, so it needs a calendar."), text=text
        )
    try:
        whole_days = calendar.day_length * (weeks * 5 + days) if calendar else timedelta(0)
        return whole_days + timedelta(hours=hours, minutes=minutes)
    except OverflowError:
        raise CalendarError(N_("The duration %(text)r is too long."), text=text) from None


def format_duration(duration: timedelta, calendar: BusinessCalendar | None = None) -> str:
    """Write a duration the way ``parse_duration`` reads it: whole days (``1d``, ``5d``) when
    it is a whole number of the calendar's days, else hours and minutes (``2h``, ``1h30m``)."""
    if duration < timedelta(0) or duration % timedelta(minutes=1):
        raise CalendarError(
            N_("Only whole, non-negative minutes can be written (got %(duration)s)."),
            duration=duration,
        )
    if calendar is not None and duration and not duration % calendar.day_length:
        return f"{duration // calendar.day_length}d"
    hours, minutes = divmod(duration // timedelta(minutes=1), 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") or "0m"
