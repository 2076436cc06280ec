"""The admin console in Chromium, end to end (issue 13): an administrator creates, all in the
console, a calendar with a lunch break, a client with a domain and a contact, a contract with a
failure type (2h/8h) and its own statuses, and a mailbox for it; a mail to that mailbox, sent
over SMTP to the running desk (gateway, worker, app), opens a ticket under that contract whose
reaction deadline is the one the SLA engine computes on that calendar; the export shows all of
it and applying the export changes nothing. Screenshots of the calendars and contracts screens
in Polish and English go to /tmp/shots/admin-*.png."""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect

from config.settings import Settings
from core.configuration.apply import apply_config_text
from core.configuration.export import export_config
from core.sla.calendar import BusinessCalendar
from tests.conftest import migrated_database
from tests.e2e.conftest import _serve, ticket_for

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")
LUNCH = ["08:00-12:00", "12:30-16:00"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``pulpit serve`` in one process (the SMTP gateway, the in-process worker, the app served
    over HTTP for the browser) on a new SQLite database with the factories' world, passwords
    set. The export is applied once first: the world's rows are written straight into the
    tables, and the round trip checked at the end must be the console's alone."""
    from litestar.testing import TestClient

    from core.access.accounts import create_api_token
    from core.db import unit_of_work
    from mailgw.server import start
    from tests.factories import PASSWORD, build_world
    from tests.smtp_sink import free_port
    from web.app import create_app
    from workers.actors import register_actors
    from workers.broker import install_dispatcher, make_broker, uninstall_dispatcher
    from workers.runner import start_in_process_worker

    with migrated_database("sqlite", tmp_path) as factory:
        config = Settings(
            data_dir=tmp_path / "var",
            smtp_port=free_port(),
            outbound_smtp_url="null://",
            secret_key="e2e-admin",
        )
        with unit_of_work(factory) as session:
            world = build_world(session, passwords=True)
            token = create_api_token(session, world.users["coordinator"])
            admin = world.users["admin"].email
        with unit_of_work(factory) as session:
            apply_config_text(session, export_config(session), source="export")
        broker = make_broker("memory://")
        register_actors(broker, factory, config)
        install_dispatcher(broker)
        worker = start_in_process_worker(broker, threads=2)
        gateway = start(config, factory)
        app = create_app(config, session_factory=factory)
        server, thread, sock, base_url = _serve(app)
        try:
            yield {
                "port": gateway.port,
                "api": TestClient(app),
                "headers": {"Authorization": f"Bearer {token}"},
                "base_url": base_url,
                "factory": factory,
                "admin": admin,
                "password": PASSWORD,
            }
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
            gateway.stop()
            worker.stop()
            uninstall_dispatcher()


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


def shot(page: Page, desk: dict[str, Any], name: str) -> None:
    """The page in Polish and in English, 1280 px wide, full length."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for lang in ("pl", "en"):
        page.context.add_cookies([{"name": "lang", "value": lang, "url": desk["base_url"]}])
        page.reload()
        page.wait_for_load_state()
        page.screenshot(path=str(SHOTS / f"admin-{name}-{lang}.png"), full_page=True)
    page.context.add_cookies([{"name": "lang", "value": "pl", "url": desk["base_url"]}])
    page.reload()


def log_in(page: Page, desk: dict[str, Any]) -> None:
    page.goto(desk["base_url"] + "/admin")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("E-mail").fill(desk["admin"])
    page.get_by_label("Hasło").fill(desk["password"])
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(desk["base_url"] + "/admin")


def saved(page: Page, path: str) -> None:
    expect(page).to_have_url(re.compile(re.escape(path) + r"/[^/]+$"))
    expect(page.locator(".flash, [role=status]").first).to_be_visible()


def create_calendar(page: Page, desk: dict[str, Any]) -> None:
    page.goto(desk["base_url"] + "/admin/calendars")
    page.get_by_test_id("new-calendar").click()
    page.get_by_label("Nazwa").fill("Biuro")
    page.get_by_label("Strefa czasowa").select_option("Europe/Warsaw")
    monday = page.get_by_test_id("day-mon")
    first = monday.locator("input").first
    # Checked as you type: an interval that is not HH:MM-HH:MM says so at once.
    first.fill("8-12")
    expect(page.locator('[data-check-message="interval"]')).to_be_visible()
    expect(first).to_have_attribute("aria-invalid", "true")
    for day in WEEKDAYS:
        row = page.get_by_test_id(f"day-{day}")
        row.locator("input").first.fill(LUNCH[0])
        page.get_by_test_id(f"add-{day}").click()
        added = row.locator("input").nth(1)
        expect(added).to_be_focused()  # the keyboard goes on in the new interval
        page.keyboard.type(LUNCH[1])
    expect(page.locator('[data-check-message="interval"]')).to_be_hidden()
    page.get_by_label("Święta państwowe kraju").fill("PL")
    page.get_by_test_id("save").click()
    saved(page, "/admin/calendars")
    expect(page.get_by_test_id("sample").first).to_contain_text("Cel 4h otwarty piątek")
    shot(page, desk, "calendars")
    page.goto(desk["base_url"] + "/admin/calendars")
    shot(page, desk, "calendars-list")


def create_client(page: Page, desk: dict[str, Any]) -> None:
    page.goto(desk["base_url"] + "/admin/clients/new")
    form = page.get_by_test_id("client-form")
    form.locator('input[name="name"]').fill("Gamma")
    form.locator('textarea[name="domains"]').fill("gamma.example")
    form.locator('input[name="c0_email"]').fill("jan@gamma.example")
    form.locator('input[name="c0_name"]').fill("Jan Gamma")
    form.locator('button[type="submit"]').first.click()
    saved(page, "/admin/clients")


def create_contract(page: Page, desk: dict[str, Any]) -> None:
    page.goto(desk["base_url"] + "/admin/contracts")
    page.get_by_test_id("new-contract").click()
    page.get_by_label("Kod", exact=True).fill("GAMMA-1")
    page.get_by_label("Klient", exact=True).select_option("Gamma")
    page.get_by_label("Nazwa", exact=True).fill("Gamma: serwis")
    page.get_by_label("Kalendarz", exact=True).select_option("Biuro")
    types = page.get_by_test_id("types")
    types.locator('[name="tt0.name"]').fill("failure")
    reaction = types.locator('[name="tt0.reaction"]')
    reaction.fill("2x")  # checked as you type
    expect(reaction).to_have_attribute("aria-invalid", "true")
    expect(types.locator('[data-check-message="duration"]').first).to_be_visible()
    reaction.fill("2h")
    expect(reaction).not_to_have_attribute("aria-invalid", "true")
    types.locator('[name="tt0.resolution"]').fill("8h")
    types.locator('[name="tt0.keywords"]').fill("awaria, failure")
    types.locator('[name="default_type"]').first.check()
    statuses = page.get_by_test_id("statuses")
    for i, (name, category) in enumerate(
        [
            ("Nowe", "new"),
            ("W toku", "open"),
            ("Czeka na klienta", "paused"),
            ("Zamknięte", "closed"),
        ]
    ):
        if i:
            page.get_by_test_id("add-status").click()
        statuses.locator(f'[name="st{i}.name"]').fill(name)
        statuses.locator(f'[name="st{i}.category"]').select_option(category)
    page.get_by_test_id("save").click()
    saved(page, "/admin/contracts")
    expect(page.get_by_test_id("type-row").first.locator('[name="tt0.reaction"]')).to_have_value(
        "2h"
    )
    assert page.get_by_test_id("status-row").count() == 5  # four and a blank one


def create_mailbox(page: Page, desk: dict[str, Any]) -> None:
    page.goto(desk["base_url"] + "/admin/mailboxes/new")
    form = page.get_by_test_id("mailbox-form")
    form.locator('input[name="address"]').fill("gamma@support.example")
    form.locator('select[name="contract"]').select_option("GAMMA-1")
    form.locator("button.btn-primary").click()
    saved(page, "/admin/mailboxes")


def send(port: int) -> None:
    msg = EmailMessage()
    msg["From"] = "Jan Gamma <jan@gamma.example>"
    msg["To"] = "gamma@support.example"
    msg["Subject"] = "Awaria serwera plików"
    msg["Message-ID"] = "<g1@gamma.example>"
    msg.set_content("Serwer nie odpowiada.")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg)


def test_an_admin_configures_a_contract_and_a_mail_gets_its_deadline(
    page: Page, desk: dict[str, Any]
) -> None:
    log_in(page, desk)
    create_calendar(page, desk)
    create_client(page, desk)
    create_contract(page, desk)
    create_mailbox(page, desk)
    # The contract lists its mailbox now (read-only, a link to the mailbox's screen).
    page.goto(desk["base_url"] + "/admin/contracts")
    shot(page, desk, "contracts-list")
    page.get_by_role("link", name="GAMMA-1").click()
    expect(page.get_by_test_id("mailboxes")).to_contain_text("gamma@support.example")
    shot(page, desk, "contracts")

    send(desk["port"])
    ticket = ticket_for(desk, "<g1@gamma.example>")
    assert ticket["contract"] == "GAMMA-1" and ticket["ticket_type"] == "failure"
    assert ticket["requester"] == "jan@gamma.example"
    with desk["factory"]() as session:
        text = export_config(session)
        again = apply_config_text(session, text, source="export")
        assert not again.changed, f"applying the export changed {again}"
        session.rollback()
    config = yaml.safe_load(text)
    calendar = next(c for c in config["calendars"] if c["name"] == "Biuro")
    assert calendar["hours"] == {day: LUNCH for day in WEEKDAYS}
    assert calendar["holidays"] == "PL"
    client = next(c for c in config["clients"] if c["name"] == "Gamma")
    assert client["domains"] == ["gamma.example"]
    assert [c["email"] for c in client["contacts"]] == ["jan@gamma.example"]
    contract = next(c for c in config["contracts"] if c["code"] == "GAMMA-1")
    assert contract["client"] == "Gamma" and contract["calendar"] == "Biuro"
    [failure] = contract["ticket_types"]
    assert (failure["reaction"], failure["resolution"]) == ("2h", "8h")
    assert [s["name"] for s in contract["statuses"]] == [
        "Nowe",
        "W toku",
        "Czeka na klienta",
        "Zamknięte",
    ]
    mailbox = next(
        m
        for m in config.get("mailboxes", []) + [{"address": a} for a in contract["mailboxes"]]
        if m["address"] == "gamma@support.example"
    )
    assert mailbox.get("contract", "GAMMA-1") == "GAMMA-1"
    # The reaction deadline is the engine's on the calendar built in the console.
    engine = BusinessCalendar.from_config({k: v for k, v in calendar.items() if k != "name"})
    created = datetime.fromisoformat(ticket["created_at"])
    expected = engine.add(created, timedelta(hours=2))
    assert datetime.fromisoformat(ticket["sla"]["reaction_due"]) == expected
    assert datetime.fromisoformat(ticket["sla"]["resolution_due"]) == engine.add(
        created, timedelta(hours=8)
    )

    # A mistyped target is refused under its field, in the admin's language, input kept.
    page.goto(desk["base_url"] + "/admin/contracts")
    page.get_by_role("link", name="GAMMA-1").click()
    contract_url = page.url
    for lang, said in (("pl", "'2x' nie jest czasem trwania"), ("en", "'2x' is not a duration")):
        page.context.add_cookies([{"name": "lang", "value": lang, "url": desk["base_url"]}])
        page.goto(contract_url)
        page.get_by_test_id("types").locator('[name="tt0.resolution"]').fill("2x")
        page.get_by_test_id("save").click()
        problem = page.locator('[data-testid="problem"][data-path="tt0.resolution"]')
        expect(problem).to_contain_text(said)
        expect(page.get_by_test_id("types").locator('[name="tt0.resolution"]')).to_have_value("2x")
        problem.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"admin-contracts-problem-{lang}.png"))
    page.context.add_cookies([{"name": "lang", "value": "pl", "url": desk["base_url"]}])

    # A tighter target moves that ticket's deadline: the first press of Save says so and
    # saves nothing; Save and recompute applies it, and the ticket's deadline follows.
    page.goto(contract_url)
    page.get_by_test_id("types").locator('[name="tt0.reaction"]').fill("1h")
    page.get_by_test_id("save").click()
    warning = page.get_by_test_id("deadlines")
    expect(warning).to_contain_text("Otwarte zgłoszenia, które dostaną nowe terminy: 1")
    page.screenshot(path=str(SHOTS / "admin-contracts-deadlines-pl.png"), full_page=False)
    number = ticket["number"]
    api = desk["api"].get(f"/api/v1/tickets/{number}", headers=desk["headers"]).json()
    assert api["sla"]["reaction_due"] == ticket["sla"]["reaction_due"]  # not yet
    expect(page.get_by_test_id("confirm")).to_be_focused()
    page.keyboard.press("Enter")
    saved(page, "/admin/contracts")
    expect(page.locator(".flash").first).to_contain_text("Otwarte zgłoszenia z nowymi terminami: 1")
    # The desk's worker recomputes it after the commit (the sla.recompute job).
    wanted = engine.add(created, timedelta(hours=1))
    deadline = time.monotonic() + 20
    while True:
        api = desk["api"].get(f"/api/v1/tickets/{number}", headers=desk["headers"]).json()
        if datetime.fromisoformat(api["sla"]["reaction_due"]) == wanted:
            break
        assert time.monotonic() < deadline, api["sla"]
        time.sleep(0.2)
