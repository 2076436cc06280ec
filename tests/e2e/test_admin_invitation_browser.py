"""An invitation in a real browser (issue 13): an administrator adds a contact to a client and
sends her an invitation from the Clients screen; she follows the mailed link, sets her
password, logs in to the portal and sees only her own tickets: none of her colleagues'."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from core.db import make_engine, make_session_factory
from core.mail.models import OutboundMail
from tests.e2e.conftest import LiveServer
from tests.e2e.test_admin_roles_browser import new_page
from tests.e2e.test_console_browser import login

pytestmark = pytest.mark.browser

CONTACT = "zofia@acme.example"


def invitation_link(server: LiveServer) -> str:
    factory = make_session_factory(make_engine(server.settings.database_url))
    with factory() as s:
        mail = s.scalars(
            select(OutboundMail).where(
                OutboundMail.to_addr == CONTACT, OutboundMail.template == "invitation"
            )
        ).one()
        url = str(mail.context["url"])
    return server.url("/password/reset/" + url.rsplit("/password/reset/", 1)[1])


def test_an_invited_contact_sets_a_password_and_sees_only_her_tickets(
    browser: Browser, live_server: LiveServer
) -> None:
    context, admin, errors = new_page(browser)
    login(admin, live_server, "admin", start="/admin/clients/Acme")
    admin.get_by_placeholder("Nowa osoba: e-mail").fill(CONTACT)
    new_row = admin.get_by_test_id("contact-row").last
    new_row.get_by_label("Imię i nazwisko").fill("Zofia Nowicka")
    admin.get_by_test_id("client-form").get_by_role("button", name="Zapisz").last.click()
    invitations = admin.get_by_test_id("invitations")
    expect(invitations).to_contain_text(CONTACT)
    invitations.locator("li", has_text=CONTACT).get_by_test_id("invite").click()
    expect(admin.get_by_test_id("flash")).to_contain_text(CONTACT)
    context.close()
    assert errors == [], errors

    # Zofia, in her own browser, from the mailed link.
    context, page, errors = new_page(browser)
    page.goto(invitation_link(live_server))
    page.get_by_label("Nowe hasło", exact=True).fill("zofia-new-pass")
    page.get_by_label("Powtórz nowe hasło").fill("zofia-new-pass")
    page.get_by_role("button", name="Ustaw hasło").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("E-mail").fill(CONTACT)
    page.get_by_label("Hasło").fill("zofia-new-pass")
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(re.compile(r"/tickets"))
    # Acme has tickets, but none is hers: the portal shows her none of them.
    expect(page.get_by_test_id("ticket-row")).to_have_count(0)
    colleague = live_server.numbers["key_new"]
    response = page.goto(live_server.url(f"/tickets/{colleague}"))
    assert response is not None and response.status == 404
    context.close()
    assert errors == [], errors
