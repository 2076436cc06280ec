"""The list's time to a deadline (issue 15): unsigned, "<1m" under a minute, never "-0m"."""

from __future__ import annotations

from datetime import timedelta

from tests.factories import at
from web.filters import time_left

NOW = at("2026-03-04 12:00")


def test_time_left_and_time_late() -> None:
    assert time_left(NOW + timedelta(hours=2, minutes=15), NOW) == "2h 15m"
    assert time_left(NOW + timedelta(days=1, hours=3), NOW) == "1d 3h"
    assert time_left(NOW + timedelta(seconds=20), NOW) == "<1m"
    assert time_left(NOW - timedelta(seconds=20), NOW) == "<1m"  # was "-0m"
    assert time_left(NOW - timedelta(minutes=5), NOW) == "5m"  # the template says "late"
    assert time_left(None, NOW) == ""
