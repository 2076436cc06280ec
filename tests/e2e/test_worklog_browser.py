"""The work log card in Chromium (issue 14): a technician logs 45 minutes as a start and an
end (with the keyboard), sees the totals, changes and then deletes the entry; starts the timer,
reloads the page (the timer keeps counting from the server's start), and stops it into an
entry. Screenshots of the card in Polish and English at 1280 px go to /tmp/shots/worklog-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer

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
    yield pg
    context.close()
    assert refused == [], f"the page broke its Content-Security-Policy: {refused}"


def login(page: Page, server: LiveServer, role: str, start: str) -> None:
    page.goto(server.url(start))
    page.get_by_label("E-mail").fill(server.users[role])
    page.get_by_label("Hasło").fill(server.password)
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(server.url(start))
    page.wait_for_load_state()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#worklog").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"worklog-{name}.png"), full_page=True)


def test_technician_logs_edits_deletes_and_times_work(page: Page, live_server: LiveServer) -> None:
    number = live_server.numbers["key_assigned"]  # the seed logged 25 minutes on it
    login(page, live_server, "technician", f"/tickets/{number}")
    card = page.get_by_test_id("worklog")
    expect(card.get_by_test_id("total-all")).to_have_text("25m")

    # Start and end: the minutes' fields give way to the two times (worklog.js).
    expect(page.locator("#wl-start")).to_be_hidden()
    page.locator('label[for="wl-mode-span"]').click()
    expect(page.locator("#wl-minutes")).to_be_hidden()
    page.locator("#wl-start").fill("2026-03-02T09:00")
    page.locator("#wl-end").fill("2026-03-02T09:45")
    page.locator("#wl-description").fill("Wymiana bębna")
    page.locator("#wl-description").press("Enter")  # the keyboard submits the entry
    expect(page.get_by_test_id("flash")).to_contain_text("45")
    expect(card.get_by_test_id("total-all")).to_have_text("1h 10m")
    expect(card.get_by_test_id("total-billable")).to_have_text("1h 10m")
    entry = card.get_by_test_id("worklog-entry").filter(has_text="Wymiana bębna")
    expect(entry.get_by_test_id("entry-duration")).to_have_text("45m")

    # Change it on its own page: ten more minutes, not billable.
    entry.get_by_test_id("entry-edit").click()
    expect(page.locator("#wle-end")).to_have_value("2026-03-02T09:45")
    page.locator("#wle-end").fill("2026-03-02T09:55")
    page.locator("input[data-wl-billable]").uncheck()
    page.get_by_test_id("wle-save").click()
    expect(card.get_by_test_id("total-all")).to_have_text("1h 20m")
    expect(card.get_by_test_id("total-nonbillable")).to_have_text("55m")
    expect(page.locator('[data-testid="worklog-event"][data-action="changed"]')).to_have_count(1)
    shot(page, "pl")

    # Delete it (the browser asks first).
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_test_id("worklog-entry").filter(has_text="Wymiana bębna").get_by_test_id(
        "entry-delete"
    ).click()
    expect(card.get_by_test_id("total-all")).to_have_text("25m")
    expect(page.locator('[data-testid="worklog-event"][data-action="deleted"]')).to_have_count(1)

    # The timer: started on the server, it counts up and survives a reload.
    page.get_by_test_id("timer-start").click()
    elapsed = page.locator(".wl-elapsed")
    expect(elapsed).to_have_text(re.compile(r"^0:00:\d\d$"))
    page.reload()
    expect(page.get_by_test_id("timer-running")).to_be_visible()
    expect(elapsed).to_have_text(re.compile(r"^0:0\d:\d\d$"))
    page.locator("#wl-description").fill("Telefon do klienta")
    page.get_by_test_id("timer-stop").click()
    expect(page.get_by_test_id("timer-start")).to_be_visible()
    expect(card.get_by_test_id("total-all")).to_have_text("26m")
    expect(
        card.get_by_test_id("worklog-entry").filter(has_text="Telefon do klienta")
    ).to_have_count(1)

    # The card in English, with a timer running. The click posts a form: wait for
    # its page before reloading, or the reload races the navigation.
    page.get_by_test_id("timer-start").click()
    expect(page.get_by_test_id("timer-running")).to_be_visible()
    page.context.add_cookies([{"name": "lang", "value": "en", "url": live_server.url("/")}])
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(card.get_by_role("heading", name="Work log")).to_be_visible()
    shot(page, "en")
    page.get_by_test_id("timer-cancel").click()
    expect(page.get_by_test_id("timer-start")).to_be_visible()
