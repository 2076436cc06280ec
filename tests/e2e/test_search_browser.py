"""Full-text search in a real browser (issue 15's "Done when"), on SQLite and PostgreSQL: a
word that appears only in a mail's body is found from the header's search box, in Polish
with and without diacritics and capitals, with the matching text under the subject and the
word marked; ``#N`` opens the ticket; a client does not find a ticket by a word only an
internal note holds. Screenshots in Polish and English at 1280 and 1920 px in /tmp/shots."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from config.settings import Settings
from core.blobs import DirectoryBlobStore
from core.clock import utcnow
from core.directory.models import User
from core.tickets import services as svc
from core.tickets.models import Ticket
from tests.conftest import migrated_database
from tests.e2e.conftest import PASSWORD, _serve, seed_world

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots")
BODY = (
    "Dzień dobry, od wczoraj Łącze ŚWIATŁOWODOWE w magazynie zrywa się co godzinę; "
    "prosimy o <pilną> interwencję."
)
NOTE = "Hasło do routera: Żyrafa-2026, nie podawać klientowi"


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from web.app import create_app

    with migrated_database(request.param, tmp_path) as factory:
        with factory() as session:
            world = seed_world(session, DirectoryBlobStore(tmp_path / "blobs"), utcnow())
            users = {u.email: u for u in session.scalars(select(User))}
            ticket = session.scalar(
                select(Ticket).where(Ticket.number == world.numbers["key_subcontractor"])
            )
            assert ticket is not None
            svc.record_email(
                session,
                ticket,
                author=users["anna@acme.example"],
                body=BODY,
                public=True,
                at=utcnow() + timedelta(minutes=1),
            )
            svc.add_comment(
                session, ticket, author=users["coord@support.example"], body=NOTE, public=False
            )
            session.commit()
            number = ticket.number
        settings = Settings(data_dir=tmp_path, secret_key="test-secret-key")
        app = create_app(settings, session_factory=factory)
        srv, thread, sock, base = _serve(app)
        try:
            yield {"base": base, "number": number, "backend": request.param}
        finally:
            srv.should_exit = True
            thread.join(timeout=10)
            sock.close()


def _page(browser: Browser, width: int, lang: str) -> tuple[Any, Page, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="pl-PL")
    context.set_default_timeout(10_000)
    if lang == "en":
        context.add_cookies([{"name": "lang", "value": "en", "url": "http://127.0.0.1"}])
    page = context.new_page()
    refused: list[str] = []
    page.on(
        "console",
        lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return context, page, refused


def _login(page: Page, base: str, email: str, start: str) -> None:
    page.goto(base + start)
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").first.click()
    expect(page).to_have_url(base + start)
    page.wait_for_load_state()


def _search(page: Page, q: str) -> None:
    """Type into the search box: the header's, or on the list its own (the header has none)."""
    box = page.locator("#top-q, #q").first
    box.fill(q)
    box.press("Enter")
    page.wait_for_load_state()


def test_a_word_only_in_a_mail_body_is_found(browser: Browser, server: dict[str, Any]) -> None:
    base, number, backend = server["base"], server["number"], server["backend"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, page, refused = _page(browser, 1280, "pl")
    # Start on a ticket's page: its header has the search box.
    _login(page, base, "coord@support.example", f"/tickets/{number}")
    for q in ("światłowodowe", "swiatlowodowe", "ŚWIATŁOWODOWE", "Swiatlowod", "łącze magazyn"):
        page.goto(f"{base}/tickets/{number}")
        _search(page, q)
        expect(page).to_have_url(re.compile(r"/tickets\?"))
        rows = page.get_by_test_id("ticket-row")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-number", str(number))
        snippet = rows.first.get_by_test_id("search-snippet")
        expect(snippet).to_contain_text("magazynie zrywa się")
        expect(snippet.locator("mark").first).to_be_visible()
        # Escaped, not markup: the mail's "<pilną>" shows as text.
        expect(snippet).to_contain_text("<pilną>")
    expect(page.get_by_test_id("search-snippet").locator("mark")).to_have_text(
        ["Łącze", "magazynie"]
    )
    page.screenshot(path=str(SHOTS / f"search-hit-{backend}-1280-pl.png"), full_page=True)
    # The note's word too, for staff.
    _search(page, "zyrafa")
    expect(page.get_by_test_id("ticket-row")).to_have_count(1)
    # "#N" opens the ticket.
    _search(page, f"#{number}")
    expect(page).to_have_url(f"{base}/tickets/{number}")
    assert refused == [], refused
    context.close()

    for width, lang in ((1280, "en"), (1920, "pl"), (1920, "en")):
        context, page, refused = _page(browser, width, lang)
        _login(page, base, "coord@support.example", "/tickets?q=%C5%82%C4%85cze+MAGAZYN")
        expect(page.get_by_test_id("search-snippet")).to_have_count(1)
        page.screenshot(path=str(SHOTS / f"search-hit-{backend}-{width}-{lang}.png"))
        assert refused == [], refused
        context.close()


def test_a_client_does_not_find_words_of_internal_notes(
    browser: Browser, server: dict[str, Any]
) -> None:
    base, number = server["base"], server["number"]
    context, page, refused = _page(browser, 1280, "pl")
    _login(page, base, "anna@acme.example", "/tickets")
    page.goto(f"{base}/tickets?q=zyrafa")
    expect(page.get_by_test_id("ticket-row")).to_have_count(0)
    page.goto(f"{base}/tickets?q=SWIATLOWODOWE")
    expect(page.get_by_test_id("ticket-row")).to_have_count(1)
    expect(page.get_by_test_id("search-snippet")).not_to_contain_text("Żyrafa")
    page.goto(f"{base}/tickets?q=%23{number}")
    expect(page).to_have_url(f"{base}/tickets/{number}")
    assert refused == [], refused
    context.close()
