"""The calendars admin screen in-process: a calendar with a lunch break saved as its YAML entry
and exported (applying the export changes nothing), the preview computed by the SLA engine,
bad intervals and durations refused under their fields with the input kept, an edit moving
deadlines announced first, administrators only."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core.sla.calendar import BusinessCalendar, parse_duration
from core.sla.models import Calendar
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client, in_english
from tests.integration.test_admin_contracts import (
    exported,
    form_values,
    normalized,
    problems_on,
)
from web.console.admin.calendars import next_friday

LUNCH = ["08:00-12:00", "12:30-16:00"]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return normalized(build_seeded_app(tmp_path_factory.mktemp("admin-calendars")))


def admin(instance: SeededApp) -> tuple[Any, str]:
    return console_client(instance.app, instance.users["admin"])


def calendar_id(instance: SeededApp, name: str) -> int:
    with instance.factory() as s:
        found = s.scalar(select(Calendar.id).where(Calendar.name == name))
        assert found is not None
        return found


def office_form(csrf: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "csrf_token": csrf,
        "name": "Biuro",
        "timezone": "Europe/Warsaw",
        "holidays": "pl",
        "extra_holidays": "2026-12-31\n2027-01-02",
        "day_length": "",
    }
    for day in ("mon", "tue", "wed", "thu", "fri"):
        data[f"hours_{day}"] = list(LUNCH)
    data.update(changes)
    return data


def exported_calendar(instance: SeededApp, name: str) -> dict[str, Any]:
    return next(c for c in exported(instance)["calendars"] if c["name"] == name)


def test_only_administrators(instance: SeededApp) -> None:
    client, csrf = console_client(instance.app, instance.users["coordinator"])
    assert client.get("/admin/calendars").status_code == 403
    r = client.post("/admin/calendars/new", data=office_form(csrf), follow_redirects=False)
    assert r.status_code == 403
    with instance.factory() as s:
        assert s.scalar(select(Calendar).where(Calendar.name == "Biuro")) is None


def test_a_calendar_with_a_lunch_break_is_saved_previewed_and_exported(
    instance: SeededApp,
) -> None:
    client, csrf = admin(instance)
    new = client.get("/admin/calendars/new")
    assert new.status_code == 200
    zones = re.findall(r'<option value="([^"]+)"', new.text)
    assert zones[0].startswith("Europe/") and "America/New_York" in zones
    assert zones.index("Europe/Warsaw") < zones.index("America/New_York")
    r = client.post("/admin/calendars/new", data=office_form(csrf), follow_redirects=False)
    assert r.status_code == 303, problems_on(r.text)
    assert r.headers["location"] == f"/admin/calendars/{calendar_id(instance, 'Biuro')}"
    page = client.get(r.headers["location"]).text
    assert "Zapisano." in page
    out = exported_calendar(instance, "Biuro")
    assert out["hours"] == {day: LUNCH for day in ("mon", "tue", "wed", "thu", "fri")}
    assert out["holidays"] == "PL" and out["timezone"] == "Europe/Warsaw"
    assert [str(d) for d in out["extra_holidays"]] == ["2026-12-31", "2027-01-02"]
    # The preview: the engine's due times from the next Friday 15:00.
    engine = BusinessCalendar.from_config({k: v for k, v in out.items() if k != "name"})
    zone = ZoneInfo("Europe/Warsaw")
    start = next_friday(datetime.now(UTC), zone)
    samples = re.findall(r'data-testid="sample">([^<]+)<', page)
    assert len(samples) == 2
    for text, target in zip(samples, ("4h", "1d"), strict=True):
        due = engine.add(start, parse_duration(target, engine)).astimezone(zone)
        assert text.startswith(f"Cel {target} otwarty piątek")
        assert f"{due.day} " in text.split("mija")[1] and due.strftime("%H:%M") in text
    four = engine.add(start, parse_duration("4h", engine)).astimezone(zone)
    if four.weekday() == 0:  # no holiday on that Monday: 1h on Friday, 3h from 08:00
        assert four.strftime("%H:%M") == "11:00"
    days_off = re.search(r'data-testid="days-off">(.*?)</ul>', page, re.S)
    assert days_off and "2026-12-31" in days_off[1]
    english = in_english(client, r.headers["location"]).text
    assert "target opened Friday" in english


def test_bad_intervals_and_durations_are_refused_with_the_input(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    data = office_form(csrf, name="Zmiana", hours_mon=["08:00-12:00", "11:30-16:00"])
    r = client.post("/admin/calendars/new", data=data)
    assert r.status_code == 400
    assert "nachodzą na siebie" in problems_on(r.text)["hours"]
    assert 'value="11:30-16:00"' in r.text and 'value="Zmiana"' in r.text
    r = client.post("/admin/calendars/new", data=office_form(csrf, name="Zmiana", day_length="8x"))
    assert r.status_code == 400
    assert list(problems_on(r.text)) == ["day_length"]
    assert 'value="8x"' in r.text
    r = client.post("/admin/calendars/new", data=office_form(csrf, name="Zmiana", holidays="XX"))
    assert r.status_code == 400 and list(problems_on(r.text)) == ["holidays"]
    with instance.factory() as s:
        assert s.scalar(select(Calendar).where(Calendar.name == "Zmiana")) is None


def test_an_edit_moving_deadlines_asks_first(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    number = calendar_id(instance, "always")  # ACME-KEY's and BETA-STD's, open tickets on it
    data = form_values(client.get(f"/admin/calendars/{number}").text, "calendar-form")
    assert data["always"] == "1"
    data.pop("always")
    data.update({"csrf_token": csrf, "action": "check", "hours_mon": LUNCH, "hours_tue": LUNCH})
    r = client.post(f"/admin/calendars/{number}", data=data)
    assert r.status_code == 200
    warning = re.search(r'data-testid="deadlines".*?<strong>([^<]+)</strong>', r.text, re.S)
    assert warning and re.fullmatch(
        r"Otwarte zgłoszenia, które dostaną nowe terminy: \d+", warning[1]
    )
    assert exported_calendar(instance, "always")["hours"] == "24/7"  # nothing saved yet
    data["action"] = "confirm"
    r = client.post(f"/admin/calendars/{number}", data=data, follow_redirects=False)
    assert r.status_code == 303
    assert exported_calendar(instance, "always")["hours"] == {"mon": LUNCH, "tue": LUNCH}


def test_the_list_searches_by_name(instance: SeededApp) -> None:
    client, _ = admin(instance)
    page = client.get("/admin/calendars").text
    assert "always" in page
    assert (
        "always"
        not in client.get("/admin/calendars", params={"q": "zzz"}).text.split(
            'data-testid="calendars"'
        )[1]
    )


def test_the_preview_of_what_is_typed_saves_nothing(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    data = office_form(csrf, name="Próba", action="preview", hours_fri=["08:00-16:00"])
    r = client.post("/admin/calendars/new", data=data)
    assert r.status_code == 200
    assert 'data-testid="typed"' in r.text
    samples = re.findall(r'data-testid="sample">([^<]+)<', r.text)
    # Friday 15:00-16:00 is one hour, the next working morning 08:00-11:00 the other three.
    assert samples[0].startswith("Cel 4h otwarty piątek")
    hours = {day: data[f"hours_{day}"] for day in ("mon", "tue", "wed", "thu", "fri")}
    engine = BusinessCalendar.from_config(
        {
            "timezone": "Europe/Warsaw",
            "hours": hours,
            "holidays": "PL",
            "extra_holidays": ["2026-12-31", "2027-01-02"],
        }
    )
    zone = ZoneInfo("Europe/Warsaw")
    due = engine.add(next_friday(datetime.now(UTC), zone), parse_duration("4h")).astimezone(zone)
    assert due.strftime("%H:%M") == "11:00"
    assert samples[0].split("mija")[1].strip().endswith(f"{due.year}, 11:00.")
    assert 'value="Próba"' in r.text
    with instance.factory() as s:
        assert s.scalar(select(Calendar).where(Calendar.name == "Próba")) is None
    # A typed mistake is refused under its field, as a save would be.
    data["hours_mon"] = ["16:00-08:00"]
    r = client.post("/admin/calendars/new", data=data)
    assert r.status_code == 400
    assert problems_on(r.text)["hours"] == (
        "przedział '16:00-08:00' (mon) nie kończy się później, niż się zaczyna"
    )
