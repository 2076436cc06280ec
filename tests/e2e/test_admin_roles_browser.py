"""Custom roles in a real browser (issue 13): an administrator adds a role on the technician
base and grants it ``assign`` in the Roles screen's matrix (by keyboard: Tab to the checkbox,
Space to tick it), gives it to a technician in the Users screen; that technician now sees the
assignment form on their ticket and assigns with it, while a plain technician does not see it.
Screenshots of both screens go to /tmp/shots/admin-{users,roles}-{pl,en}.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from core.db import make_engine, make_session_factory
from core.tickets.models import Ticket
from tests.e2e.conftest import LiveServer
from tests.e2e.test_console_browser import login

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")
ROLE = "senior-technician"


def new_page(browser: Browser) -> tuple[BrowserContext, Page, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pl-PL")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return context, page, errors


@pytest.fixture
def admin(browser: Browser) -> Iterator[Page]:
    context, page, errors = new_page(browser)
    yield page
    context.close()
    assert errors == [], f"the page failed: {errors}"


def shot(page: Page, server: LiveServer, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for lang in ("pl", "en"):
        page.context.add_cookies([{"name": "lang", "value": lang, "url": server.base_url}])
        page.reload()
        page.screenshot(path=str(SHOTS / f"admin-{name}-{lang}.png"), full_page=True)
    page.context.add_cookies([{"name": "lang", "value": "pl", "url": server.base_url}])
    page.reload()


def assignee_of(server: LiveServer, number: int) -> str | None:
    factory = make_session_factory(make_engine(server.settings.database_url))
    with factory() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        return ticket.assignee.email if ticket.assignee else None


def test_a_custom_role_granting_assign_shows_and_allows_the_assignment(
    admin: Page, browser: Browser, live_server: LiveServer
) -> None:
    number = live_server.numbers["key_assigned"]
    tech = live_server.users["technician"]

    # Before: the plain technician has no assignment form.
    context, page, errors = new_page(browser)
    login(page, live_server, "technician", start=f"/tickets/{number}")
    expect(page.get_by_test_id("comment-form")).to_be_visible()
    expect(page.get_by_test_id("assign-form")).to_have_count(0)
    context.close()

    # The administrator adds the role.
    login(admin, live_server, "admin", start="/admin/roles")
    expect(admin.get_by_test_id("no-roles")).to_be_visible()
    form = admin.get_by_test_id("role-new")
    form.locator("#role-name").fill(ROLE)
    form.get_by_label("Rola bazowa").select_option("technician")
    form.get_by_label("Etykieta po polsku").fill("Starszy technik")
    form.get_by_label("Etykieta po angielsku").fill("Senior technician")
    form.get_by_role("button", name="Dodaj rolę").click()
    expect(admin.get_by_test_id("flash")).to_have_text("Dodano rolę.")
    column = admin.get_by_test_id(f"role-column-{ROLE}")
    expect(column).to_contain_text("Starszy technik")

    # By keyboard: from the comment checkbox Tab reaches assign (note, status, assign), Space
    # ticks it, and the column's Save button is reached by Tab too.
    comment = admin.get_by_test_id(f"allow-{ROLE}-comment")
    assign = admin.get_by_test_id(f"allow-{ROLE}-assign")
    expect(comment).to_be_checked()  # the technician's defaults
    expect(assign).not_to_be_checked()
    comment.focus()
    for _ in range(3):
        admin.keyboard.press("Tab")
    expect(assign).to_be_focused()
    admin.keyboard.press("Space")
    expect(assign).to_be_checked()
    admin.keyboard.press("Space")
    expect(assign).not_to_be_checked()
    admin.keyboard.press("Space")
    expect(assign).to_be_checked()
    save = admin.get_by_test_id(f"role-form-{ROLE}").get_by_role("button")
    for _ in range(30):
        admin.keyboard.press("Tab")
        if save.evaluate("b => b === document.activeElement"):
            break
    expect(save).to_be_focused()
    admin.keyboard.press("Enter")
    expect(admin.get_by_test_id("flash")).to_have_text("Zapisano.")
    expect(admin.get_by_test_id(f"allow-{ROLE}-assign")).to_be_checked()
    shot(admin, live_server, "roles")
    admin.get_by_test_id(f"role-column-{ROLE}").get_by_role("link").click()
    expect(admin.get_by_test_id("differs-assign")).to_be_visible()
    shot(admin, live_server, "role")

    # ... and gives it to the technician.
    admin.goto(live_server.url("/admin/users"))
    admin.locator("#admin-q").fill("Tomasz")
    admin.locator("#admin-q").press("Enter")
    admin.get_by_role("link", name=tech).click()
    admin.get_by_label("Rola").select_option(ROLE)
    admin.get_by_test_id("user-save").click()
    expect(admin.get_by_test_id("flash")).to_have_text("Zapisano.")
    expect(admin.get_by_test_id("user-account")).to_contain_text("Starszy technik")
    shot(admin, live_server, "user")
    admin.goto(live_server.url("/admin/users"))
    expect(admin.get_by_test_id(f"user-{tech}")).to_contain_text("Starszy technik")
    shot(admin, live_server, "users")

    # The technician, in a browser of their own, now sees the form and assigns.
    context, page, errors = new_page(browser)
    login(page, live_server, "technician", start=f"/tickets/{number}")
    form = page.get_by_test_id("assign-form")
    expect(form).to_be_visible()
    form.locator("select").select_option(live_server.users["technician2"])
    form.get_by_role("button", name="Zapisz przypisanie").click()
    expect(page.get_by_test_id("flash")).to_have_text("Zapisano przypisanie.")
    assert assignee_of(live_server, number) == live_server.users["technician2"]
    context.close()
    assert errors == []

    # A plain technician (technician2, now holding it) still has no assignment form.
    context, page, errors = new_page(browser)
    login(page, live_server, "technician2", start=f"/tickets/{number}")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.get_by_test_id("assign-form")).to_have_count(0)
    expect(page.get_by_test_id("handoff-form")).to_have_count(0)
    context.close()
    assert errors == []
