"""Unit tests of the business-time engine (core.sla.calendar): one behaviour per test.

Imported as scripts and outside checks do, from the ``core.sla`` package.

Instants are written in Europe/Warsaw wall-clock time with ``local()`` so the vectors read
like the calendar they test; the engine answers in UTC, and aware datetimes compare by instant.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from core.errors import InputError
from core.sla import BusinessCalendar, CalendarError, format_duration, parse_duration

WARSAW = ZoneInfo("Europe/Warsaw")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
OFFICE = {day: ["08:00-16:00"] for day in WEEKDAYS}
LUNCH = {day: ["08:00-12:00", "13:00-16:00"] for day in WEEKDAYS}


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=WARSAW, fold=fold)


def office(
    extra_holidays: list[str | date] | None = None, day_length: str | None = None
) -> BusinessCalendar:
    return BusinessCalendar(
        timezone="Europe/Warsaw",
        holidays="PL",
        hours=OFFICE,
        extra_holidays=extra_holidays,
        day_length=day_length,
    )


def always() -> BusinessCalendar:
    return BusinessCalendar(timezone="Europe/Warsaw", hours="24/7")


H = timedelta(hours=1)


# --- the vectors of the contract -----------------------------------------------------------


def test_deadline_across_autumn_dst_change_on_office_hours() -> None:
    assert office().add(local(2026, 10, 23, 15), 2 * H) == local(2026, 10, 26, 9)


def test_deadline_across_spring_dst_change_on_24_7_counts_real_time() -> None:
    due = always().add(local(2026, 3, 28, 12), 24 * H)
    assert due == local(2026, 3, 29, 13)
    assert due.astimezone(WARSAW).utcoffset() == 2 * H


def test_public_holiday_is_skipped() -> None:
    # 11 November is Independence Day in Poland.
    assert office().add(local(2026, 11, 10, 14), 4 * H) == local(2026, 11, 12, 10)


def test_deadline_ending_exactly_at_closing_is_closing_time() -> None:
    assert office().add(local(2026, 11, 16, 8), 8 * H) == local(2026, 11, 16, 16)


def test_add_returns_utc() -> None:
    due = office().add(local(2026, 11, 16, 8), 2 * H)
    assert due.tzinfo is UTC
    assert due == datetime(2026, 11, 16, 9, tzinfo=UTC)


# --- starting outside hours -----------------------------------------------------------------


def test_start_before_opening_starts_at_opening() -> None:
    assert office().add(local(2026, 11, 16, 6, 30), 2 * H) == local(2026, 11, 16, 10)


def test_start_after_closing_starts_next_working_morning() -> None:
    assert office().add(local(2026, 11, 16, 18), 2 * H) == local(2026, 11, 17, 10)


def test_start_on_weekend_starts_monday_morning() -> None:
    assert office().add(local(2026, 11, 14, 11), 30 * timedelta(minutes=1)) == local(
        2026, 11, 16, 8, 30
    )


def test_start_exactly_at_closing_continues_next_day() -> None:
    assert office().add(local(2026, 11, 16, 16), H) == local(2026, 11, 17, 9)


def test_zero_duration_returns_start_unchanged_even_outside_hours() -> None:
    saturday = local(2026, 11, 14, 11)
    assert office().add(saturday, timedelta(0)) is saturday
    open_now = local(2026, 11, 16, 9)
    assert office().add(open_now, timedelta(0)) is open_now


def test_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        office().add(local(2026, 11, 16, 9), -H)


def test_lunch_break_is_skipped() -> None:
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours=LUNCH)
    assert cal.add(local(2026, 11, 16, 11), 2 * H) == local(2026, 11, 16, 14)


def test_deadline_ending_at_lunch_is_start_of_lunch() -> None:
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours=LUNCH)
    assert cal.add(local(2026, 11, 16, 11), H) == local(2026, 11, 16, 12)


def test_week_long_deadline() -> None:
    assert office().add(local(2026, 11, 16, 9), 40 * H) == local(2026, 11, 23, 9)


# --- holidays -------------------------------------------------------------------------------


def test_christmas_eve_is_a_polish_holiday_from_2025() -> None:
    # 24-26 December 2026 are holidays (Christmas Eve since 2025), then the weekend.
    assert office().add(local(2026, 12, 23, 15), 2 * H) == local(2026, 12, 28, 9)


def test_extra_holiday_is_a_whole_day_off_and_crosses_into_next_year() -> None:
    plain = office()
    assert plain.add(local(2026, 12, 30, 15), 2 * H) == local(2026, 12, 31, 9)
    with_extra = office(extra_holidays=["2026-12-31"])
    # 31 December off, 1 January a public holiday, then the weekend.
    assert with_extra.add(local(2026, 12, 30, 15), 2 * H) == local(2027, 1, 4, 9)


def test_extra_holidays_accept_date_objects() -> None:
    assert office(extra_holidays=[date(2026, 12, 31)]) == office(extra_holidays=["2026-12-31"])


def test_without_country_holidays_nothing_is_skipped() -> None:
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours=OFFICE)
    assert cal.add(local(2026, 11, 10, 14), 4 * H) == local(2026, 11, 11, 10)


def test_deadline_spanning_many_years() -> None:
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours=OFFICE)
    start = local(2026, 1, 5, 8)
    due = cal.add(start, 8 * H * 261 * 3)  # three years of weekdays, give or take
    assert cal.between(start, due) == 8 * H * 261 * 3


# --- 24/7 and DST days ------------------------------------------------------------------


def test_24_7_between_counts_real_time_across_dst() -> None:
    assert always().between(local(2026, 10, 24, 12), local(2026, 10, 25, 12)) == 25 * H


def test_24_7_day_length_is_24h() -> None:
    assert always().day_length == 24 * H


def test_24_7_with_holidays_skips_the_holiday_in_real_time() -> None:
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours="24/7", extra_holidays=["2026-03-29"])
    # 29 March is closed (and is the 23-hour day), so the clock resumes on the 30th.
    assert cal.add(local(2026, 3, 28, 12), 24 * H) == local(2026, 3, 30, 12)


def test_all_day_interval_on_spring_dst_day_is_23_hours() -> None:
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours={"sun": ["00:00-24:00"]})
    assert cal.between(local(2026, 3, 29, 0), local(2026, 3, 30, 0)) == 23 * H


def test_all_day_interval_on_autumn_dst_day_is_25_hours() -> None:
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours={"sun": ["00:00-24:00"]})
    assert cal.between(local(2026, 10, 25, 0), local(2026, 10, 26, 0)) == 25 * H


def test_interval_across_the_change_holds_the_real_time_between_its_ends() -> None:
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours={"sun": ["01:00-05:00"]})
    assert cal.between(local(2026, 3, 29, 0), local(2026, 3, 30, 0)) == 3 * H
    assert cal.between(local(2026, 10, 25, 0), local(2026, 10, 26, 0)) == 5 * H
    # The repeated hour is counted both times it happens: 01:00 CEST + 2h is the second
    # 02:00, in CET. (Compared in UTC: Python never finds a fold=1 time equal across zones.)
    second_two_oclock = local(2026, 10, 25, 2, fold=1).astimezone(UTC)
    assert cal.add(local(2026, 10, 25, 1), 2 * H) == second_two_oclock
    assert second_two_oclock == datetime(2026, 10, 25, 1, tzinfo=UTC)


# --- between ------------------------------------------------------------------------------


def test_between_within_one_interval() -> None:
    assert office().between(local(2026, 11, 16, 9), local(2026, 11, 16, 11, 30)) == 2.5 * H


def test_between_across_weekend() -> None:
    assert office().between(local(2026, 11, 13, 15), local(2026, 11, 16, 9)) == 2 * H


def test_between_across_holiday() -> None:
    assert office().between(local(2026, 11, 10, 14), local(2026, 11, 12, 10)) == 4 * H


def test_between_across_dst_change() -> None:
    assert office().between(local(2026, 10, 23, 15), local(2026, 10, 26, 9)) == 2 * H


def test_between_across_lunch_break() -> None:
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours=LUNCH)
    assert cal.between(local(2026, 11, 16, 11), local(2026, 11, 16, 14)) == 2 * H


def test_between_outside_hours_is_zero() -> None:
    assert office().between(local(2026, 11, 14, 9), local(2026, 11, 15, 18)) == timedelta(0)


def test_between_reversed_or_equal_is_zero() -> None:
    start, end = local(2026, 11, 16, 9), local(2026, 11, 16, 12)
    assert office().between(end, start) == timedelta(0)
    assert office().between(start, start) == timedelta(0)


def test_between_across_new_year() -> None:
    # 31 Dec 15:00-16:00, then 1 Jan holiday and weekend, then Mon 4 Jan 08:00-10:00.
    assert office().between(local(2026, 12, 31, 15), local(2027, 1, 4, 10)) == 3 * H


# --- is_open and next_opening ------------------------------------------------------------


def test_is_open_at_opening_but_not_at_closing() -> None:
    cal = office()
    assert cal.is_open(local(2026, 11, 16, 8))
    assert not cal.is_open(local(2026, 11, 16, 16))
    assert not cal.is_open(local(2026, 11, 11, 10))  # holiday
    assert not cal.is_open(local(2026, 11, 14, 10))  # Saturday


def test_is_open_during_lunch_is_false() -> None:
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours=LUNCH)
    assert not cal.is_open(local(2026, 11, 16, 12, 30))


def test_next_opening_is_the_instant_itself_when_open() -> None:
    now = local(2026, 11, 16, 9)
    assert office().next_opening(now) == now


def test_next_opening_skips_holiday_and_weekend() -> None:
    assert office().next_opening(local(2026, 12, 23, 17)) == local(2026, 12, 28, 8)


# --- definition and validation ---------------------------------------------------------


def test_touching_intervals_are_one_stretch() -> None:
    cal = BusinessCalendar(timezone="UTC", hours={"mon": ["08:00-12:00", "12:00-16:00"]})
    assert cal.is_open(datetime(2026, 11, 16, 12, tzinfo=UTC))
    assert cal == BusinessCalendar(timezone="UTC", hours={"mon": ["08:00-16:00"]})


def test_24_00_is_allowed_as_an_end() -> None:
    cal = BusinessCalendar(timezone="UTC", hours={"mon": ["20:00-24:00"]})
    start = datetime(2026, 11, 16, 20, tzinfo=UTC)
    assert cal.add(start, 4 * H) == datetime(2026, 11, 17, tzinfo=UTC)


def test_24_00_is_refused_as_a_start() -> None:
    with pytest.raises(ValueError, match="mon"):
        BusinessCalendar(timezone="UTC", hours={"mon": ["24:00-24:00"]})


def test_overlapping_intervals_are_refused_naming_the_day() -> None:
    with pytest.raises(ValueError, match="on wed overlap"):
        BusinessCalendar(timezone="UTC", hours={"wed": ["08:00-12:00", "11:00-16:00"]})


def test_reversed_interval_is_refused_naming_the_day() -> None:
    with pytest.raises(ValueError, match="on tue"):
        BusinessCalendar(timezone="UTC", hours={"tue": ["16:00-08:00"]})


@pytest.mark.parametrize("interval", ["8-16", "08:00", "25:00-26:00", "08:60-09:00", "a-b"])
def test_malformed_interval_is_refused(interval: str) -> None:
    with pytest.raises(ValueError, match="fri"):
        BusinessCalendar(timezone="UTC", hours={"fri": [interval]})


def test_unknown_weekday_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown weekday 'monday'"):
        BusinessCalendar(timezone="UTC", hours={"monday": ["08:00-16:00"]})


def test_bad_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown time zone 'Mars/Olympus'"):
        BusinessCalendar(timezone="Mars/Olympus", hours=OFFICE)


def test_unknown_holiday_country_is_refused() -> None:
    with pytest.raises(ValueError, match="'XX'"):
        BusinessCalendar(timezone="UTC", hours=OFFICE, holidays="XX")


def test_bad_extra_holiday_is_refused() -> None:
    with pytest.raises(ValueError, match="31.12.2026"):
        BusinessCalendar(timezone="UTC", hours=OFFICE, extra_holidays=["31.12.2026"])


def test_calendar_without_any_hours_is_refused() -> None:
    with pytest.raises(ValueError, match="no open interval"):
        BusinessCalendar(timezone="UTC", hours={"mon": []})


def test_errors_are_input_errors_for_the_cli_and_api() -> None:
    with pytest.raises(InputError):
        BusinessCalendar(timezone="Nowhere", hours=OFFICE)
    assert issubclass(CalendarError, ValueError)


@pytest.mark.parametrize("method", ["add", "between", "is_open", "next_opening"])
def test_naive_datetimes_are_refused(method: str) -> None:
    naive = datetime(2026, 11, 16, 9)
    args: dict[str, tuple[object, ...]] = {
        "add": (naive, H),
        "between": (naive, naive),
        "is_open": (naive,),
        "next_opening": (naive,),
    }
    with pytest.raises(ValueError, match="no time zone"):
        getattr(office(), method)(*args[method])


# --- day_length and durations ------------------------------------------------------------


def test_day_length_defaults_to_longest_weekday() -> None:
    hours = {"mon": ["08:00-16:00"], "sat": ["09:00-10:00"]}
    assert BusinessCalendar(timezone="UTC", hours=hours).day_length == 8 * H
    lunch = BusinessCalendar(timezone="UTC", hours=LUNCH)
    assert lunch.day_length == 7 * H


@pytest.mark.parametrize("given", [timedelta(hours=7, minutes=30), 450, "7h30m"])
def test_day_length_can_be_given(given: timedelta | int | str) -> None:
    cal = BusinessCalendar(timezone="UTC", hours=OFFICE, day_length=given)
    assert cal.day_length == timedelta(hours=7, minutes=30)
    assert parse_duration("1d", cal) == timedelta(hours=7, minutes=30)


@pytest.mark.parametrize("given", [0, -60, "0m", timedelta(seconds=90)])
def test_day_length_must_be_positive_whole_minutes(given: timedelta | int | str) -> None:
    with pytest.raises(ValueError, match="day_length"):
        BusinessCalendar(timezone="UTC", hours=OFFICE, day_length=given)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", 2 * H),
        ("1d", 8 * H),
        ("5d", 40 * H),
        ("1w", 40 * H),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 1h 30m ", timedelta(hours=1, minutes=30)),
        ("1d4h", 12 * H),
        ("0m", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text, office()) == expected


def test_parse_duration_day_on_24_7_is_24_hours() -> None:
    assert parse_duration("1d", always()) == 24 * H


@pytest.mark.parametrize("text", ["90", "", "2x", "1.5h", "30m1h", "h", "-2h", "2 hours"])
def test_parse_duration_refuses_bad_input_with_a_sentence(text: str) -> None:
    with pytest.raises(ValueError, match=r"not understood; write it like 30m, 2h"):
        parse_duration(text, office())


def test_parse_duration_refuses_non_strings() -> None:
    with pytest.raises(ValueError, match="not understood"):
        parse_duration(90, office())  # type: ignore[arg-type]


def test_parse_duration_days_need_a_calendar() -> None:
    assert parse_duration("2h") == 2 * H
    with pytest.raises(ValueError, match="needs a calendar"):
        parse_duration("1d")


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (2 * H, "2h"),
        (8 * H, "1d"),
        (40 * H, "5d"),
        (timedelta(minutes=30), "30m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (12 * H, "12h"),
        (timedelta(0), "0m"),
    ],
)
def test_format_duration(duration: timedelta, text: str) -> None:
    assert format_duration(duration, office()) == text
    assert parse_duration(text, office()) == duration


def test_format_duration_refuses_seconds() -> None:
    with pytest.raises(ValueError, match="whole"):
        format_duration(timedelta(seconds=90), office())


# --- identity and configuration -----------------------------------------------------------


def test_equal_definitions_are_equal_and_hash_alike() -> None:
    assert office() == office()
    assert hash(office()) == hash(office())
    cache = {office(): "cached"}
    assert cache[office()] == "cached"
    assert office() != office(extra_holidays=["2026-12-31"])
    assert office() != BusinessCalendar(timezone="Europe/Berlin", holidays="PL", hours=OFFICE)


def test_from_config_accepts_the_yaml_shape() -> None:
    document = yaml.safe_load(
        """
        name: business
        timezone: Europe/Warsaw
        holidays: PL
        extra_holidays: [2026-12-31]
        hours:
          mon: ["08:00-16:00"]
          tue: ["08:00-16:00"]
          wed: ["08:00-16:00"]
          thu: ["08:00-16:00"]
          fri: ["08:00-16:00"]
        """
    )
    cal = BusinessCalendar.from_config(document)
    assert cal == office(extra_holidays=["2026-12-31"])
    assert BusinessCalendar.from_config({"timezone": "Europe/Warsaw", "hours": "24/7"}) == always()


def test_from_config_shares_one_instance_per_definition() -> None:
    config = {"timezone": "Europe/Warsaw", "hours": OFFICE, "holidays": "PL"}
    assert BusinessCalendar.from_config(config) is BusinessCalendar.from_config(dict(config))


def test_from_config_refuses_unknown_keys_and_missing_ones() -> None:
    with pytest.raises(ValueError, match="timezon"):
        BusinessCalendar.from_config({"timezon": "UTC", "hours": "24/7"})
    with pytest.raises(ValueError, match="'hours'"):
        BusinessCalendar.from_config({"timezone": "UTC"})


def test_to_config_round_trips() -> None:
    for cal in (
        office(extra_holidays=["2026-12-31"], day_length="7h"),
        always(),
        BusinessCalendar(timezone="UTC", hours=LUNCH),
    ):
        assert BusinessCalendar.from_config(cal.to_config()) == cal


# --- properties ---------------------------------------------------------------------------

PROPERTY_CALENDARS = [
    office(),
    BusinessCalendar(timezone="Europe/Warsaw", hours=LUNCH, extra_holidays=["2026-03-30"]),
    BusinessCalendar(
        timezone="America/New_York",
        holidays="US",
        hours={
            "mon": ["00:00-03:00", "22:00-24:00"],
            "sun": ["01:00-04:00"],
            "sat": ["10:00-11:15"],
        },
    ),
    BusinessCalendar(timezone="Europe/Warsaw", hours="24/7", holidays="PL"),
]


@pytest.mark.parametrize("cal", PROPERTY_CALENDARS, ids=["office", "lunch", "ny", "247pl"])
def test_between_undoes_add(cal: BusinessCalendar) -> None:
    rng = random.Random(20261025)
    for _ in range(300):
        start = datetime(2025, 12, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(400 * 86400), microseconds=rng.randrange(10**6)
        )
        duration = timedelta(seconds=rng.randrange(1, 10 * 86400))
        due = cal.add(start, duration)
        assert due >= start
        assert cal.between(start, due) == duration, (start, duration, due)


def _brute_force_between(cal: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """A slow, independent oracle: count the minutes at which the calendar is open."""
    total = timedelta(0)
    moment = start
    while moment < end:
        if cal.is_open(moment):
            total += timedelta(minutes=1)
        moment += timedelta(minutes=1)
    return total


def _brute_force_is_open(hours: dict[str, list[str]], instant: datetime) -> bool:
    wall = instant.astimezone(WARSAW)
    if wall.date() in {date(2026, 3, 30)}:
        return False
    key = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[wall.weekday()]
    minute = wall.hour * 60 + wall.minute
    for interval in hours.get(key, []):
        first, last = interval.split("-")
        lo = int(first[:2]) * 60 + int(first[3:])
        hi = int(last[:2]) * 60 + int(last[3:])
        if lo <= minute < hi:
            return True
    return False


def test_is_open_agrees_with_wall_clock_reading_around_dst() -> None:
    hours = {"sun": ["01:00-05:00", "22:00-24:00"], "mon": ["00:00-03:00", "08:00-16:00"]}
    cal = BusinessCalendar(timezone="Europe/Warsaw", hours=hours, extra_holidays=["2026-03-30"])
    for first_day in (
        datetime(2026, 3, 28, 20, tzinfo=UTC),
        datetime(2026, 10, 24, 20, tzinfo=UTC),
    ):
        moment = first_day
        while moment < first_day + timedelta(days=3):
            assert cal.is_open(moment) == _brute_force_is_open(hours, moment), moment
            moment += timedelta(minutes=15)
        end = first_day + timedelta(days=3)
        assert cal.between(first_day, end) == _brute_force_between(cal, first_day, end)
