"""Ticket forms in a real browser (issue 12): the dependent pair changes live as the location
changes, the checklist is ticked by keyboard and by mouse and closing waits for it, and a client
opening a ticket in the portal is asked for the field its contract requires on open.
Screenshots of each form go to /tmp/shots/forms-*.png for people reviewing the look."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.test_console_browser import login

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pl-PL")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    refused: list[str] = []
    pg.on(
        "console",
        lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert refused == [], f"the page broke its Content-Security-Policy: {refused}"
    assert errors == [], f"the page's scripts failed: {errors}"


def shot(page: Page, name: str, *, full: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"forms-{name}.png"), full_page=full)


def in_english(page: Page, server: LiveServer, english: bool = True) -> None:
    lang = "en" if english else "pl"
    page.context.add_cookies([{"name": "lang", "value": lang, "url": server.base_url}])
    page.reload()


def options(page: Page, label: str) -> list[str]:
    return page.get_by_label(label, exact=True).locator("option").all_inner_texts()


def test_a_technician_fills_the_dependent_pair_live(page: Page, live_server: LiveServer) -> None:
    number = live_server.numbers["key_assigned"]
    login(page, live_server, "technician", start=f"/tickets/{number}")
    form = page.get_by_test_id("fields-form")
    room = form.get_by_label("Pomieszczenie")
    cause = page.get_by_test_id("field-outage_cause")
    # Before a location: the room waits (disabled, saying why), the cause does not exist.
    expect(room).to_be_disabled()
    expect(page.get_by_test_id("field-room")).to_contain_text("Najpierw wybierz lokalizację")
    expect(cause).to_be_hidden()
    page.evaluate("window.notReloaded = true")

    form.get_by_label("Lokalizacja").select_option("Warszawa")
    expect(room).to_be_enabled()
    assert room.locator("option").all_inner_texts() == ["—", "A1", "A2"]
    expect(cause).to_be_visible()
    room.select_option("A2")

    form.get_by_label("Lokalizacja").select_option("Poznań")
    assert room.locator("option").all_inner_texts() == ["—", "B1"]
    expect(room).to_have_value("")  # A2 is no room of Poznań: cleared
    expect(cause).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True  # all of it without a reload

    form.get_by_label("Lokalizacja").select_option("Warszawa")
    room.select_option("A1")
    form.get_by_label("Przyczyna awarii").fill("Zalanie serwerowni")
    shot(page, "ticket-technician-pl")
    form.get_by_role("button", name="Zapisz pola").click()
    expect(page.get_by_test_id("flash")).to_have_text("Zapisano pola.")
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("Lokalizacja — → Warszawa")
    expect(timeline).to_contain_text("Pomieszczenie — → A1")
    expect(form.get_by_label("Pomieszczenie")).to_have_value("A1")

    # The location changes again: the saved room and cause are cleared and the timeline says why.
    form.get_by_label("Lokalizacja").select_option("Poznań")
    form.get_by_role("button", name="Zapisz pola").click()
    expect(timeline).to_contain_text(
        "Pomieszczenie A1 → — (wyczyszczone, bo zmieniło się pole Lokalizacja)"
    )
    in_english(page, live_server)
    expect(page.get_by_test_id("timeline")).to_contain_text(
        "Room A1 → — (cleared because Location changed)"
    )
    shot(page, "ticket-technician-en")
    in_english(page, live_server, english=False)


def test_a_technician_ticks_the_checklist_and_cannot_close_before_it_is_done(
    page: Page, live_server: LiveServer
) -> None:
    number = live_server.numbers["key_subcontractor"]
    login(page, live_server, "technician2", start=f"/tickets/{number}")
    checklist = page.get_by_test_id("checklist")
    expect(page.get_by_test_id("checklist-progress")).to_have_text("0/3")
    # With scripts on, the checkbox is the control: no extra buttons.
    expect(checklist.get_by_role("button", name="Odhacz")).to_have_count(0)
    page.get_by_test_id("fields-form").get_by_label("Resolution code").select_option("fixed")
    page.get_by_role("button", name="Zapisz pola").click()
    expect(page.get_by_test_id("flash")).to_have_text("Zapisano pola.")

    # By keyboard: focus and Space; the page comes back with the item ticked and focused.
    toner = checklist.get_by_label("Sprawdzić toner")
    toner.focus()
    page.keyboard.press("Space")
    expect(page.get_by_test_id("checklist-progress")).to_have_text("1/3")
    toner = page.get_by_test_id("checklist").get_by_label("Sprawdzić toner")
    expect(toner).to_be_checked()
    expect(toner).to_be_focused()
    expect(page.get_by_test_id("checklist-item").first).to_contain_text("Kasia Serwis")

    # By mouse: a click on the item's text.
    page.get_by_test_id("checklist").get_by_text("Wyczyścić rolki").click()
    expect(page.get_by_test_id("checklist-progress")).to_have_text("2/3")
    expect(page.get_by_test_id("timeline")).to_contain_text("odhaczono: Wyczyścić rolki")
    shot(page, "ticket-checklist-pl")

    # Closing with the third required item unticked is refused, naming it.
    page.locator("#new-status").select_option("Resolved")
    page.get_by_role("button", name="Zmień", exact=True).click()
    error = page.get_by_test_id("form-error")
    expect(error).to_contain_text("Wydruk testowy")
    expect(error).to_contain_text("nie można zamknąć")
    in_english(page, live_server)
    shot(page, "ticket-checklist-en")
    in_english(page, live_server, english=False)


def test_a_client_opening_a_ticket_is_asked_for_the_location(
    page: Page, live_server: LiveServer
) -> None:
    login(page, live_server, "beta", start="/tickets/new")
    # One set of fields per choice of the contract select; the chosen one shows.
    fields = page.locator("[data-fields-for]:visible")
    expect(fields).to_have_count(1)
    location = fields.get_by_label("Lokalizacja")
    expect(location).to_have_attribute("required", "")
    expect(page.get_by_text("Przyczyna awarii")).to_have_count(0)  # kept from clients
    page.get_by_label("Temat").fill("Nie działa drukarka w recepcji")
    page.get_by_label("Opis").fill("Od rana pokazuje błąd papieru.")
    shot(page, "new-client-pl")
    # The browser asks first (required); past it, the server's sentence comes back with the text.
    page.get_by_role("button", name="Utwórz zgłoszenie").click()
    assert location.evaluate("el => el.matches(':invalid')")
    expect(page).to_have_url(live_server.url("/tickets/new"))
    location.evaluate("el => el.removeAttribute('required')")
    page.get_by_role("button", name="Utwórz zgłoszenie").click()
    expect(page.get_by_test_id("form-error")).to_have_text(
        "aby otworzyć zgłoszenie, uzupełnij: Lokalizacja"
    )
    expect(page.get_by_label("Temat")).to_have_value("Nie działa drukarka w recepcji")
    shot(page, "new-client-refused-pl")
    page.locator("[data-fields-for]:visible").get_by_label("Lokalizacja").select_option("Poznań")
    page.get_by_role("button", name="Utwórz zgłoszenie").click()
    expect(page.get_by_test_id("flash")).to_have_text(re.compile(r"Utworzono zgłoszenie #\d+\."))
    expect(page.get_by_test_id("custom-fields")).to_contain_text("Poznań")
    shot(page, "ticket-client-pl")
    in_english(page, live_server)
    shot(page, "ticket-client-en")
    page.goto(live_server.url("/tickets/new"))
    shot(page, "new-client-en")
    in_english(page, live_server, english=False)


def test_staff_see_the_chosen_contracts_fields_on_the_new_ticket_form(
    page: Page, live_server: LiveServer
) -> None:
    login(page, live_server, "technician", start="/tickets/new")
    sets = page.get_by_test_id("new-fields")
    page.get_by_label("Umowa").select_option("ACME-KEY")
    expect(page.locator('[data-fields-for="ACME-KEY"]')).to_be_visible()
    expect(page.locator('[data-fields-for="BETA-STD"]')).to_be_hidden()
    page.get_by_label("Umowa").select_option("BETA-STD")
    visible = page.locator('[data-fields-for="BETA-STD"]')
    expect(visible).to_be_visible()
    expect(visible.get_by_label("Lokalizacja")).to_have_attribute("required", "")
    visible.get_by_label("Lokalizacja").select_option("Warszawa")
    assert visible.get_by_label("Pomieszczenie").locator("option").all_inner_texts() == [
        "—",
        "A1",
        "A2",
    ]
    assert sets.count() >= 2
    shot(page, "new-technician-pl")
    in_english(page, live_server)
    page.get_by_label("Contract").select_option("BETA-STD")
    shot(page, "new-technician-en")
    in_english(page, live_server, english=False)


def test_the_type_change_asks_about_the_new_types_checklist(
    page: Page, live_server: LiveServer
) -> None:
    number = live_server.numbers["key_new"]
    login(page, live_server, "coordinator", start=f"/tickets/{number}")
    form = page.get_by_test_id("contract-form")
    prompt = page.get_by_test_id("checklist-prompt")
    expect(prompt).to_be_hidden()  # the current type, failure, has no checklist
    form.get_by_label("Typ", exact=True).select_option("inspection")
    expect(prompt).to_be_visible()
    expect(prompt).to_have_text("Dodać 3 punkty listy kontrolnej typu inspection?")
    expect(prompt.get_by_role("checkbox")).to_be_checked()
    form.screenshot(path=str(SHOTS / "forms-type-change-pl.png"))
    form.get_by_role("button", name="Zapisz").click()
    expect(page.get_by_test_id("checklist-progress")).to_have_text("0/3")
    expect(page.get_by_test_id("timeline")).to_contain_text("Typ failure → inspection")
