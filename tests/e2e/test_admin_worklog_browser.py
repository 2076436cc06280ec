"""The contract screen's Work log card in Chromium at 1280 px (issue 14): an administrator
sets the hourly rate, the currency and the client's view, adds work type rows with the
keyboard (a mistyped rate said as you type), saves, sees a bad currency refused under its
field in Polish and in English, and a work type used by a work log entry refused deletion
(409). Screenshots go to /tmp/shots/admin-worklog-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from core.contracts.models import Contract
from core.db import make_engine, make_session_factory
from core.directory.models import User
from core.i18n import compiled_catalogue
from core.tickets.models import Ticket
from core.worklog.services import Work, log_work
from tests.e2e.conftest import LiveServer
from tests.e2e.test_admin_roles_browser import new_page
from tests.e2e.test_console_browser import login
from web import i18n

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")


@pytest.fixture
def admin(browser: Browser) -> Iterator[Page]:
    context, page, errors = new_page(browser)
    yield page
    context.close()
    assert errors == [], f"the page failed: {errors}"


def said(lang: str, template: str, **params: str) -> str:
    """A sentence as the console says it in ``lang`` (its catalogue's, or the template)."""
    catalogue = compiled_catalogue(i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po", lang)
    return catalogue.gettext(template) % params


def in_lang(page: Page, server: LiveServer, lang: str) -> None:
    page.context.add_cookies([{"name": "lang", "value": lang, "url": server.base_url}])


def card_shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    card = page.get_by_test_id("worklog")
    card.scroll_into_view_if_needed()
    card.screenshot(path=str(SHOTS / f"admin-worklog-{name}.png"))


def log_entry(server: LiveServer, code: str, work_type: str) -> None:
    factory = make_session_factory(make_engine(server.settings.database_url))
    with factory() as s:
        contract = s.scalar(select(Contract).where(Contract.code == code))
        assert contract is not None
        ticket = s.scalars(select(Ticket).where(Ticket.contract_id == contract.id)).first()
        person = s.scalar(select(User).where(User.email == server.users["admin"]))
        assert ticket is not None and person is not None
        log_work(s, ticket, actor=person, work=Work(minutes=30, work_type=work_type))
        s.commit()


def test_an_admin_prices_a_contracts_work(admin: Page, live_server: LiveServer) -> None:
    page = admin
    login(page, live_server, "admin", start="/admin/contracts")
    page.get_by_role("link", name="BETA-STD").click()
    url = page.url
    card = page.get_by_test_id("worklog")
    expect(card.locator('[name="currency"]')).to_have_value("PLN")
    expect(card.locator('[name="worklog_billable"]')).to_be_checked()
    card.locator('[name="hourly_rate"]').fill("150,00")
    card.locator('[name="worklog_visible_to_client"]').check()
    rows = page.get_by_test_id("work-types")
    rows.locator('[name="wt0.name"]').fill("on_site")
    rows.locator('[name="wt0.label_pl"]').fill("Na miejscu")
    rows.locator('[name="wt0.label_en"]').fill("On site")
    rows.locator('[name="wt0.rate"]').fill("180")
    rows.locator('[name="wt0.billable"]').select_option("yes")
    # A new row by keyboard: the button adds it and puts the cursor in its name.
    page.get_by_test_id("add-work-type").focus()
    page.keyboard.press("Enter")
    expect(rows.locator('[name="wt1.name"]')).to_be_focused()
    page.keyboard.type("travel")
    page.keyboard.press("Tab")
    page.keyboard.type("Dojazd")
    page.keyboard.press("Tab")
    page.keyboard.type("Travel")
    page.keyboard.press("Tab")
    page.keyboard.type("12.345")  # checked as you type
    rate = rows.locator('[name="wt1.rate"]')
    expect(rate).to_have_attribute("aria-invalid", "true")
    expect(rows.locator('[data-check-message="amount"]').nth(1)).to_be_visible()
    rate.fill("90.50")
    expect(rate).not_to_have_attribute("aria-invalid", "true")
    rows.locator('[name="wt1.billable"]').select_option("no")
    page.get_by_test_id("save").click()
    expect(page.locator(".flash, [role=status]").first).to_be_visible()
    expect(card.locator('[name="hourly_rate"]')).to_have_value("150.00")
    expect(rows.locator('[name="wt1.rate"]')).to_have_value("90.50")
    expect(rows.locator('[name="wt0.name"]')).to_have_attribute("readonly", "")
    assert page.get_by_test_id("work-type-row").count() == 3  # two and a blank one
    for lang in ("pl", "en"):
        in_lang(page, live_server, lang)
        page.goto(url)
        card_shot(page, f"card-{lang}")
        page.screenshot(path=str(SHOTS / f"admin-worklog-page-{lang}.png"), full_page=True)

    # A currency Babel does not know is refused under its field, in the admin's language,
    # with what was typed kept.
    template = "%(value)r is not an ISO 4217 currency code (write three letters, like PLN or EUR)"
    for lang in ("pl", "en"):
        in_lang(page, live_server, lang)
        page.goto(url)
        page.get_by_test_id("worklog").locator('[name="currency"]').fill("XYZ")
        page.get_by_test_id("save").click()
        problem = page.locator('[data-testid="problem"][data-path="currency"]')
        expect(problem).to_have_text(said(lang, template, value="XYZ"))
        expect(page.get_by_test_id("worklog").locator('[name="currency"]')).to_have_value("XYZ")
        card_shot(page, f"problem-{lang}")

    # A work type on a work log entry stays: its Delete is refused with a sentence (409).
    log_entry(live_server, "BETA-STD", "on_site")
    refusal = (
        "work type %(name)s of contract %(code)s is on a work log entry: keep it, the entry "
        "is priced and reported by it"
    )
    for lang in ("pl", "en"):
        in_lang(page, live_server, lang)
        page.goto(url)
        page.get_by_test_id("work-type-row").first.get_by_test_id("delete-work-type").click()
        alert = page.get_by_test_id("form-error")
        expect(alert).to_have_text(said(lang, refusal, name="on_site", code="BETA-STD"))
        page.screenshot(path=str(SHOTS / f"admin-worklog-refused-{lang}.png"))
    in_lang(page, live_server, "pl")
