"""Contacts copied on a ticket (core.tickets.contacts): by mail, by the API and the console,
who is mailed, who sees the ticket; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import create_api_token, get_user_by_email
from core.access.permissions import can, can_view, scoped_tickets
from core.blobs import BlobStore, DirectoryBlobStore
from core.errors import Forbidden, InputError
from core.mail.models import Mailbox, OutboundMail
from core.notify import notifications
from core.tickets import contacts
from core.tickets.models import Ticket, TicketEvent
from core.tickets.services import NewTicket, add_comment, change_status, open_ticket
from tests.factories import World, at, build_world
from tests.mail_builders import build, decision, deliver, ticket_of
from web.app import create_app

DOMAIN = "support.example"
NOW = at("2026-03-02 09:00")


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    session.add_all(
        [
            Mailbox(address="acme@support.example", contract=w.acme_contract),
            Mailbox(address="pomoc@support.example", contract=None),
        ]
    )
    w.users["client2"].language = "en"
    session.flush()
    session.info["notify"] = notifications.NotifyConfig(DOMAIN, "https://desk.example")
    return w


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return DirectoryBlobStore(tmp_path / "blobs")


def mails(session: Session, template: str) -> list[OutboundMail]:
    stmt = select(OutboundMail).where(OutboundMail.template == template)
    return list(session.scalars(stmt.order_by(OutboundMail.id)))


def to(session: Session, template: str) -> dict[str, str]:
    return {m.to_addr: m.language for m in mails(session, template)}


def copied_emails(ticket: Ticket) -> list[str]:
    return [p.email for p in contacts.copied(ticket)]


def web_ticket(session: Session, world: World, **kwargs: Any) -> Ticket:
    new = NewTicket(
        subject="Drukarka nie drukuje",
        requester=world.users["client"],
        contract=world.acme_contract,
        at=NOW,
        **kwargs,
    )
    return open_ticket(session, new)


# --- Mail in ---------------------------------------------------------------------------------


def test_a_new_mail_copies_the_clients_contacts_and_never_a_stranger(
    session: Session, world: World, blobs: BlobStore
) -> None:
    raw = build(
        to="acme@support.example, Kasia <kasia@acme.example>",
        Cc="Piotr <piotr@acme.example>, evil@other.example, coord@support.example, "
        "pomoc@support.example, ewa@beta.example",
    )
    row = deliver(session, blobs, raw, envelope_to=["acme@support.example"])
    ticket = ticket_of(session, row)
    # An existing contact of Acme, and a new address in Acme's domain (made a contact).
    assert copied_emails(ticket) == ["kasia@acme.example", "piotr@acme.example"]
    assert get_user_by_email(session, "kasia@acme.example").client == world.acme  # type: ignore[union-attr]
    assert get_user_by_email(session, "evil@other.example") is None
    hit = decision(row, "copied")
    assert hit["result"] == ["piotr@acme.example", "kasia@acme.example"]
    assert set(hit["not_copied"]) == {
        "evil@other.example",
        "coord@support.example",
        "ewa@beta.example",
    }
    assert "stranger" in hit["not_copied"]["evil@other.example"]
    # The acknowledgement goes to the requester and to each copied contact, in their language.
    assert to(session, "ticket_ack") == {
        "anna@acme.example": "pl",
        "piotr@acme.example": "en",
        "kasia@acme.example": "pl",
    }
    [event] = [e for e in ticket.events if e.type == "cc"]
    assert not event.public and event.author == world.users["client"]


def test_a_triage_ticket_copies_nobody_from_mail(
    session: Session, world: World, blobs: BlobStore
) -> None:
    raw = build(frm="who@nowhere.example", Cc="friend@nowhere.example, piotr@acme.example")
    row = deliver(session, blobs, raw)
    ticket = ticket_of(session, row)
    assert ticket.client is None and copied_emails(ticket) == []
    assert decision(row, "copied")["result"] == []
    assert to(session, "ticket_ack") == {"who@nowhere.example": "pl"}


def test_a_follow_up_mail_copies_new_contacts_of_the_same_client(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket = web_ticket(session, world)
    raw = build(
        subject=f"Re: [#{ticket.number}] Drukarka",
        Cc="piotr@acme.example, evil@other.example",
    )
    row = deliver(session, blobs, raw)
    assert ticket_of(session, row).id == ticket.id
    assert copied_emails(ticket) == ["piotr@acme.example"]
    assert "evil@other.example" in decision(row, "copied")["not_copied"]
    # The copied contact may now write to the thread themselves.
    reply = build(frm="piotr@acme.example", subject=f"Re: [#{ticket.number}] Drukarka")
    assert ticket_of(session, deliver(session, blobs, reply)).id == ticket.id


# --- Who is mailed ---------------------------------------------------------------------------


def test_comments_and_visible_statuses_reach_copied_contacts_but_not_their_author(
    session: Session, world: World
) -> None:
    u = world.users
    ticket = web_ticket(session, world, cc=[u["client2"]])
    assert to(session, "ticket_ack") == {"anna@acme.example": "pl", "piotr@acme.example": "en"}
    add_comment(session, ticket, author=u["coordinator"], body="Note", public=False, at=NOW)
    assert mails(session, "ticket_comment") == []
    add_comment(session, ticket, author=u["coordinator"], body="Toner wymieniony.", at=NOW)
    assert to(session, "ticket_comment") == {
        "anna@acme.example": "pl",
        "piotr@acme.example": "en",
    }
    change_status(session, ticket, "Internal review", actor=u["coordinator"], at=NOW)
    assert mails(session, "ticket_status") == []
    # The copied contact resolves the ticket (as a requester may): the requester hears of it.
    change_status(session, ticket, "Resolved", actor=u["client2"], at=NOW)
    assert to(session, "ticket_status") == {"anna@acme.example": "pl"}


def test_preferences_and_bounces_of_copied_contacts_are_respected(
    session: Session, world: World
) -> None:
    u = world.users
    u["client2"].notify_prefs = {"off": ["ticket_comment"]}
    u["manager"].mail_bouncing_since = NOW
    ticket = web_ticket(session, world, cc=[u["client2"], u["manager"]])
    add_comment(session, ticket, author=u["coordinator"], body="Hello", at=NOW)
    assert set(to(session, "ticket_comment")) == {"anna@acme.example"}
    assert set(to(session, "ticket_ack")) == {"anna@acme.example", "piotr@acme.example"}


# --- Who may copy whom, and who sees the ticket ----------------------------------------------


def test_who_may_be_copied_and_who_may_copy(session: Session, world: World) -> None:
    u = world.users
    ticket = web_ticket(session, world)
    for email in ("ewa@beta.example", "tech@support.example", "anna@acme.example", "x@other.ex"):
        with pytest.raises(InputError):
            contacts.contact_for(session, ticket, email)
    # The requester copies a colleague; the copied colleague copies nobody.
    contacts.add_contact(session, ticket, u["client2"], actor=u["client"], at=NOW)
    assert can(u["client"], "cc", ticket) and not can(u["client2"], "cc", ticket)
    with pytest.raises(Forbidden):
        contacts.add_contact(session, ticket, u["manager"], actor=u["client2"], at=NOW)
    assert not can(u["subcontractor"], "cc", ticket)
    assert not can(u["technician"], "cc", ticket)  # not assigned: cannot see it
    assert can(u["manager"], "cc", ticket) and can(u["coordinator"], "cc", ticket)


def test_a_copied_contact_sees_the_ticket_while_copied(session: Session, world: World) -> None:
    u = world.users
    ticket = web_ticket(session, world)

    def visible() -> bool:
        ids = session.scalars(scoped_tickets(u["client2"]).with_only_columns(Ticket.id))
        return ticket.id in set(ids)

    assert not visible() and not can_view(u["client2"], ticket)
    contacts.add_contact(session, ticket, u["client2"], actor=u["coordinator"], at=NOW)
    assert visible() and can_view(u["client2"], ticket)
    event = contacts.remove_contact(session, ticket, "piotr@acme.example", actor=u["client"])
    assert event is not None and event.data == {"removed": ["piotr@acme.example"]}
    session.expire(ticket)
    assert not visible() and not can_view(u["client2"], ticket)
    # A contact moved to another client stops seeing a ticket they were copied on.
    contacts.add_contact(session, ticket, u["client2"], actor=u["coordinator"], at=NOW)
    u["client2"].client = world.beta
    session.flush()
    assert not visible() and not can_view(u["client2"], ticket)
    assert copied_emails(ticket) == []


# --- API -------------------------------------------------------------------------------------


@pytest.fixture
def api(session: Session, tmp_path: Any) -> Iterator[TestClient[Any]]:
    conn = session.connection()
    app = create_app(
        Settings(data_dir=tmp_path, secret_key="t"),
        session_factory=lambda: Session(bind=conn, join_transaction_mode="create_savepoint"),
    )
    with TestClient(app) as c:
        yield c


def bearer(session: Session, world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(session, world.users[role])}"}


def test_api_adds_lists_and_removes_copied_contacts(
    session: Session, world: World, api: TestClient[Any]
) -> None:
    ticket = web_ticket(session, world)
    n = ticket.number
    coord = bearer(session, world, "coordinator")
    assert api.get(f"/api/v1/tickets/{n}", headers=coord).json()["cc"] == []
    r = api.post(f"/api/v1/tickets/{n}/cc", json={"email": "Piotr@Acme.example"}, headers=coord)
    assert r.status_code == 200, r.text
    assert r.json()["cc"] == ["piotr@acme.example"]
    assert api.get(f"/api/v1/tickets/{n}", headers=coord).json()["cc"] == ["piotr@acme.example"]
    # The copied contact now sees it through the API, and may not copy others.
    piotr = bearer(session, world, "client2")
    assert api.get(f"/api/v1/tickets/{n}", headers=piotr).status_code == 200
    r = api.post(f"/api/v1/tickets/{n}/cc", json={"email": "boss@acme.example"}, headers=piotr)
    assert r.status_code == 403 and "copied" in r.json()["detail"]
    r = api.post(f"/api/v1/tickets/{n}/cc", json={"email": "evil@other.example"}, headers=coord)
    assert r.status_code == 400 and "not a contact of Acme" in r.json()["detail"]
    r = api.delete(f"/api/v1/tickets/{n}/cc/piotr@acme.example", headers=coord)
    assert r.status_code == 200 and r.json()["cc"] == []
    r = api.delete(f"/api/v1/tickets/{n}/cc/piotr@acme.example", headers=coord)
    assert r.status_code == 404 and r.json()["detail"]
    assert api.get(f"/api/v1/tickets/{n}", headers=piotr).status_code == 404


def test_api_opens_a_ticket_with_copied_contacts(
    session: Session, world: World, api: TestClient[Any]
) -> None:
    body = {"subject": "Skaner", "requester": "anna@acme.example", "cc": ["piotr@acme.example"]}
    r = api.post("/api/v1/tickets", json=body, headers=bearer(session, world, "client"))
    assert r.status_code == 201, r.text
    assert r.json()["cc"] == ["piotr@acme.example"]
    body["cc"] = ["ewa@beta.example"]
    r = api.post("/api/v1/tickets", json=body, headers=bearer(session, world, "client"))
    assert r.status_code == 400 and "not a contact of Acme" in r.json()["detail"]
    assert session.scalar(select(TicketEvent).where(TicketEvent.type == "cc")) is not None


# --- Console ---------------------------------------------------------------------------------


def test_console_form_copies_and_uncopies_a_contact(tmp_path: Path) -> None:
    from tests.e2e.conftest import build_seeded_app, console_client

    instance = build_seeded_app(tmp_path)
    number = instance.numbers["key_new"]
    coord, csrf = console_client(instance.app, instance.users["coordinator"])
    piotr, _ = console_client(instance.app, instance.users["client2"])
    assert piotr.get(f"/tickets/{number}").status_code == 404
    page = coord.get(f"/tickets/{number}").text
    assert 'data-testid="cc-form"' in page and 'data-testid="copied"' not in page
    form = {"csrf_token": csrf, "email": "piotr@acme.example", "action": "add"}
    assert coord.post(f"/tickets/{number}/cc", data={**form, "csrf_token": ""}).status_code == 403
    r = coord.post(f"/tickets/{number}/cc", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = coord.get(f"/tickets/{number}").text
    assert re.search(r'data-testid="copied">piotr@acme\.example<', page)
    assert piotr.get(f"/tickets/{number}").status_code == 200
    r = coord.post(f"/tickets/{number}/cc", data={**form, "email": "evil@other.example"})
    assert r.status_code == 400 and "evil@other.example" in r.text
    r = coord.post(f"/tickets/{number}/cc", data={**form, "action": "remove"})
    assert r.status_code == 200 and 'data-testid="copied"' not in r.text
    assert piotr.get(f"/tickets/{number}").status_code == 404
