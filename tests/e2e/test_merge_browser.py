"""Merging two tickets and splitting a mail out, in a real browser (issue 15): the coordinator
merges the client's second ticket into the first after a confirmation naming both, a later
reply to the merged ticket lands in the target, and that reply is split out again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from core.blobs import DirectoryBlobStore
from core.clock import utcnow
from core.db import make_engine, make_session_factory
from core.mail.inbound import store_inbound
from mailgw.process import process_inbound
from tests.e2e.conftest import LiveServer, start_live_server
from tests.e2e.test_console_browser import login
from tests.mail_builders import build

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    gen = start_live_server(tmp_path_factory.mktemp("merge-live"))
    yield next(gen)
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


def shot(page: Page, name: str, testid: str | None = None) -> None:
    """The page (and the part named ``testid``, scrolled into view) for people reviewing the
    look."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if testid is not None:
        part = page.get_by_test_id(testid).first
        part.scroll_into_view_if_needed()
        part.screenshot(path=str(SHOTS / f"merge-{name}-part.png"))
        page.screenshot(path=str(SHOTS / f"merge-{name}.png"))
    else:
        page.screenshot(path=str(SHOTS / f"merge-{name}.png"), full_page=True)


def english(page: Page, server: LiveServer, on: bool) -> None:
    lang = "en" if on else "pl"
    page.context.add_cookies([{"name": "lang", "value": lang, "url": server.base_url}])
    page.reload()


def mail_in(server: LiveServer, raw: bytes) -> None:
    """A mail arriving as the gateway stores and processes it, into the live instance."""
    engine = make_engine(server.settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            blobs = DirectoryBlobStore(server.settings.blob_dir)
            now = utcnow()
            row = store_inbound(
                session,
                raw,
                source="smtp",
                blobs=blobs,
                envelope_from="anna@acme.example",
                envelope_to=["acme@support.example"],
                now=now,
            )
            done = process_inbound(
                session, row.id, blobs=blobs, mail_domain="support.example", now=now
            )
            assert done.state == "processed", (done.reason, done.decisions)
            session.commit()
    finally:
        engine.dispose()


def test_two_tickets_merge_and_a_later_reply_to_the_source_lands_in_the_target(
    page: Page, live_server: LiveServer
) -> None:
    source = live_server.numbers["key_new"]  # Anna: "Awaria drukarki w księgowości"
    target = live_server.numbers["client_web"]  # Anna: "Skaner nie wysyła na e-mail"
    login(page, live_server, "coordinator", start=f"/tickets/{source}")

    card = page.get_by_test_id("merge-card")
    card.get_by_text("Scal z…").click()
    page.get_by_test_id("merge-into").fill(f"#{target}")
    shot(page, "form-pl", "merge-card")
    page.get_by_test_id("merge-submit").click()
    expect(page.get_by_test_id("merge-question")).to_have_text(
        f"Scalić #{source} „Awaria drukarki w księgowości” ze zgłoszeniem "
        f"#{target} „Skaner nie wysyła na e-mail”?"
    )
    shot(page, "confirm-pl", "merge-card")
    english(page, live_server, True)
    # A reload after a POST re-posts nothing: the page comes back as it is, so ask again.
    page.goto(live_server.url(f"/tickets/{source}"))
    page.get_by_test_id("merge-card").get_by_text("Merge into…").click()
    page.get_by_test_id("merge-into").fill(str(target))
    page.get_by_test_id("merge-submit").click()
    expect(page.get_by_test_id("merge-question")).to_have_text(
        f"Merge #{source} “Awaria drukarki w księgowości” into "
        f"#{target} “Skaner nie wysyła na e-mail”?"
    )
    shot(page, "confirm-en", "merge-card")
    english(page, live_server, False)
    page.goto(live_server.url(f"/tickets/{source}"))
    page.get_by_test_id("merge-card").get_by_text("Scal z…").click()
    page.get_by_test_id("merge-into").fill(str(target))
    page.get_by_test_id("merge-submit").click()
    page.get_by_test_id("merge-confirm").click()

    # On the target, with the source's mail, and a line saying so.
    expect(page).to_have_url(re.compile(rf"/tickets/{target}(#e\d+)?$"))
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("Drukarka X200 pokazuje błąd E05")
    expect(page.get_by_test_id("merge-event")).to_contain_text(f"#{source}")
    expect(page.get_by_test_id("merged-from")).to_contain_text(f"#{source}")
    shot(page, "target-pl")

    # The source: closed, with the banner pointing to the target.
    page.goto(live_server.url(f"/tickets/{source}"))
    banner = page.get_by_test_id("merged-banner")
    expect(banner).to_contain_text(f"Scalono ze zgłoszeniem #{target}")
    expect(page.get_by_test_id("merge-card")).to_have_count(0)
    shot(page, "source-pl")
    english(page, live_server, True)
    expect(page.get_by_test_id("merged-banner")).to_contain_text(f"Merged into #{target}")
    shot(page, "source-en")
    english(page, live_server, False)

    # Anna answers the source's thread later: the reply lands in the target.
    mail_in(
        live_server,
        build(
            frm="Anna Nowak <anna@acme.example>",
            to="acme@support.example",
            subject=f"Re: [#{source}] Awaria drukarki w księgowości",
            body="Drukarka nadal pokazuje E05, skaner też nie działa.",
            In_Reply_To="<key_new@mail.example>",
            message_id="<later-reply@acme.example>",
        ),
    )
    page.get_by_test_id("merged-into-link").click()
    expect(page).to_have_url(live_server.url(f"/tickets/{target}"))
    reply = page.get_by_test_id("event").filter(has_text="Drukarka nadal pokazuje E05")
    expect(reply).to_have_count(1)

    # That reply was about something else too: split it out into a new ticket.
    page.on("dialog", lambda dialog: dialog.accept())
    shot(page, "split-pl", "split-form")
    reply.get_by_test_id("split-submit").click()
    expect(page.get_by_test_id("subject")).to_have_text("Awaria drukarki w księgowości")
    expect(page.get_by_test_id("timeline")).to_contain_text("Drukarka nadal pokazuje E05")
    expect(page.get_by_test_id("split-event")).to_contain_text(f"#{target}")
    shot(page, "split-new-pl")
    english(page, live_server, True)
    shot(page, "split-new-en")
    page.goto(live_server.url(f"/tickets/{target}"))
    shot(page, "target-en")
    english(page, live_server, False)


def test_a_client_is_offered_neither_merge_nor_split(page: Page, live_server: LiveServer) -> None:
    number = live_server.numbers["key_assigned"]
    login(page, live_server, "client2", start=f"/tickets/{number}")
    expect(page.get_by_test_id("timeline")).to_be_visible()
    expect(page.get_by_test_id("merge-card")).to_have_count(0)
    expect(page.get_by_test_id("split-form")).to_have_count(0)
