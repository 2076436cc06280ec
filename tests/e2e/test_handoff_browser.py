"""Handing a ticket to a subcontractor in a real browser (issue 12): the best one is offered
first with its reason and preselected; one outside the contract asks for a confirmation."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from core.contracts.models import Contract
from core.db import make_engine, make_session_factory
from core.directory.models import Subcontractor
from tests.e2e.conftest import LiveServer, start_live_server
from tests.e2e.test_console_browser import login

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The seeded world plus two subcontractors: Alfa Serwis also serves ACME-KEY (and has
    nothing open, so it comes before FixIt), Zeta Serwis serves only BETA-STD."""
    gen = start_live_server(tmp_path_factory.mktemp("handoff-live"))
    server = next(gen)
    engine = make_engine(server.settings.database_url)
    with make_session_factory(engine)() as s:
        key = s.scalar(select(Contract).where(Contract.code == "ACME-KEY"))
        std = s.scalar(select(Contract).where(Contract.code == "BETA-STD"))
        assert key is not None and std is not None
        s.add_all(
            [
                Subcontractor(name="Alfa Serwis", contracts=[key]),
                Subcontractor(name="Zeta Serwis", contracts=[std]),
            ]
        )
        s.commit()
    engine.dispose()
    yield server
    gen.close()


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


def shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.get_by_test_id("handoff-form").screenshot(path=str(path))
    shutil.copyfile(path, f"/tmp/{name}.png")  # for people reviewing the look
    page.screenshot(path=str(tmp_path / f"{name}-page.png"), full_page=True)
    shutil.copyfile(tmp_path / f"{name}-page.png", f"/tmp/{name}-page.png")


def test_the_best_subcontractor_is_preselected_with_its_reason(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    number = live_server.numbers["key_new"]
    login(page, live_server, "coordinator", start=f"/tickets/{number}")
    select_ = page.get_by_test_id("subcontractor-select")
    expect(select_).to_have_value("Alfa Serwis")
    chosen = select_.locator("option:checked")
    expect(chosen).to_have_text("Alfa Serwis — obsługuje umowę ACME-KEY · 0 otwartych zgłoszeń")
    expect(select_.locator("option").nth(2)).to_have_text(
        re.compile(r"^FixIt — obsługuje umowę ACME-KEY · 1 otwarte zgłoszenie")
    )
    expect(page.get_by_test_id("not-serving")).to_have_attribute("label", "Nie obsługują tej umowy")
    expect(page.get_by_test_id("suggestion")).to_contain_text("Proponowany: Alfa Serwis")
    shot(page, tmp_path, "handoff-form-pl")

    page.context.add_cookies([{"name": "lang", "value": "en", "url": live_server.base_url}])
    page.reload()
    expect(select_.locator("option:checked")).to_have_text(
        "Alfa Serwis — serves contract ACME-KEY · 0 open tickets"
    )
    shot(page, tmp_path, "handoff-form-en")
    page.context.add_cookies([{"name": "lang", "value": "pl", "url": live_server.base_url}])
    page.reload()

    page.get_by_role("button", name="Przekaż", exact=True).click()
    expect(page.get_by_test_id("timeline")).to_contain_text("przekazanie podwykonawcy: Alfa Serwis")


def test_handing_outside_the_contract_asks_first(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    number = live_server.numbers["client_web"]
    login(page, live_server, "coordinator", start=f"/tickets/{number}")
    page.get_by_test_id("subcontractor-select").select_option("Zeta Serwis")
    page.get_by_role("button", name="Przekaż", exact=True).click()
    expect(page.get_by_test_id("outside-warning")).to_have_text(
        "Zeta Serwis nie obsługuje umowy ACME-KEY. Przekazać zgłoszenie mimo to?"
    )
    expect(page.get_by_test_id("subcontractor-select")).to_have_value("Zeta Serwis")
    shot(page, tmp_path, "handoff-outside-pl")
    page.get_by_test_id("confirm-outside").click()
    expect(page.get_by_test_id("outside-contract-badge")).to_have_text("poza umową")
