"""The people pages and the audit log in a real browser (Chromium through Playwright), in
Polish and English at 1280 px, with screenshots of each page (copied to /tmp for review):
an administrator finds a person, opens their page, downloads their data, erases them after
typing their address, and reads the audit log."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser

LABELS = {
    "pl": {
        "password": "Hasło",
        "login": "Zaloguj się",
        "people": "Osoby",
        "audit": "Dziennik zdarzeń",
    },
    "en": {"password": "Password", "login": "Log in", "people": "People", "audit": "Audit log"},
}


def open_page(browser: Browser, server: LiveServer, lang: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="pl-PL")
    context.set_default_timeout(10_000)
    context.add_cookies([{"name": "lang", "value": lang, "url": server.base_url}])
    return context.new_page()


def login(page: Page, server: LiveServer, lang: str, role: str = "admin") -> None:
    page.goto(server.url("/people"))
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("E-mail").fill(server.users[role])
    page.get_by_label(LABELS[lang]["password"]).fill(server.password)
    page.get_by_role("button", name=LABELS[lang]["login"]).click()


def shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shutil.copyfile(path, f"/tmp/{name}.png")


@pytest.mark.parametrize("lang", ["pl", "en"])
def test_an_admin_finds_a_person_exports_and_reads_the_audit_log(
    browser: Browser, live_server: LiveServer, tmp_path: Path, lang: str
) -> None:
    page = open_page(browser, live_server, lang)
    login(page, live_server, lang)
    expect(page).to_have_url(live_server.url("/people"))
    expect(page.get_by_role("link", name=LABELS[lang]["people"], exact=True)).to_be_visible()

    page.locator("#p-q").fill("acme")
    page.locator("#p-q").press("Enter")
    anna = live_server.users["client"]
    expect(page.get_by_role("link", name=anna)).to_be_visible()
    expect(page.get_by_test_id("people")).not_to_contain_text(live_server.users["beta"])
    shot(page, tmp_path, f"people-{lang}")

    page.get_by_role("link", name=anna).click()
    expect(page.get_by_test_id("person-email")).to_have_text(anna)
    expect(page.get_by_test_id("person-tickets")).to_contain_text(
        f"#{live_server.numbers['key_new']}"
    )
    shot(page, tmp_path, f"person-{lang}")
    with page.expect_download() as download:
        page.get_by_test_id("export").click()
    assert download.value.suggested_filename.startswith("pulpit-person-")

    page.get_by_test_id("erase").click()
    expect(page.get_by_test_id("erase-form")).to_be_visible()
    page.get_by_test_id("erase-confirm").fill("not-the-address")
    page.get_by_test_id("erase-submit").click()
    expect(page.get_by_test_id("form-error")).to_be_visible()
    shot(page, tmp_path, f"person-erase-{lang}")

    page.get_by_role("link", name=LABELS[lang]["audit"], exact=True).click()
    expect(page.get_by_test_id("audit")).to_contain_text("person.export")
    shot(page, tmp_path, f"audit-{lang}")
    page.context.close()


def test_erasing_after_typing_the_address(browser: Browser, live_server: LiveServer) -> None:
    page = open_page(browser, live_server, "pl")
    login(page, live_server, "pl")
    piotr = live_server.users["client2"]
    page.locator("#p-q").fill(piotr)
    page.locator("#p-q").press("Enter")
    page.get_by_role("link", name=piotr).click()
    page.get_by_test_id("erase").click()
    page.get_by_test_id("erase-confirm").fill(piotr)
    page.get_by_test_id("erase-submit").click()
    expect(page.get_by_test_id("flash")).to_contain_text("Usunięto")
    expect(page.get_by_test_id("person-email")).to_contain_text("@pulpit.invalid")
    expect(page.get_by_test_id("erase")).to_have_count(0)
    page.get_by_role("link", name="Dziennik zdarzeń", exact=True).click()
    expect(page.get_by_test_id("audit")).to_contain_text("person.erase")
    expect(page.get_by_test_id("audit")).not_to_contain_text(piotr)
    page.context.close()


def test_a_coordinator_has_no_people_pages(browser: Browser, live_server: LiveServer) -> None:
    page = open_page(browser, live_server, "pl")
    page.goto(live_server.url("/tickets"))
    page.get_by_label("E-mail").fill(live_server.users["coordinator"])
    page.get_by_label("Hasło").fill(live_server.password)
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(live_server.url("/tickets"))
    expect(page.get_by_role("link", name="Osoby", exact=True)).to_have_count(0)
    response = page.goto(live_server.url("/audit"))
    assert response is not None and response.status == 403
    page.context.close()
