"""Security headers, the console under its Content-Security-Policy, remote images in mail and
the offline /schema, in a real Chromium against a live server (issue 11).

The instance is the e2e world (``tests.e2e.conftest``) plus one HTML mail on the ``key_new``
ticket whose image points at a local HTTP server that counts the requests it gets: the
sender's read receipt. Browsers speak Polish, the product's default.
"""

from __future__ import annotations

import re
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect
from sqlalchemy import select

from core.clock import utcnow
from core.tickets.models import Ticket
from core.tickets.timeline import append_event
from tests.e2e.conftest import LiveServer, _serve, build_seeded_app

pytestmark = pytest.mark.browser

# A 1x1 transparent PNG.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


@dataclass
class ImageServer:
    """A sender's server: counts the requests for its images."""

    url: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def image_server() -> Iterator[ImageServer]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PIXEL)))
            self.end_headers()
            self.wfile.write(PIXEL)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ImageServer(f"http://127.0.0.1:{server.server_address[1]}", hits)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Desk:
    server: LiveServer
    html_ticket: int
    html_event: int


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, image_server: ImageServer) -> Iterator[Desk]:
    seeded = build_seeded_app(tmp_path_factory.mktemp("pulpit-headers"))
    number = seeded.numbers["key_new"]
    with seeded.factory() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        event = append_event(
            session,
            ticket,
            "email_in",
            author=ticket.requester,
            at=utcnow(),
            public=True,
            body_html=(
                "<p>Dzień dobry, <b>drukarka</b> dalej pokazuje błąd E05.</p>"
                f'<p><img src="{image_server.url}/track.png?who=reader" alt="logo nadawcy"'
                ' width="120" height="40"></p><p>Pozdrawiam, Anna</p>'
            ),
            data={"subject": "Re: Awaria drukarki", "from": ticket.requester.email},
            message_id="<html-mail@acme.example>",
        )
        session.commit()
        event_id = event.id
    server, thread, sock, base_url = _serve(seeded.app)
    try:
        yield Desk(
            LiveServer(base_url, seeded.settings, seeded.numbers, seeded.users),
            number,
            event_id,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class Watched:
    page: Page
    console: list[str]


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    """A Polish page whose console messages and script errors are collected."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="pl-PL")
    context.set_default_timeout(10_000)
    page = context.new_page()
    seen: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        seen.append(f"{msg.type}: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.append(f"pageerror: {exc}"))
    yield Watched(page, seen)
    context.close()


def csp_violations(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or "Refused to" in m]


def login(page: Page, server: LiveServer, role: str = "coordinator") -> None:
    page.goto(server.url("/tickets"))
    page.get_by_label("E-mail").fill(server.users[role])
    page.get_by_label("Hasło").fill(server.password)
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(server.url("/tickets"))
    page.wait_for_load_state()


def shot(page: Page, name: str) -> None:
    """A full-page screenshot in /tmp, for people reviewing the look."""
    page.screenshot(path=str(Path("/tmp") / f"{name}.png"), full_page=True)


def headers_of(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return {k.lower(): v for k, v in resp.headers.items()}


# --- Headers ----------------------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(desk: Desk) -> None:
    page = headers_of(desk.server.url("/login"))
    csp = page["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp and "http:" not in csp
    for headers in (page, headers_of(desk.server.url("/api/v1/health"))):
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["x-frame-options"] == "DENY"
    api = headers_of(desk.server.url("/api/v1/health"))
    assert api["content-security-policy"].startswith("default-src 'none'")
    static = headers_of(desk.server.url("/static/pulpit.js"))
    assert static["x-content-type-options"] == "nosniff"
    # Each header once: the app sets them, nginx (deploy/nginx) no longer repeats them.
    with urllib.request.urlopen(desk.server.url("/login"), timeout=10) as resp:
        assert len(resp.headers.get_all("Content-Security-Policy") or []) == 1
        assert len(resp.headers.get_all("X-Content-Type-Options") or []) == 1


# --- The console under its policy ---------------------------------------------------------------


def test_console_pages_work_under_the_policy(watched: Watched, desk: Desk) -> None:
    page, server = watched.page, desk.server
    login(page, server)
    expect(page.get_by_test_id("ticket-row").first).to_be_visible()
    # pulpit.js runs: "?" opens the shortcut help, j highlights a row.
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    expect(page.locator("tr.current")).to_have_count(1)
    page.goto(server.url(f"/tickets/{server.numbers['key_assigned']}"))
    expect(page.get_by_test_id("event").first).to_be_visible()
    page.goto(server.url("/tickets/new"))
    contract = page.locator("[data-contract-select]")
    if contract.count():
        contract.select_option("BETA-STD")
        hidden = page.locator('[data-type-select] optgroup[data-contract="ACME-KEY"]')
        expect(hidden).to_have_attribute("hidden", "")
    page.goto(server.url(f"/tickets/{desk.html_ticket}"))
    frame = page.frame_locator("iframe.event-html").first
    expect(frame.locator("body")).to_contain_text("drukarka")
    assert csp_violations(watched.console) == [], watched.console


# --- Remote images in mail ----------------------------------------------------------------------


def test_remote_images_are_fetched_only_after_show_images(
    watched: Watched, desk: Desk, image_server: ImageServer
) -> None:
    page, server = watched.page, desk.server
    image_server.hits.clear()
    login(page, server)
    page.goto(server.url(f"/tickets/{desk.html_ticket}"))
    mail = page.locator(f"#e{desk.html_event}")
    frame = page.frame_locator(f"#e{desk.html_event} iframe.event-html")
    expect(frame.locator("body")).to_contain_text("Pozdrawiam, Anna")
    expect(mail.get_by_test_id("remote-images")).to_contain_text("Nie pokazano 1 obrazu")
    page.wait_for_timeout(1000)  # time enough for a request that should not come
    assert image_server.hits == []
    assert csp_violations(watched.console) == [], watched.console
    shot(page, "pulpit-mail-images-blocked")

    mail.get_by_test_id("show-images").click()
    expect(page).to_have_url(re.compile(rf"\?images={desk.html_event}"))
    expect(frame.locator("img")).to_have_attribute("src", re.compile("track.png"))
    deadline = 50
    while not image_server.hits and deadline:
        page.wait_for_timeout(100)
        deadline -= 1
    assert image_server.hits == ["/track.png?who=reader"]
    expect(mail.get_by_test_id("hide-images")).to_be_visible()
    shot(page, "pulpit-mail-images-shown")

    # Another mail's images stay blocked on that page; going back blocks this one again.
    image_server.hits.clear()
    mail.get_by_test_id("hide-images").click()
    expect(mail.get_by_test_id("show-images")).to_be_visible()
    page.wait_for_timeout(500)
    assert image_server.hits == []


# --- /schema without internet -------------------------------------------------------------------


def test_schema_renders_with_no_internet(watched: Watched, desk: Desk) -> None:
    page = watched.page
    outside: list[str] = []

    def local_only(route: Route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "blob:", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(desk.server.url("/schema"))
    expect(page.get_by_role("heading", name=re.compile("Pulpit API"))).to_be_visible(timeout=20_000)
    expect(page.get_by_text("One ticket with its timeline").first).to_be_attached()
    assert outside == [], outside
    # Redoc's sidebar links its maker with a logo from their CDN: the policy blocks it, which is
    # the point (the page asks nothing of the internet); nothing else may be refused.
    others = [m for m in csp_violations(watched.console) if "cdn.redoc.ly" not in m]
    assert others == [], watched.console


# --- Error pages: the layout, in the user's language --------------------------------------------


def test_error_pages_in_polish_and_english(watched: Watched, desk: Desk) -> None:
    page, server = watched.page, desk.server
    login(page, server)
    page.goto(server.url("/attachments/987654"))
    expect(page.get_by_test_id("error")).to_contain_text("Nie znaleziono")
    expect(page.get_by_test_id("error")).to_contain_text("załącznik 987654 nie istnieje")
    expect(page.get_by_test_id("whoami")).to_contain_text("Ola Koordynator")
    shot(page, "pulpit-error-pl")
    page.goto(server.url("/lang/en"))
    page.goto(server.url("/attachments/987654"))
    expect(page.get_by_test_id("error")).to_contain_text("Not found")
    expect(page.get_by_test_id("error")).to_contain_text("attachment 987654 does not exist")
    expect(page.get_by_test_id("whoami")).to_contain_text("Ola Koordynator")
    shot(page, "pulpit-error-en")
    assert csp_violations(watched.console) == [], watched.console
