"""Replying faster in Chromium (issue 15): a technician saves a canned reply with placeholders
and inserts it by typing "::" and a few letters (keyboard only, accent-insensitive), filled for
the ticket; a coordinator applies a macro in one click; a draft survives a reload and goes
once sent; a comment written while someone else changed the ticket is held back with a
warning and sent on "send anyway". Screenshots at 1280 px in Polish and English go to
/tmp/shots/replies-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")


def new_page(browser: Browser, refused: list[str]) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pl-PL")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    pg.on(
        "console",
        lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return context, pg


@pytest.fixture
def refused() -> Iterator[list[str]]:
    found: list[str] = []
    yield found
    assert found == [], f"the page broke its Content-Security-Policy: {found}"


@pytest.fixture
def page(browser: Browser, refused: list[str]) -> Iterator[Page]:
    context, pg = new_page(browser, refused)
    yield pg
    context.close()


def login(page: Page, server: LiveServer, role: str, start: str) -> None:
    page.goto(server.url(start))
    page.get_by_label("E-mail").fill(server.users[role])
    page.get_by_label("Hasło").fill(server.password)
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(server.url(start))
    page.wait_for_load_state()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"replies-{name}.png"), full_page=False)


def english(page: Page, server: LiveServer) -> None:
    page.context.add_cookies([{"name": "lang", "value": "en", "url": server.url("/")}])
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_a_canned_reply_inserts_with_its_placeholders_filled(
    page: Page, live_server: LiveServer
) -> None:
    login(page, live_server, "technician", "/profile")
    page.get_by_test_id("replies-link").click()
    expect(page).to_have_url(live_server.url("/profile/replies"))
    form = page.get_by_test_id("reply-form")
    form.get_by_label("Skrót").fill("podz")
    form.get_by_label("Tytuł").fill("Podziękowanie za zgłoszenie")
    # An unknown placeholder is refused with a sentence naming it, keeping what was typed.
    form.get_by_label("Treść").fill("Dzień dobry {{ requester.imie }}")
    page.get_by_test_id("reply-save").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("{{ requester.imie }}")
    expect(form.get_by_label("Tytuł")).to_have_value("Podziękowanie za zgłoszenie")
    form.get_by_label("Treść").fill(
        "Dzień dobry {{ requester.name }},\n"
        "dziękujemy za zgłoszenie #{{ ticket.number }} ({{ contract.code }}).\n"
        "{{ me.name }}"
    )
    page.get_by_test_id("reply-save").click()
    expect(page.get_by_test_id("flash")).to_contain_text("::podz")
    expect(page.get_by_test_id("reply-row")).to_have_count(1)
    shot(page, "manage-pl")

    number = live_server.numbers["key_assigned"]
    page.goto(live_server.url(f"/tickets/{number}"))
    box = page.locator("#comment-body")
    box.click()
    box.press_sequentially("Uwaga: ::DZIEK")  # the title's "dzięk", any case, no accents
    listbox = page.get_by_role("listbox")
    expect(listbox).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    option = listbox.get_by_role("option")
    expect(option).to_have_count(1)
    expect(option.first).to_have_attribute("aria-selected", "true")
    expect(option.first).to_contain_text("Podziękowanie za zgłoszenie")
    shot(page, "canned-pl")
    box.press("Enter")
    expect(listbox).to_be_hidden()
    expect(box).to_have_value(
        "Uwaga: Dzień dobry Piotr Wiśniewski,\n"
        f"dziękujemy za zgłoszenie #{number} (ACME-KEY).\n"
        "Tomasz Technik"
    )
    # Esc closes the list and keeps the letters typed.
    box.press_sequentially(" ::zzz")
    expect(listbox).to_be_visible()
    expect(listbox).to_contain_text("Żadna gotowa odpowiedź nie pasuje.")
    box.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_value(re.compile(r"Tomasz Technik ::zzz$"))
    for _ in range(6):
        box.press("Backspace")
    page.get_by_test_id("comment-submit").click()
    expect(page.get_by_test_id("flash")).to_be_visible()
    expect(page.get_by_test_id("timeline")).to_contain_text(
        f"dziękujemy za zgłoszenie #{number} (ACME-KEY)."
    )

    english(page, live_server)
    box = page.locator("#comment-body")
    box.click()
    box.press_sequentially("::po")
    expect(page.get_by_role("listbox")).to_be_visible()
    shot(page, "canned-en")
    box.press("Tab")  # Tab inserts too
    expect(box).to_have_value(re.compile(r"^Dzień dobry Piotr Wiśniewski"))
    page.goto(live_server.url("/profile/replies"))
    shot(page, "manage-en")


def test_a_macro_applies_in_one_click(page: Page, live_server: LiveServer) -> None:
    login(page, live_server, "coordinator", "/profile/replies")
    form = page.get_by_test_id("macro-form")
    form.get_by_label("Nazwa makra").fill("Eskaluj")
    form.get_by_label("Odpowiedź (opcjonalna, z polami do wstawienia)").fill(
        "Przekazane dalej: #{{ ticket.number }}."
    )
    form.locator('label[for="mc-internal"]').click()
    form.get_by_label("Status").select_option("Escalated")
    form.get_by_label("Przypisane do").select_option("me")
    form.scroll_into_view_if_needed()
    shot(page, "macro-form-pl")
    page.get_by_test_id("macro-save").click()
    expect(page.get_by_test_id("flash")).to_contain_text("Eskaluj")

    number = live_server.numbers["key_new"]
    page.goto(live_server.url(f"/tickets/{number}"))
    bar = page.get_by_test_id("macros-bar")
    expect(bar).to_be_visible()
    shot(page, "macros-pl")
    bar.get_by_role("button", name="Eskaluj").click()
    expect(page.get_by_test_id("flash")).to_contain_text("Zastosowano makro Eskaluj.")
    expect(page.get_by_test_id("ticket-head")).to_contain_text("Escalated")
    expect(page.get_by_test_id("fields")).to_contain_text("Ola Koordynator")
    expect(page.get_by_test_id("timeline")).to_contain_text(f"Przekazane dalej: #{number}.")


def test_a_draft_survives_a_reload_and_goes_once_sent(page: Page, live_server: LiveServer) -> None:
    number = live_server.numbers["key_assigned"]
    login(page, live_server, "technician", f"/tickets/{number}")
    box = page.locator("#comment-body")
    box.fill("Szkic odpowiedzi, jeszcze niegotowy")
    page.wait_for_timeout(500)  # saved after a short pause in typing
    page.reload()
    expect(box).to_have_value("Szkic odpowiedzi, jeszcze niegotowy")
    note = page.get_by_test_id("draft-restored")
    expect(note).to_be_visible()
    shot(page, "draft-pl")
    page.get_by_test_id("draft-discard").click()
    expect(box).to_have_value("")
    page.reload()
    expect(box).to_have_value("")
    expect(note).to_be_hidden()

    box.fill("Ta odpowiedź idzie do klienta")
    page.wait_for_timeout(500)
    page.get_by_test_id("comment-submit").click()
    expect(page.get_by_test_id("flash")).to_be_visible()
    page.reload()
    expect(box).to_have_value("")
    expect(note).to_be_hidden()


def test_a_warning_when_someone_else_changed_the_ticket_while_writing(
    page: Page, browser: Browser, live_server: LiveServer, refused: list[str]
) -> None:
    number = live_server.numbers["key_assigned"]
    page.clock.install()  # the page's 30-second check, fast-forwarded below
    login(page, live_server, "technician", f"/tickets/{number}")
    box = page.locator("#comment-body")
    box.fill("Wymienię dysk jutro rano.")

    context, other = new_page(browser, refused)
    login(other, live_server, "coordinator", f"/tickets/{number}")
    other.locator('label[for="vis-internal"]').click()
    other.locator("#comment-body").fill("Klient prosi o telefon przed wizytą.")
    other.get_by_test_id("comment-submit").click()
    expect(other.get_by_test_id("flash")).to_be_visible()
    context.close()

    # Within 30 seconds the page says so above the box, before anything is sent.
    page.clock.run_for(31_000)
    banner = page.get_by_test_id("reply-changed")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Ola Koordynator, notatka wewnętrzna")
    page.get_by_test_id("comment-submit").click()
    warning = page.get_by_test_id("reply-conflict")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(f"Zgłoszenie #{number} zmieniło się w trakcie pisania:")
    expect(warning).to_contain_text("Ola Koordynator, notatka wewnętrzna")
    expect(box).to_have_value("Wymienię dysk jutro rano.")
    expect(page.get_by_test_id("timeline")).to_contain_text("Klient prosi o telefon przed wizytą.")
    warning.scroll_into_view_if_needed()
    shot(page, "conflict-pl")
    page.get_by_test_id("send-anyway").click()
    expect(page.get_by_test_id("flash")).to_be_visible()
    expect(page.get_by_test_id("timeline")).to_contain_text("Wymienię dysk jutro rano.")
    expect(page.get_by_test_id("reply-conflict")).to_have_count(0)
    expect(box).to_have_value("")
