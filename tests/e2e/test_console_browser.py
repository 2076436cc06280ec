"""The console in a real browser (Chromium through Playwright) against a live server.

The tests run in file order on one seeded instance (``live_server`` is module-scoped), as a
coordinator's morning would: log in, scan the list, change statuses in bulk, read a ticket,
answer it; then a client looks at the same tickets from the portal. Each test has its own
browser context (its own cookies). Browsers speak Polish here (the product's default).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser

KEY_TICKETS = {"key_new", "key_assigned", "key_subcontractor", "client_web"}
OPEN_TICKETS = KEY_TICKETS | {"overdue", "beta_open", "beta_waiting", "triage"}


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="pl-PL")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    # Every flow here runs under the console's Content-Security-Policy (web/security.py):
    # anything it refuses (an inline script, a style attribute) shows up on the console.
    refused: list[str] = []
    pg.on(
        "console",
        lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield pg
    context.close()
    assert refused == [], f"the page broke its Content-Security-Policy: {refused}"


def login(page: Page, server: LiveServer, role: str, start: str = "/tickets") -> None:
    """Log in through the real form, starting from a page that needs a login."""
    page.goto(server.url(start))
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("E-mail").fill(server.users[role])
    page.get_by_label("Hasło").fill(server.password)
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(server.url(start))
    page.wait_for_load_state()  # pulpit.js is deferred; shortcuts work once it has run


def row(page: Page, number: int) -> Any:
    return page.locator(f'tr[data-number="{number}"]')


def shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shutil.copyfile(path, f"/tmp/{name}.png")  # for people reviewing the look


def test_coordinator_logs_in_through_the_form(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url("/tickets"))
    page.get_by_label("E-mail").fill(live_server.users["coordinator"])
    page.get_by_label("Hasło").fill("not the password")
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("Błędny e-mail lub hasło")
    page.get_by_label("Hasło").fill(live_server.password)
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(live_server.url("/tickets"))
    expect(page.get_by_test_id("whoami")).to_contain_text("Ola Koordynator")
    expect(page.get_by_test_id("whoami")).to_contain_text("Koordynator")


def test_list_marks_key_contracts_and_overdue_tickets(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    login(page, live_server, "coordinator")
    n = live_server.numbers
    expect(page.get_by_test_id("ticket-row")).to_have_count(len(OPEN_TICKETS))
    for name in OPEN_TICKETS:
        r = row(page, n[name])
        key_badge = r.get_by_test_id("key-badge")
        overdue_badge = r.get_by_test_id("overdue-badge")
        if name in KEY_TICKETS:
            expect(key_badge).to_have_text(re.compile("Kluczowy", re.I))
            expect(r).to_have_class(re.compile(r"\bkey-contract\b"))
        else:
            expect(key_badge).to_have_count(0)
            expect(r).not_to_have_class(re.compile(r"\bkey-contract\b"))
        if name == "overdue":
            expect(overdue_badge).to_have_text(re.compile("Po terminie", re.I))
            expect(r).to_have_class(re.compile(r"\boverdue\b"))
            # How long ago, and the word: never a signed "-0m" (issue 15).
            expect(r.locator(".sla-late").first).to_contain_text("po terminie")
            expect(r.locator(".sla-late").first).not_to_contain_text("-")
        else:
            expect(overdue_badge).to_have_count(0)
            expect(r).not_to_have_class(re.compile(r"\boverdue\b"))
    # The overdue filter narrows the list to exactly that ticket.
    page.get_by_label("tylko po terminie").check()
    expect(page.get_by_test_id("ticket-row")).to_have_count(1)
    expect(row(page, n["overdue"])).to_be_visible()
    page.goto(live_server.url("/tickets"))
    shot(page, tmp_path, "pulpit-list")


def test_bulk_status_change_of_two_tickets(page: Page, live_server: LiveServer) -> None:
    login(page, live_server, "coordinator")
    n = live_server.numbers
    for name in ("beta_open", "beta_waiting"):
        row(page, n[name]).locator('input[name="numbers"]').check()
    expect(page.locator("[data-bulk-n]")).to_have_text("2")
    page.get_by_label("Ustaw status").select_option("In progress")
    page.get_by_role("button", name="Zastosuj do zaznaczonych").click()
    # Polish has three plural forms: 2 takes "zgłoszenia" (1: zgłoszenie, 5: zgłoszeń).
    expect(page.get_by_test_id("flash")).to_have_text("Zmieniono 2 zgłoszenia na In progress.")
    for name in ("beta_open", "beta_waiting"):
        expect(row(page, n[name]).get_by_test_id("status")).to_have_text("In progress")
    expect(row(page, n["key_new"]).get_by_test_id("status")).to_have_text("New")


def test_bulk_change_is_all_or_nothing(page: Page, live_server: LiveServer) -> None:
    login(page, live_server, "coordinator")
    n = live_server.numbers
    page.get_by_label("Zaznacz wszystkie zgłoszenia na tej stronie").check()
    expect(page.locator("[data-bulk-n]")).to_have_text(str(len(OPEN_TICKETS)))
    page.get_by_label("Zaznacz wszystkie zgłoszenia na tej stronie").uncheck()
    row(page, n["key_new"]).locator('input[name="numbers"]').check()
    row(page, n["beta_open"]).locator('input[name="numbers"]').check()
    # "Escalated" exists on the key contract only: the Beta ticket cannot take it.
    page.get_by_label("Ustaw status").select_option("Escalated")
    page.get_by_role("button", name="Zastosuj do zaznaczonych").click()
    error = page.get_by_test_id("bulk-error")
    expect(error).to_contain_text("Niczego nie zmieniono.")
    reasons = error.get_by_test_id("bulk-reason")
    expect(reasons).to_have_count(1)
    expect(reasons.first).to_have_attribute("data-number", str(n["beta_open"]))
    expect(reasons.first).to_contain_text("Escalated")
    expect(reasons.first).to_contain_text("BETA-STD")
    # Nothing changed, and the two rows are still ticked for a second try.
    expect(row(page, n["key_new"]).get_by_test_id("status")).to_have_text("New")
    expect(row(page, n["key_new"]).locator('input[name="numbers"]')).to_be_checked()
    page.goto(live_server.url("/tickets"))
    expect(row(page, n["key_new"]).get_by_test_id("status")).to_have_text("New")


def test_detail_shows_the_timeline_in_order_with_the_internal_note_marked(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    number = live_server.numbers["key_assigned"]
    login(page, live_server, "coordinator", f"/tickets/{number}")
    expect(page.get_by_test_id("subject")).to_have_text("Serwer plików nie odpowiada")
    events = page.get_by_test_id("event")
    types = [events.nth(i).get_attribute("data-type") for i in range(events.count())]
    assert types == ["email_in", "assignment", "status", "comment", "note", "worklog"]
    times = page.locator('[data-testid="event"] time').evaluate_all(
        "els => els.map(e => e.getAttribute('datetime'))"
    )
    assert times == sorted(times)
    note = page.locator('[data-testid="event"][data-type="note"]')
    expect(note).to_have_class(re.compile(r"\bevent-internal\b"))
    expect(note.get_by_test_id("internal-badge")).to_have_text(
        re.compile("Notatka wewnętrzna", re.I)
    )
    comment = page.locator('[data-testid="event"][data-type="comment"]')
    expect(comment.get_by_test_id("internal-badge")).to_have_count(0)
    expect(comment.get_by_test_id("attachment")).to_have_text(re.compile("instrukcja.txt"))
    expect(page.get_by_test_id("ticket-head").get_by_test_id("key-badge")).to_be_visible()
    shot(page, tmp_path, "pulpit-detail")


def test_a_comment_added_on_the_detail_appears_on_the_timeline(
    page: Page, live_server: LiveServer
) -> None:
    number = live_server.numbers["key_assigned"]
    login(page, live_server, "coordinator", f"/tickets/{number}")
    before = page.get_by_test_id("event").count()
    page.keyboard.press("c")  # the shortcut puts the cursor in the comment box
    expect(page.get_by_label("Komentarz", exact=True)).to_be_focused()
    page.keyboard.type("Serwer działa, proszę sprawdzić.")
    page.locator('input[name="files"]').set_input_files(
        files=[{"name": "raport.txt", "mimeType": "text/plain", "buffer": b"OK\n"}]
    )
    page.get_by_test_id("comment-submit").click()
    expect(page.get_by_test_id("flash")).to_have_text("Dodano komentarz.")
    events = page.get_by_test_id("event")
    expect(events).to_have_count(before + 1)
    last = events.last
    expect(last).to_have_attribute("data-type", "comment")
    expect(last).to_have_attribute("data-public", "true")
    expect(last).to_contain_text("Serwer działa, proszę sprawdzić.")
    expect(last.get_by_test_id("attachment")).to_have_text(re.compile("raport.txt"))
    # An internal note, chosen with the radio, lands marked as internal.
    page.locator('label[for="vis-internal"]').click()  # the radio is styled as a button
    expect(page.get_by_label("Notatka wewnętrzna")).to_be_checked()
    page.get_by_label("Komentarz", exact=True).fill("Tylko dla nas.")
    page.get_by_label("Komentarz", exact=True).press("Control+Enter")
    expect(page.get_by_test_id("flash")).to_have_text("Dodano notatkę wewnętrzną.")
    expect(events.last).to_have_attribute("data-type", "note")


def test_a_client_sees_neither_internal_notes_nor_other_clients_tickets(
    page: Page, live_server: LiveServer
) -> None:
    n = live_server.numbers
    login(page, live_server, "client2")  # Piotr (Acme): requested key_assigned and closed
    expect(page.get_by_test_id("ticket-row")).to_have_count(1)
    expect(row(page, n["key_assigned"])).to_be_visible()
    expect(page.get_by_test_id("key-badge")).to_have_count(0)  # our priorities stay ours
    expect(page.locator('input[name="numbers"]')).to_have_count(0)  # no bulk bar
    page.goto(live_server.url("/tickets?state=all"))
    expect(page.get_by_test_id("ticket-row")).to_have_count(2)

    page.goto(live_server.url(f"/tickets/{n['key_assigned']}"))
    expect(page.get_by_test_id("timeline")).to_contain_text("Sprawdzamy serwer")
    expect(page.get_by_test_id("timeline")).to_contain_text("Serwer działa")
    expect(page.get_by_test_id("timeline")).not_to_contain_text("eskalować do producenta")
    expect(page.get_by_test_id("timeline")).not_to_contain_text("Tylko dla nas")
    expect(page.get_by_test_id("internal-badge")).to_have_count(0)
    expect(page.locator('[data-type="note"]')).to_have_count(0)
    expect(page.locator("#vis-internal")).to_have_count(0)  # no internal note option
    expect(page.get_by_test_id("assign-form")).to_have_count(0)

    for other in ("beta_open", "key_new"):  # another client's, and a colleague's
        response = page.goto(live_server.url(f"/tickets/{n[other]}"))
        assert response is not None and response.status == 404
        expect(page.get_by_test_id("error")).to_contain_text("Nie znaleziono")

    page.get_by_role("button", name="Wyloguj").click()
    expect(page).to_have_url(live_server.url("/login"))


def test_keyboard_moves_through_the_list_and_back(page: Page, live_server: LiveServer) -> None:
    login(page, live_server, "coordinator")
    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    first = page.get_by_test_id("ticket-row").first
    expect(first).to_have_class(re.compile(r"\bcurrent\b"))
    number = first.get_attribute("data-number")
    page.keyboard.press("Enter")
    expect(page).to_have_url(live_server.url(f"/tickets/{number}"))
    page.wait_for_load_state()
    page.keyboard.press("g")
    page.keyboard.press("l")
    expect(page).to_have_url(live_server.url("/tickets"))
    page.wait_for_load_state()
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts")).to_be_hidden()


def test_two_step_login_is_set_up_from_the_profile_and_asked_at_the_next_login(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    # Last in the file and technician2 only: later logins of this user need a code.
    login(page, live_server, "technician2")
    page.get_by_role("link", name="Kasia Serwis").click()
    expect(page.get_by_test_id("two-step-summary")).to_contain_text("wyłączone")
    page.get_by_role("link", name="Włącz").click()
    expect(page.get_by_test_id("two-step-qr").locator("svg")).to_be_visible()
    secret = page.locator("input[name=secret]").get_attribute("value")
    assert secret and secret.replace(" ", "") in (
        page.get_by_test_id("two-step-secret").inner_text().replace(" ", "")
    )
    moment = time.time()
    form = page.get_by_test_id("two-step-enable")
    form.get_by_label("Kod z aplikacji uwierzytelniającej").fill(pyotp.TOTP(secret).at(moment))
    form.get_by_label("Hasło").fill(live_server.password)
    shot(page, tmp_path, "console-two-step")
    form.get_by_role("button", name="Włącz logowanie dwuetapowe").click()
    # The recovery codes are shown once, then back to the profile.
    expect(page.get_by_role("main")).to_contain_text("od teraz konsola poprosi o kod")
    page.get_by_role("link", name="Zapisałem je").click()
    expect(page).to_have_url(live_server.url("/profile"))
    page.get_by_role("button", name="Wyloguj").click()
    expect(page.get_by_label("Hasło")).to_be_visible()  # signed out before leaving

    page.goto(live_server.url("/tickets"))
    page.get_by_label("E-mail").fill(live_server.users["technician2"])
    page.get_by_label("Hasło").fill(live_server.password)
    page.get_by_role("button", name="Zaloguj się").click()
    # The right password leads to a second step asking only for the code.
    expect(page.get_by_test_id("login-code-form")).to_be_visible()
    expect(page.get_by_test_id("login-account")).to_contain_text(live_server.users["technician2"])
    page.get_by_label(re.compile("Kod z aplikacji")).fill(pyotp.TOTP(secret).at(moment + 30))
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(live_server.url("/tickets"))
