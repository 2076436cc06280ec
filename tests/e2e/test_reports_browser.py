"""The report pages in a real browser (Chromium through Playwright) against a live server: a
coordinator opens the SLA report, sees the chart and the table, drills down to the tickets and
downloads the CSV; a client's manager sees only their company's figures in the portal.
Screenshots in Polish and English at 1280 px go to /tmp/shots/reports-*.png."""

from __future__ import annotations

import csv
import io
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
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="pl-PL", accept_downloads=True
    )
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


def login(page: Page, server: LiveServer, role: str) -> None:
    page.goto(server.url("/tickets"))
    page.locator("input[name=email]").fill(server.users[role])
    page.locator("input[name=password]").fill(server.password)
    page.locator("form button[type=submit]").first.click()
    expect(page).to_have_url(server.url("/tickets"))


def shot(page: Page, server: LiveServer, name: str) -> None:
    """The page in Polish and in English, 1280 px wide, full length."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for lang in ("pl", "en"):
        page.context.add_cookies([{"name": "lang", "value": lang, "url": server.base_url}])
        page.reload()
        page.wait_for_load_state()
        page.screenshot(path=str(SHOTS / f"reports-{name}-{lang}.png"), full_page=True)
    page.context.add_cookies([{"name": "lang", "value": "pl", "url": server.base_url}])
    page.reload()


def test_a_coordinator_reads_the_sla_report_drills_down_and_downloads_it(
    page: Page, live_server: LiveServer
) -> None:
    login(page, live_server, "coordinator")
    page.get_by_test_id("nav-reports").click()
    expect(page).to_have_url(live_server.url("/reports"))
    shot(page, live_server, "index")
    page.get_by_test_id("report-index").get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/reports/sla"))
    chart = page.locator("svg#chart-sla")
    expect(chart).to_be_visible()
    expect(chart.locator("title").first).to_have_text(re.compile(r"\S"))
    # Group by client with the keyboard, as a person without a mouse would.
    page.locator("#r-group").select_option("client")
    page.locator("#r-to").press("Enter")  # Enter in a field sends the form
    expect(page).to_have_url(re.compile(r"group_by=client"))
    table = page.get_by_test_id("report-table")
    expect(table.locator("tbody th", has_text="Acme")).to_be_visible()
    expect(table.locator("tbody th", has_text="Beta")).to_be_visible()
    shot(page, live_server, "sla")

    with page.expect_download() as download:
        page.get_by_test_id("download-csv").click()
    assert re.fullmatch(r"pulpit-sla-[-_0-9]+\.csv", download.value.suggested_filename)
    data = Path(download.value.path()).read_bytes()
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert [r[0] for r in rows[1:-1]] == ["Acme", "Beta"]

    table.locator("tbody th a", has_text="Acme").click()
    expect(page).to_have_url(re.compile(r"/reports/sla/tickets\?.*id="))
    drill = page.get_by_test_id("report-table")
    first = drill.locator("tbody a[href^='/tickets/']").first
    expect(first).to_be_visible()
    shot(page, live_server, "sla-tickets")
    number = first.inner_text().lstrip("#")
    first.click()
    expect(page).to_have_url(live_server.url(f"/tickets/{number}"))


def test_work_time_and_backlog_pages_show_their_charts(page: Page, live_server: LiveServer) -> None:
    login(page, live_server, "coordinator")
    page.goto(live_server.url("/reports/worktime?group_by=technician"))
    expect(page.locator("svg#chart-worktime")).to_be_visible()
    shot(page, live_server, "worktime")
    page.goto(live_server.url("/reports/backlog"))
    expect(page.locator("svg#chart-arrivals")).to_be_visible()
    expect(page.get_by_test_id("report-workload")).to_be_visible()
    shot(page, live_server, "backlog")
    page.goto(live_server.url("/reports/statement"))
    page.locator("#r-client").select_option("Acme")
    page.locator("#r-month").press("Enter")
    expect(page).to_have_url(re.compile(r"client=Acme"))
    shot(page, live_server, "statement")


def test_a_client_manager_sees_only_their_company(page: Page, live_server: LiveServer) -> None:
    login(page, live_server, "manager")
    page.get_by_test_id("nav-reports").click()
    expect(page.get_by_role("link", name=re.compile("Backlog|Zaległości"))).to_have_count(0)
    page.goto(live_server.url("/reports/sla?group_by=client"))
    table = page.get_by_test_id("report-table")
    expect(table.locator("tbody th", has_text="Acme")).to_be_visible()
    expect(table.locator("tbody th", has_text="Beta")).to_have_count(0)
    expect(page.locator("#r-group option[value=assignee]")).to_have_count(0)
    shot(page, live_server, "portal-sla")
    page.goto(live_server.url("/reports/statement"))
    expect(page.locator("#r-client")).to_have_count(0)
    shot(page, live_server, "portal-statement")
