"""Benchmark of the SLA engine (core.sla.calendar) against the businesstimedelta package.

Both compute the same N deadlines on the same calendar (Mon-Fri 08:00-16:00, Europe/Warsaw,
Polish public holidays) from random starts over two years with typical SLA durations (2h to
5 business days), then the business time back from each start to its deadline. The script
checks that both libraries give the same answers, and prints a markdown table of deadlines
per second, the speed ratio and peak memory (tracemalloc), with the machine it ran on.

Run: .venv/bin/python bench/sla.py [--n 20000] [--seed 2026]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

import businesstimedelta as btd  # noqa: E402
import holidays  # noqa: E402
import pytz  # noqa: E402

from core.sla import BusinessCalendar  # noqa: E402

ZONE = "Europe/Warsaw"
HOURS = [2, 4, 8, 16, 24, 40]  # 2h, 4h, 1d, 2d, 3d, 5d on an 8-hour day
Case = tuple[datetime, timedelta]


def make_cases(n: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    first = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        (
            first + timedelta(minutes=rng.randrange(2 * 365 * 24 * 60)),
            timedelta(hours=rng.choice(HOURS)),
        )
        for _ in range(n)
    ]


def make_engine() -> BusinessCalendar:
    office = {day: ["08:00-16:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    return BusinessCalendar(timezone=ZONE, holidays="PL", hours=office)


def make_btd_rules() -> Any:
    # The same calendar in businesstimedelta's terms: a working-day rule plus a holiday rule.
    zone = pytz.timezone(ZONE)
    workday = btd.WorkDayRule(
        start_time=clock_time(8), end_time=clock_time(16), working_days=[0, 1, 2, 3, 4], tz=zone
    )
    public = holidays.country_holidays("PL", years=range(2025, 2031))
    return btd.Rules([workday, btd.HolidayRule(public, tz=zone)])


def engine_add(cases: list[Case]) -> list[datetime]:
    cal = make_engine()
    return [cal.add(start, duration) for start, duration in cases]


def engine_add_discarding(cases: list[Case]) -> None:
    cal = make_engine()
    for start, duration in cases:
        cal.add(start, duration)


def btd_add(cases: list[Case]) -> list[datetime]:
    rules = make_btd_rules()
    return [start + btd.BusinessTimeDelta(rules, timedelta=duration) for start, duration in cases]


def engine_between(pairs: list[tuple[datetime, datetime]]) -> list[timedelta]:
    cal = make_engine()
    return [cal.between(start, end) for start, end in pairs]


def btd_add_discarding(cases: list[Case]) -> None:
    rules = make_btd_rules()
    for start, duration in cases:
        start + btd.BusinessTimeDelta(rules, timedelta=duration)


def btd_between(pairs: list[tuple[datetime, datetime]]) -> list[timedelta]:
    rules = make_btd_rules()
    return [rules.difference(start, end).timedelta for start, end in pairs]


def timed(work: Callable[[], list[Any]], repeat: int = 1) -> tuple[list[Any], float]:
    """The result and the best wall time of ``repeat`` runs (the least disturbed by others)."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - began)
    return result, best


def peak_kib(work: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def machine() -> str:
    model = "unknown CPU"
    if shutil.which("lscpu"):
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in listing.splitlines()
                if "Model name" in line
            ),
            model,
        )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, nproc {cores}, Python {platform.python_version()} ({sys.platform})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20_000, help="deadlines to compute")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each add timing; best kept")
    args = parser.parse_args()
    cases = make_cases(args.n, args.seed)
    # Import the holidays package's country module outside the timings: a one-off cost per
    # process (about 50 ms), the same for both libraries.
    holidays.country_holidays("PL", years=2000)

    # Cold: a fresh calendar, so the year tables are built inside the timing.
    ours, ours_cold = timed(lambda: engine_add(cases), args.repeat)
    cal = make_engine()
    cal.add(cases[0][0], cases[0][1])
    _, ours_warm = timed(lambda: [cal.add(start, d) for start, d in cases], args.repeat)
    theirs, theirs_time = timed(lambda: btd_add(cases), args.repeat)

    pairs = [(start, due) for (start, _), due in zip(cases, ours, strict=True)]
    spent, ours_between = timed(lambda: engine_between(pairs))
    spent_btd, theirs_between = timed(lambda: btd_between(pairs))

    add_mismatch = [
        (start, duration, a, b)
        for (start, duration), a, b in zip(cases, ours, theirs, strict=True)
        if a != b
    ]
    between_mismatch = sum(
        1
        for (_, duration), a, b in zip(cases, spent, spent_btd, strict=True)
        if not a == b == duration
    )
    # Results are discarded here, so the peak is the libraries' own working memory (calendar,
    # year tables, holiday sets, temporaries), not the list of N answers.
    ours_peak = peak_kib(lambda: engine_add_discarding(cases))
    theirs_peak = peak_kib(lambda: btd_add_discarding(cases))

    n = args.n
    print(f"### SLA engine benchmark: {n:,} deadlines (seed {args.seed})\n")
    print(f"Machine: {machine()}  ")
    print(f"Calendar: Mon-Fri 08:00-16:00 {ZONE}, PL holidays; durations {HOURS} business hours; ")
    print(
        f"starts uniform over 2026-2027; one thread; `add` best of {args.repeat} runs, "
        "`between` one run.\n"
    )
    print("| measure | core.sla | businesstimedelta | core.sla vs businesstimedelta |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| `add`, deadlines/s (fresh calendar) | {n / ours_cold:,.0f} | {n / theirs_time:,.0f}"
        f" | {theirs_time / ours_cold:,.0f}x faster |"
    )
    print(
        f"| `add`, deadlines/s (warm calendar) | {n / ours_warm:,.0f} | {n / theirs_time:,.0f}"
        f" | {theirs_time / ours_warm:,.0f}x faster |"
    )
    print(
        f"| `between`, calls/s (fresh calendar) | {n / ours_between:,.0f} | {n / theirs_between:,.0f}"
        f" | {theirs_between / ours_between:,.0f}x faster |"
    )
    print(
        f"| peak memory while computing {n:,} `add` (tracemalloc, answers not kept) | {ours_peak:,.0f} KiB | {theirs_peak:,.0f} KiB"
        f" | {ours_peak / theirs_peak:,.1f}x more (year tables) |"
    )
    print(f"| total time for {n:,} `add` | {ours_cold:.3f} s | {theirs_time:.3f} s | |")
    print()
    print(
        f"Agreement: `add` {n - len(add_mismatch):,}/{n:,} identical deadlines; `between` "
        f"{n - between_mismatch:,}/{n:,} give back the duration in both libraries."
    )
    for start, duration, a, b in add_mismatch[:5]:
        print(f"- differs: {start.isoformat()} + {duration}: core.sla {a}, businesstimedelta {b}")
    return 1 if add_mismatch or between_mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
