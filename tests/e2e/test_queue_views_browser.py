"""Work queues and saved views in Chromium (issue 15).

- An admin ticks a technician on the contract's screen; the technician sees "Do wzięcia" with
  its count, opens it and takes a ticket with "Weź".
- An admin saves the list as a view, publishes it to coordinators; a coordinator sees it in the
  views bar with its count, and the count follows a change without a reload (views.js).

Screenshots at 1280 px in Polish and English go to /tmp/shots/queues-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")


def _page(browser: Browser, refused: list[str]) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pl-PL")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    pg.on(
        "console",
        lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return context, pg


@pytest.fixture
def pages(browser: Browser) -> Iterator[tuple[Page, Page]]:
    """Two people at once (two browser contexts): an admin and someone else."""
    refused: list[str] = []
    one, first = _page(browser, refused)
    two, second = _page(browser, refused)
    yield first, second
    one.close()
    two.close()
    assert refused == [], f"the page broke its Content-Security-Policy: {refused}"


def login(page: Page, server: LiveServer, role: str, start: str) -> None:
    page.goto(server.url(start))
    page.get_by_label("E-mail").fill(server.users[role])
    page.get_by_label("Hasło").fill(server.password)
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(server.url(start))
    page.wait_for_load_state()


def shot(page: Page, server: LiveServer, name: str) -> None:
    """The page in Polish and in English (then back to Polish)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"queues-{name}-pl.png"), full_page=True)
    page.context.add_cookies([{"name": "lang", "value": "en", "url": server.base_url}])
    page.reload()
    page.screenshot(path=str(SHOTS / f"queues-{name}-en.png"), full_page=True)
    page.context.add_cookies([{"name": "lang", "value": "pl", "url": server.base_url}])
    page.reload()


def test_technician_takes_a_ticket_from_the_queue(
    pages: tuple[Page, Page], live_server: LiveServer
) -> None:
    admin, tech = pages
    number = live_server.numbers["key_new"]
    # The admin names the technician on the contract's screen.
    login(admin, live_server, "admin", "/admin/contracts")
    admin.get_by_role("link", name="ACME-KEY").first.click()
    serving = admin.get_by_test_id("contract-technicians")
    expect(serving).to_contain_text("Technicy obsługujący umowę")
    serving.get_by_label("Tomasz Technik").check()
    admin.get_by_test_id("save").click()
    expect(admin.get_by_test_id("flash")).to_be_visible()
    expect(
        admin.get_by_test_id("contract-technicians").get_by_label("Tomasz Technik")
    ).to_be_checked()

    # The technician's list offers the queue with its count.
    login(tech, live_server, "technician", "/tickets")
    queue = tech.get_by_test_id("queue-link")
    expect(queue).to_contain_text("Do wzięcia")
    before = int(queue.locator("[data-queue-count]").inner_text())
    assert before >= 1
    queue.click()
    expect(tech).to_have_url(re.compile(r"/tickets\?assignee=none$"))
    row = tech.locator(f'tr[data-number="{number}"]')
    expect(row.get_by_test_id("take")).to_have_text(re.compile("Weź"))
    shot(tech, live_server, "queue")
    row.get_by_test_id("take").click()
    expect(tech.get_by_test_id("flash")).to_contain_text(f"#{number}")
    expect(tech).to_have_url(re.compile(r"/tickets\?assignee=none$"))
    expect(tech.locator(f'tr[data-number="{number}"]')).to_have_count(0)
    expect(tech.get_by_test_id("queue-link").locator("[data-queue-count]")).to_have_text(
        str(before - 1)
    )
    # Another ticket of the queue offers "Take" on its page too.
    other = tech.get_by_test_id("ticket-row").first.get_attribute("data-number")
    tech.goto(live_server.url(f"/tickets/{other}"))
    expect(tech.get_by_test_id("take")).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    tech.screenshot(path=str(SHOTS / "queues-ticket-pl.png"))
    # It is theirs now: on the ticket page, no "Take" any more.
    tech.goto(live_server.url(f"/tickets/{number}"))
    expect(tech.locator("main")).to_contain_text("Tomasz Technik")
    expect(tech.get_by_test_id("take")).to_have_count(0)


def test_saved_view_published_to_a_role_is_seen_with_its_count(
    pages: tuple[Page, Page], live_server: LiveServer
) -> None:
    admin, coord = pages
    login(admin, live_server, "admin", "/tickets?key=1&assignee=none")
    admin.get_by_test_id("view-save").locator("summary").click()
    form = admin.get_by_test_id("view-save")
    form.get_by_label("Nazwa widoku").fill("Kluczowe nieprzypisane")
    form.get_by_label("Typ", exact=True).uncheck()
    form.get_by_test_id("view-publish").check()
    form.get_by_label("Koordynator", exact=True).check()
    form.get_by_role("button", name="Zapisz widok").click()
    expect(admin.get_by_test_id("flash")).to_contain_text("Kluczowe nieprzypisane")
    link = admin.get_by_test_id("view-link").filter(has_text="Kluczowe nieprzypisane")
    expect(link).to_have_class(re.compile(r"\bactive\b"))
    expect(admin.locator("table.tickets")).to_have_class(re.compile(r"\bhide-type\b"))
    expect(admin.locator("th.c-type")).to_be_hidden()
    count = int(link.locator(".viewcount").inner_text())
    assert count >= 1
    rows = admin.get_by_test_id("ticket-row")
    expect(rows).to_have_count(count)

    # The coordinator sees it with the same count.
    login(coord, live_server, "coordinator", "/tickets")
    theirs = coord.get_by_test_id("view-link").filter(has_text="Kluczowe nieprzypisane")
    expect(theirs.locator(".viewcount")).to_have_text(str(count))
    shot(coord, live_server, "views")
    # A ticket of the view is taken meanwhile: the count follows without a reload.
    number = int(rows.first.get_attribute("data-number") or "0")
    token = coord.locator('meta[name="csrf-token"]').get_attribute("content")
    theirs = coord.get_by_test_id("view-link").filter(has_text="Kluczowe nieprzypisane")
    coord.evaluate("document.body.dataset.marker = 'same page'")
    answer = coord.request.post(
        live_server.url(f"/tickets/{number}/take"),
        form={"csrf_token": token or "", "back": ""},
        max_redirects=0,
    )
    assert answer.status == 303
    coord.evaluate("document.dispatchEvent(new Event('pulpit:views'))")
    expect(theirs.locator(".viewcount")).to_have_text(str(count - 1))
    assert coord.evaluate("document.body.dataset.marker") == "same page"
    # The view's page opens with its columns.
    theirs.click()
    expect(coord.locator("th.c-type")).to_be_hidden()
    expect(coord.locator("th.c-subj")).to_be_visible()
    # The admin's "Saved views" page says whom it is published to.
    admin.goto(live_server.url("/views"))
    expect(
        admin.get_by_test_id("view-row").filter(has_text="Kluczowe nieprzypisane")
    ).to_contain_text("Koordynator")
    SHOTS.mkdir(parents=True, exist_ok=True)
    admin.screenshot(path=str(SHOTS / "queues-manage-pl.png"), full_page=True)
