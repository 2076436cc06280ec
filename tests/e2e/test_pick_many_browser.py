"""Choosing several things in the console (issue 15): a checkbox list that works by keyboard,
with its count, instead of a bare multi-select that needs Ctrl-click. On the profile, a
coordinator narrows their notifications to one client with Tab and Space only."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots")


def test_profile_clients_are_chosen_by_keyboard(browser: Browser, live_server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pl-PL")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(live_server.url("/profile"))
    page.get_by_label("E-mail").fill(live_server.users["coordinator"])
    page.get_by_label("Hasło").fill(live_server.password)
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(live_server.url("/profile"))

    clients = page.get_by_test_id("pick-clients")
    expect(clients.locator("select")).to_have_count(0)
    boxes = clients.get_by_role("checkbox")
    expect(boxes.first).to_be_visible()
    boxes.first.focus()
    page.keyboard.press("Space")
    expect(boxes.first).to_be_checked()
    expect(clients.locator("[data-pick-count]")).to_have_text("(1)")
    chosen = boxes.first.get_attribute("value")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "pick-many-profile-pl.png"), full_page=True)
    page.get_by_role("button", name="Zapisz").click()
    expect(page.get_by_test_id("flash")).to_be_visible()  # saved before leaving
    page.goto(live_server.url("/profile"))
    expect(page.get_by_test_id("pick-clients").locator(f'input[value="{chosen}"]')).to_be_checked()
    context.close()
