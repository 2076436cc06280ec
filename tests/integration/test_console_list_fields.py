"""The console's ticket list and custom fields (issue 12): fields as columns (picked, kept in the
URL and remembered per user), filtering by a field like the API, the checklist's progress and the
"missing data" badge of a ticket opened by mail without a field its contract requires on open.
In-process clients over the e2e world; one Chromium screenshot at 1280 px in both languages."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db import make_engine, make_session_factory
from core.tickets.models import Ticket
from tests.e2e.conftest import (
    LiveServer,
    SeededApp,
    browser,  # noqa: F401 (a fixture)
    build_seeded_app,
    console_client,
    start_live_server,
)
from web.console.tickets_list import format_value
from web.i18n import Translator

ROW = re.compile(r'<tr class="ticket-row[^"]*"[^>]*data-number="(\d+)"')


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    seeded = build_seeded_app(tmp_path_factory.mktemp("console-list-fields"))
    with seeded.factory() as s:
        for name, values in {
            "key_new": {"location": "Warszawa", "room": "A2", "serial_number": "X200-17"},
            "key_assigned": {"location": "Poznań", "room": "B1", "outage_cause": "zasilanie"},
        }.items():
            t = s.scalar(select(Ticket).where(Ticket.number == seeded.numbers[name]))
            assert t is not None
            t.custom_fields = values
        s.commit()
    return seeded


def login(instance: SeededApp, role: str, lang: str | None = None) -> Any:
    client, _ = console_client(instance.app, instance.users[role])
    if lang:
        client.cookies.set("lang", lang)
    return client


def numbers(page: str) -> list[int]:
    return [int(n) for n in ROW.findall(page)]


def row_html(page: str, number: int) -> str:
    start = page.index(f'data-number="{number}"')
    return page[start : page.index("</tr>", start)]


def headers(page: str) -> list[str]:
    return re.findall(r'<th scope="col" class="c-field" data-field="([^"]+)"', page)


# --- Columns --------------------------------------------------------------------------------


def test_chosen_fields_show_as_columns_by_label_with_their_values(instance: SeededApp) -> None:
    client = login(instance, "coordinator")
    page = client.get("/tickets?columns=location,room,serial_number").text
    assert headers(page) == ["location", "room", "serial_number"]
    assert 'title="Lokalizacja">Lokalizacja</span></th>' in page
    assert 'title="Pomieszczenie">Pomieszczenie</span></th>' in page
    row = row_html(page, instance.numbers["key_new"])
    assert re.findall(r'<td class="c-field" data-field="(\w+)">(?:<span[^>]*>([^<]*)</span>)', row)
    assert ">Warszawa</span>" in row and ">A2</span>" in row and ">X200-17</span>" in row
    empty = row_html(page, instance.numbers["beta_open"])
    assert empty.count('<span class="muted">—</span>') >= 3
    english = login(instance, "coordinator", "en").get("/tickets?columns=location,room").text
    assert 'title="Location">Location</span></th>' in english
    assert 'title="Room">Room</span></th>' in english


def test_the_picker_is_a_checkbox_menu_of_the_fields_the_user_may_read(
    instance: SeededApp,
) -> None:
    coordinator = login(instance, "coordinator").get("/tickets?columns=room").text
    picker = coordinator[coordinator.index('data-testid="column-picker"') :]
    picker = picker[: picker.index("</details>")]
    assert "<summary" in picker and '<form class="colpicker-menu" method="get"' in picker
    offered = re.findall(r'type="checkbox" name="columns" value="(\w+)"', picker)
    # The fields the coordinator reads, and the work time (issue 14).
    assert set(offered) == {
        "location",
        "room",
        "outage_cause",
        "serial_number",
        "resolution_code",
        "_worktime",
    }
    assert '<input type="checkbox" name="columns" value="room" checked>' in picker
    assert '<input type="checkbox" name="columns" value="location">' in picker
    # Clients do not read the fields kept from them, nor get them as columns by URL.
    client = login(instance, "client").get("/tickets?columns=outage_cause,location").text
    offered = re.findall(r'type="checkbox" name="columns" value="(\w+)"', client)
    assert "outage_cause" not in offered and "resolution_code" not in offered
    assert "location" in offered
    assert headers(client) == ["location"]


def test_the_choice_is_remembered_per_user_and_the_picker_form_sends_it(
    instance: SeededApp,
) -> None:
    client = login(instance, "technician")
    # The picker's form: a hidden empty ``columns`` and one per ticked box, turned into the
    # list's own URL.
    picked = [("columns", ""), ("columns", "location"), ("columns", "room"), ("state", "all")]
    sent = client.get("/tickets", params=picked, follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == "/tickets?state=all&columns=location%2Croom"
    first = client.get(sent.headers["location"])
    assert headers(first.text) == ["location", "room"]
    assert "list_columns" in first.headers.get("set-cookie", "")
    assert headers(client.get("/tickets").text) == ["location", "room"]
    # Links on the page keep the choice in the URL.
    assert "columns=location%2Croom" in client.get("/tickets").text
    # Another person's choice in the same browser is not theirs.
    other = login(instance, "coordinator")
    other.cookies.set("list_columns", client.cookies.get("list_columns"))
    assert headers(other.get("/tickets").text) == []
    # Unticking everything shows none, and that is remembered too.
    assert headers(client.get("/tickets?columns=").text) == []
    assert headers(client.get("/tickets").text) == []
    # Unknown names are left out; the list still shows.
    page = client.get("/tickets?columns=nope,room")
    assert page.status_code == 200 and headers(page.text) == ["room"]


def test_values_are_formatted_for_reading() -> None:
    pl, en = Translator("pl"), Translator("en")
    assert format_value(True, "bool", pl) == "tak"
    assert format_value(False, "bool", en) == "no"
    assert format_value(["A1", "A2"], "multiselect", en) == "A1, A2"
    assert format_value("2026-11-30", "date", pl) == "30.11.2026"
    assert format_value(12.0, "number", en) == "12"
    assert format_value(None, "text", en) == ""
    assert format_value([], "multiselect", en) == ""


# --- Filtering --------------------------------------------------------------------------------


def test_the_list_filters_by_a_field_like_the_api(instance: SeededApp) -> None:
    client = login(instance, "coordinator")
    page = client.get("/tickets?columns=location,serial_number&field.location=Warszawa").text
    assert numbers(page) == [instance.numbers["key_new"]]
    # The filter form offers a select of the options for a select field, text otherwise.
    assert re.search(r'<select id="ff-location" name="field.location"', page)
    assert "<option selected>Warszawa</option>" in page
    assert re.search(r'<input id="ff-serial_number" name="field.serial_number" type="text"', page)
    # Links keep the filter; a text field filters by its exact value.
    assert "field.location=Warszawa" in page
    by_serial = client.get("/tickets?field.serial_number=X200-17").text
    assert numbers(by_serial) == [instance.numbers["key_new"]]
    # A filtered field shows its filter even when it is not a column.
    assert 'id="ff-serial_number"' in by_serial
    # Forgiving like the other filters: an unknown field is left out, the list still shows.
    unknown = client.get("/tickets?field.nope=1")
    assert unknown.status_code == 200 and len(numbers(unknown.text)) > 1


def test_a_client_cannot_filter_by_a_field_kept_from_them(instance: SeededApp) -> None:
    client = login(instance, "client")
    everything = numbers(client.get("/tickets").text)
    filtered = numbers(client.get("/tickets?field.outage_cause=zasilanie").text)
    assert filtered == everything  # ignored, not a way to learn the hidden value


# --- Checklist progress and missing data --------------------------------------------------------


def test_checklist_progress_shows_for_staff_and_subcontractors(instance: SeededApp) -> None:
    number = instance.numbers["key_subcontractor"]  # an inspection: a three-item checklist
    for role in ("coordinator", "subcontractor"):
        page = login(instance, role).get("/tickets").text
        row = row_html(page, number)
        assert 'class="progress progress-open"' in row
        assert '<span aria-hidden="true">0/3</span>' in row
        assert "Lista kontrolna: zrobione 0 z 3" in row
    english = login(instance, "coordinator", "en").get("/tickets").text
    assert "Checklist: 0 of 3 done" in row_html(english, number)
    # A row without a checklist has an empty cell; clients do not see checklists.
    row = row_html(english, instance.numbers["key_new"])
    assert '<td class="c-check"></td>' in row
    assert 'class="c-check"' not in login(instance, "client").get("/tickets").text


def test_no_progress_column_when_no_ticket_on_the_page_has_a_checklist(
    instance: SeededApp,
) -> None:
    page = login(instance, "coordinator").get("/tickets?contract=BETA-STD").text
    assert numbers(page) and 'class="c-check"' not in page


def test_a_ticket_missing_data_required_on_open_is_marked(instance: SeededApp) -> None:
    """BETA-STD asks for the location on open; its tickets came by mail without one."""
    client = login(instance, "coordinator")
    page = client.get("/tickets?state=all").text
    for name in ("beta_open", "overdue"):
        row = row_html(page, instance.numbers[name])
        assert 'data-testid="missing-data"' in row
        assert 'title="Brakuje danych wymaganych przy zgłoszeniu: Lokalizacja"' in row
        assert ">brak danych<" in row
    for name in ("key_new", "key_assigned"):
        assert 'data-testid="missing-data"' not in row_html(page, instance.numbers[name])
    english = login(instance, "coordinator", "en").get("/tickets").text
    row = row_html(english, instance.numbers["beta_open"])
    assert ">missing data<" in row and 'title="Missing on open: Location"' in row
    # Filled in, the mark goes.
    with instance.factory() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == instance.numbers["beta_waiting"]))
        assert t is not None
        t.custom_fields = {"location": "Poznań"}
        s.commit()
    row = row_html(client.get("/tickets").text, instance.numbers["beta_waiting"])
    assert 'data-testid="missing-data"' not in row


# --- In Chromium at 1280 px ------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    for server in start_live_server(tmp_path_factory.mktemp("list-live")):
        factory = make_session_factory(make_engine(server.settings.database_url))
        with factory() as s:
            values = {
                "key_new": {"location": "Warszawa", "room": "A2", "serial_number": "X200-17"},
                "key_assigned": {"location": "Poznań", "room": "B1", "serial_number": "FS01"},
                "key_subcontractor": {"location": "Warszawa", "room": "A1"},
            }
            for name, fields in values.items():
                t = s.scalar(select(Ticket).where(Ticket.number == server.numbers[name]))
                assert t is not None
                t.custom_fields = fields
            s.commit()
        yield server


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["pl", "en"])
def test_the_list_with_three_field_columns_fits_1280px(
    browser: Any,  # noqa: F811
    live_server: LiveServer,
    tmp_path: Path,
    lang: str,
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    context.add_cookies([{"name": "lang", "value": lang, "url": live_server.base_url}])
    page = context.new_page()
    page.goto(live_server.url("/login?next=/tickets"))
    page.locator("input[name=email]").fill(live_server.users["coordinator"])
    page.locator("input[name=password]").fill(live_server.password)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(live_server.url("/tickets"))
    # Choose the columns with the keyboard: open the menu, tick three boxes, apply.
    picker = page.get_by_test_id("column-picker")
    picker.locator("summary").focus()
    page.keyboard.press("Enter")
    for name in ("location", "room", "serial_number"):
        box = picker.locator(f'input[name=columns][value="{name}"]')
        box.focus()
        page.keyboard.press("Space")
        expect(box).to_be_checked()
    Path("/tmp/shots").mkdir(exist_ok=True)
    page.screenshot(path=f"/tmp/shots/list-picker-{lang}.png")
    picker.locator("button[type=submit]").click()
    # In form order, comma-separated.
    page.wait_for_url(re.compile(r"\?columns=serial_number%2Clocation%2Croom$"))
    table = page.get_by_test_id("tickets")
    expect(table.locator("th.c-field")).to_have_count(3)
    expect(page.get_by_test_id("missing-data").first).to_be_visible()
    expect(page.get_by_test_id("checklist-progress").first).to_be_visible()
    path = tmp_path / f"list-{lang}.png"
    page.screenshot(path=str(path), full_page=True)
    shutil.copyfile(path, f"/tmp/shots/list-{lang}.png")
    # No horizontal scrolling, and the subject keeps room to be read.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    subject = table.locator("td.c-subj").first.bounding_box()
    assert subject is not None and subject["width"] >= 200, subject
    for cell in table.locator("th.c-field").all():
        box = cell.bounding_box()
        assert box is not None and box["width"] <= 140, box
    context.close()
