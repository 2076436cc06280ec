"""Notification preferences (core.notify.preferences): which events mail a user, narrowed to clients
and products; honoured by core.notify.notifications and core.sla.watch; the API and the console page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.access.accounts import create_api_token, upsert_user
from core.directory.models import Product, User
from core.errors import InputError
from core.mail.models import OutboundMail
from core.notify import notifications
from core.notify.preferences import EVENT_KINDS, get_preferences, set_preferences, wants
from core.sla import watch as sla_watch
from core.tickets import services as svc
from core.tickets.models import Ticket
from tests.factories import World, at, build_world
from web.app import create_app

NOW = at("2026-11-23 08:00")  # Mon 09:00 Warsaw; Acme failure: reaction 2h


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    w.users["coordinator2"] = upsert_user(
        session, email="coord2@support.example", role="coordinator", name="Coordinator2"
    )
    session.flush()
    session.info["notify"] = notifications.NotifyConfig("support.example", "https://desk.example")
    return w


def mails(session: Session, template: str) -> list[str]:
    stmt = select(OutboundMail.to_addr).where(OutboundMail.template == template)
    return sorted(session.scalars(stmt.order_by(OutboundMail.id)))


def open_ticket(session: Session, world: World, *, beta: bool = False, **kw: Any) -> Ticket:
    return svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Drukarka nie drukuje",
            requester=world.users["beta" if beta else "client"],
            contract=world.beta_contract if beta else world.acme_contract,
            at=NOW,
            **kw,
        ),
    )


def turn_off(session: Session, user: User, *kinds: str, **lists: list[str]) -> None:
    set_preferences(session, user, events=dict.fromkeys(kinds, False), **lists)


# --- Mails -----------------------------------------------------------------------------------


def test_the_defaults_keep_every_mail(session: Session, world: World) -> None:
    assert all(
        get_preferences(u).events == dict.fromkeys(EVENT_KINDS, True) for u in world.users.values()
    )
    ticket = open_ticket(session, world)
    assert mails(session, "ticket_ack") == ["anna@acme.example"]
    assert mails(session, "ticket_new") == ["coord2@support.example", "coord@support.example"]
    svc.assign(
        session,
        ticket,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=None,
        at=NOW,
    )
    assert mails(session, "ticket_assigned") == ["tech@support.example"]


def test_turning_off_ticket_new_stops_it_for_that_coordinator_only(
    session: Session, world: World
) -> None:
    turn_off(session, world.users["coordinator"], "ticket_new")
    open_ticket(session, world)
    assert mails(session, "ticket_new") == ["coord2@support.example"]
    assert mails(session, "ticket_ack") == ["anna@acme.example"]
    assert get_preferences(world.users["coordinator"]).events["ticket_new"] is False


def test_the_acknowledgement_cannot_be_turned_off(session: Session, world: World) -> None:
    client = world.users["client"]
    with pytest.raises(InputError, match="receipt"):
        set_preferences(session, client, events={"ticket_ack": False})
    turn_off(session, client, "ticket_status", "ticket_comment")
    ticket = open_ticket(session, world)
    assert mails(session, "ticket_ack") == ["anna@acme.example"]
    svc.add_comment(session, ticket, author=world.users["coordinator"], body="Jadę", at=NOW)
    svc.change_status(session, ticket, "In progress", actor=world.users["coordinator"], at=NOW)
    assert mails(session, "ticket_comment") == [] and mails(session, "ticket_status") == []


def test_narrowing_to_a_client_filters_other_clients_tickets(
    session: Session, world: World
) -> None:
    set_preferences(session, world.users["coordinator"], events={}, clients=["beta"])
    assert get_preferences(world.users["coordinator"]).clients == ["Beta"]  # canonical name
    open_ticket(session, world)
    assert mails(session, "ticket_new") == ["coord2@support.example"]
    open_ticket(session, world, beta=True)
    assert mails(session, "ticket_new") == [
        "coord2@support.example",
        "coord2@support.example",
        "coord@support.example",
    ]


def test_narrowing_to_a_product(session: Session, world: World) -> None:
    session.add(Product(name="Router R5"))
    session.flush()
    coordinator = world.users["coordinator"]
    set_preferences(session, coordinator, events={}, products=["Router R5"])
    printer = session.scalars(select(Product).where(Product.name == "Printer X200")).one()
    with_printer = open_ticket(session, world, product=printer)
    assert not wants(coordinator, "ticket_new", with_printer)
    assert "coord@support.example" not in mails(session, "ticket_new")
    # A ticket whose product is not known yet still reaches a narrowed coordinator.
    open_ticket(session, world)
    assert "coord@support.example" in mails(session, "ticket_new")


def test_sla_mails_respect_preferences(session: Session, world: World) -> None:
    ticket = open_ticket(session, world)
    svc.assign(
        session,
        ticket,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=None,
        at=NOW,
    )
    session.flush()
    turn_off(session, world.users["technician"], "sla_warning")
    set_preferences(session, world.users["coordinator2"], events={}, clients=["Beta"])

    def check(when: str) -> None:
        sla_watch.check_ticket(
            session, ticket.id, at(when), mail_domain="desk.example", public_url="https://x"
        )

    check("2026-11-23 09:40")
    assert mails(session, "sla_warning") == ["coord@support.example"]
    turn_off(session, world.users["coordinator"], "sla_breach")
    check("2026-11-23 10:00")
    assert mails(session, "sla_breach") == ["tech@support.example"]


def test_refusals_change_nothing(session: Session, world: World) -> None:
    coordinator = world.users["coordinator"]
    turn_off(session, coordinator, "sla_warning")
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"events": {"ticket_nwe": False}}, "no event kind 'ticket_nwe'"),
        ({"events": {"ticket_new": "no"}}, "true or false"),
        ({"events": {}, "clients": ["Gamma"]}, "no client named 'Gamma'"),
        ({"events": {}, "products": ["Toaster"]}, "no product named 'Toaster'"),
    ]
    for kwargs, sentence in refusals:
        with pytest.raises(InputError, match=re.escape(sentence)):
            set_preferences(session, coordinator, **kwargs)
    assert get_preferences(coordinator).events["sla_warning"] is False
    with pytest.raises(InputError, match="requesters cannot"):
        set_preferences(session, world.users["client"], events={}, clients=["Acme"])
    # Everything back on stores the defaults again.
    set_preferences(session, coordinator, events={})
    assert coordinator.notify_prefs is None


# --- API -------------------------------------------------------------------------------------


@pytest.fixture
def client(session: Session, tmp_path: Any) -> Iterator[TestClient[Any]]:
    factory = sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    app = create_app(Settings(data_dir=tmp_path, secret_key="test"), session_factory=factory)
    with TestClient(app) as c:
        yield c


def test_api_round_trip_and_refusals(
    client: TestClient[Any], session: Session, world: World
) -> None:
    h = {"Authorization": f"Bearer {create_api_token(session, world.users['technician'])}"}
    r = client.get("/api/v1/me/preferences", headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"events": dict.fromkeys(EVENT_KINDS, True), "clients": [], "products": []}
    body = {"events": {"ticket_reply": False}, "clients": ["Acme"], "products": ["printer x200"]}
    r = client.put("/api/v1/me/preferences", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["events"]["ticket_reply"] is False
    assert r.json()["products"] == ["Printer X200"]
    again = client.get("/api/v1/me/preferences", headers=h).json()
    assert again == r.json() and again["clients"] == ["Acme"]
    for bad, sentence in [
        ({"events": {"coffee": True}}, "no event kind 'coffee'"),
        ({"events": {"ticket_ack": False}}, "cannot be turned off"),
        ({"clients": ["Gamma"]}, "no client named 'Gamma'"),
        ({"products": ["Toaster"]}, "no product named 'Toaster'"),
    ]:
        r = client.put("/api/v1/me/preferences", json=bad, headers=h)
        assert r.status_code == 400, r.text
        assert sentence in r.json()["detail"]
    assert client.get("/api/v1/me/preferences", headers=h).json() == again
    assert client.get("/api/v1/me/preferences").status_code == 401


# --- Console ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.e2e.conftest import build_seeded_app

    return build_seeded_app(tmp_path_factory.mktemp("console-preferences"))


def test_console_profile_renders_and_saves(instance: Any) -> None:
    from tests.e2e.conftest import console_client

    client, csrf = console_client(instance.app, instance.users["coordinator"])
    assert 'href="/profile"' in client.get("/tickets").text
    page = client.get("/profile")
    assert page.status_code == 200
    assert page.text.count('name="events"') == len(EVENT_KINDS)
    assert 'data-testid="event-ticket_new" checked' in page.text
    assert 'name="clients" value="Beta"' in page.text  # a checkbox, not a multi-select
    form = {
        "csrf_token": csrf,
        "events": [k for k in EVENT_KINDS if k != "ticket_new"],
        "clients": ["Acme"],
    }
    assert client.post("/profile", data={**form, "csrf_token": "forged"}).status_code == 403
    r = client.post("/profile", data={**form, "clients": ["Gamma"]})
    assert r.status_code == 400 and "no client named" in r.text
    r = client.post("/profile", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/profile"
    page = client.get("/profile")
    assert 'data-testid="flash"' in page.text
    assert 'data-testid="event-ticket_new">' in page.text  # unchecked now
    assert 'data-testid="event-ticket_reply" checked' in page.text
    assert 'name="clients" value="Acme" checked' in page.text
    with instance.factory() as session:
        from core.access.accounts import get_user_by_email

        user = get_user_by_email(session, instance.users["coordinator"])
        assert user is not None
        prefs = get_preferences(user)
        assert prefs.events["ticket_new"] is False and prefs.clients == ["Acme"]


def test_console_profile_for_a_requester(instance: Any) -> None:
    from tests.e2e.conftest import console_client

    client, csrf = console_client(instance.app, instance.users["client"])
    page = client.get("/profile")
    assert page.status_code == 200
    assert 'name="clients"' not in page.text
    assert page.text.count('name="events"') == 2
    r = client.post("/profile", data={"csrf_token": csrf, "events": ["ticket_comment"]})
    assert r.status_code == 200  # followed back to the profile
    assert 'data-testid="event-ticket_status">' in r.text
