"""Handing a ticket to a subcontractor (issue 12): the suggestions' order and reasons, the API,
and the console's confirmation before a hand-off outside the contract."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import create_api_token
from core.directory.models import Subcontractor
from core.tickets import services as svc
from core.tickets.handoff import OutsideContract, suggest_subcontractors
from core.tickets.models import Ticket
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client
from tests.factories import World, at, build_world
from web.app import create_app
from web.i18n import Translator


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    # FixIt serves ACME-2026 already; two more serve it, one serves only BETA-247.
    session.add_all(
        [
            Subcontractor(name="Alfa", contracts=[w.acme_contract]),
            Subcontractor(name="Bravo", contracts=[w.acme_contract]),
            Subcontractor(name="Charlie", contracts=[w.beta_contract]),
        ]
    )
    session.flush()
    return w


def sub(session: Session, name: str) -> Subcontractor:
    found = session.scalar(select(Subcontractor).where(Subcontractor.name == name))
    assert found is not None
    return found


def open_ticket(
    session: Session, w: World, subject: str, *, to: str | None = None, when: str = "2026-11-02 09:00",
    beta: bool = False, closed: bool = False,
) -> Ticket:  # fmt: skip
    t = svc.open_ticket(
        session,
        svc.NewTicket(
            subject=subject,
            requester=w.users["beta" if beta else "client"],
            contract=w.beta_contract if beta else w.acme_contract,
            subcontractor=sub(session, to) if to else None,
            at=at(when),
        ),
    )
    if closed:
        svc.change_status(session, t, "Resolved", actor=w.users["coordinator"], at=at(when))
    session.flush()
    return t


def names(session: Session, ticket: Ticket) -> list[tuple[str, bool, int]]:
    return [
        (s.subcontractor.name, s.serves_contract, s.open_tickets)
        for s in suggest_subcontractors(session, ticket)
    ]


def test_serving_first_then_fewest_open_tickets(session: Session, world: World) -> None:
    open_ticket(session, world, "one", to="FixIt")
    open_ticket(session, world, "two", to="FixIt")
    open_ticket(session, world, "three", to="Alfa")
    open_ticket(session, world, "done", to="Alfa", closed=True)  # closed ones do not count
    open_ticket(session, world, "beta", to="Charlie", beta=True)
    ticket = open_ticket(session, world, "new one")
    assert names(session, ticket) == [
        ("Bravo", True, 0),
        ("Alfa", True, 1),
        ("FixIt", True, 2),
        ("Charlie", False, 1),
    ]
    best = suggest_subcontractors(session, ticket)[1]
    assert (
        best.reason()
        == "serves contract ACME-2026 · 1 open ticket · last ticket of Acme on 2026-11-02"
    )
    assert best.reason(Translator("pl")).startswith(
        "obsługuje umowę ACME-2026 · 1 otwarte zgłoszenie"
    )


def test_ties_go_to_who_had_the_clients_latest_ticket_then_by_name(
    session: Session, world: World
) -> None:
    open_ticket(session, world, "older", to="Alfa", when="2026-11-02 09:00")
    open_ticket(session, world, "newer", to="Bravo", when="2026-11-03 09:00")
    other = open_ticket(session, world, "other client", when="2026-11-04 09:00", beta=True)
    svc.assign(
        session, other, actor=world.users["coordinator"], assignee=None,
        subcontractor=world.fixit, allow_outside_contract=True,
    )  # fmt: skip
    ticket = open_ticket(session, world, "new one", when="2026-11-05 09:00")
    # FixIt's ticket is Beta's (under a contract it does not serve): it counts as open, not
    # as this client's.
    assert [n for n, _, _ in names(session, ticket)] == ["Bravo", "Alfa", "FixIt", "Charlie"]
    nobody = open_ticket(session, world, "again", when="2026-11-06 09:00", beta=True)
    assert [n for n, _, _ in names(session, nobody)] == ["Charlie", "FixIt", "Alfa", "Bravo"]
    two = suggest_subcontractors(session, nobody)
    assert two[0].reason(Translator("pl")) == "obsługuje umowę BETA-247 · 0 otwartych zgłoszeń"
    assert two[1].reason() == "1 open ticket · last ticket of Beta on 2026-11-04"
    assert two[3].reason() == "1 open ticket"


def test_the_ticket_itself_counts_for_nobody_and_two_queries_suffice(
    session: Session, world: World
) -> None:
    for i in range(3):
        open_ticket(session, world, f"t{i}", to=["Alfa", "Bravo", "FixIt"][i])
    ticket = open_ticket(session, world, "mine", to="Alfa")
    _ = ticket.contract, ticket.client
    statements: list[str] = []
    conn = session.connection()
    listen = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(conn, "before_cursor_execute", listen)
    try:
        found = suggest_subcontractors(session, ticket)
    finally:
        event.remove(conn, "before_cursor_execute", listen)
    assert len(statements) <= 2, statements
    assert {s.subcontractor.name: s.open_tickets for s in found}["Alfa"] == 1


def test_assigning_outside_the_contract_needs_a_confirmation_and_is_recorded(
    session: Session, world: World
) -> None:
    ticket = open_ticket(session, world, "printer")
    coordinator = world.users["coordinator"]
    with pytest.raises(OutsideContract, match="Charlie does not serve contract ACME-2026"):
        svc.assign(
            session, ticket, actor=coordinator, assignee=None, subcontractor=sub(session, "Charlie")
        )
    ev = svc.assign(
        session, ticket, actor=coordinator, assignee=None, subcontractor=sub(session, "Charlie"),
        allow_outside_contract=True,
    )  # fmt: skip
    assert ev is not None and ev.data["outside_contract"] is True
    ev = svc.assign(session, ticket, actor=coordinator, assignee=None, subcontractor=world.fixit)
    assert ev is not None and ev.data["outside_contract"] is False


# --- The API ------------------------------------------------------------------------------


@pytest.fixture
def client(session: Session, tmp_path: Path) -> Iterator[TestClient[Any]]:
    conn = session.connection()

    def factory() -> Session:
        return Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)

    app = create_app(Settings(data_dir=tmp_path, secret_key="test"), session_factory=factory)
    with TestClient(app) as c:
        yield c


def auth(session: Session, user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(session, user)}"}


def test_api_suggestions_best_first_with_reasons(
    client: TestClient[Any], session: Session, world: World
) -> None:
    open_ticket(session, world, "busy", to="FixIt")
    n = open_ticket(session, world, "new").number
    h = auth(session, world.users["coordinator"])
    r = client.get(f"/api/v1/tickets/{n}/subcontractor-suggestions", headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"name": "Alfa", "reason": "serves contract ACME-2026 · 0 open tickets",
         "serves_contract": True, "open_tickets": 0},
        {"name": "Bravo", "reason": "serves contract ACME-2026 · 0 open tickets",
         "serves_contract": True, "open_tickets": 0},
        {"name": "FixIt",
         "reason": "serves contract ACME-2026 · 1 open ticket · last ticket of Acme on 2026-11-02",
         "serves_contract": True, "open_tickets": 1},
    ]  # fmt: skip
    every = client.get(f"/api/v1/tickets/{n}/subcontractor-suggestions?all=true", headers=h)
    assert [s["name"] for s in every.json()] == ["Alfa", "Bravo", "FixIt", "Charlie"]
    assert every.json()[-1] == {
        "name": "Charlie", "reason": "0 open tickets", "serves_contract": False, "open_tickets": 0,
    }  # fmt: skip


def test_api_suggestions_403_for_who_may_not_assign_404_for_who_may_not_see(
    client: TestClient[Any], session: Session, world: World
) -> None:
    n = open_ticket(session, world, "new").number
    url = f"/api/v1/tickets/{n}/subcontractor-suggestions"
    # The requester sees the ticket but may not assign it.
    r = client.get(url, headers=auth(session, world.users["client"]))
    assert r.status_code == 403 and "may not assign" in r.json()["detail"]
    assert client.get(url, headers=auth(session, world.users["beta"])).status_code == 404
    missing = client.get(
        "/api/v1/tickets/999999/subcontractor-suggestions",
        headers=auth(session, world.users["coordinator"]),
    )
    assert missing.status_code == 404


def test_api_assign_records_the_flag_and_still_refuses_outside_the_contract(
    client: TestClient[Any], session: Session, world: World
) -> None:
    n = open_ticket(session, world, "new").number
    h = auth(session, world.users["coordinator"])
    r = client.post(f"/api/v1/tickets/{n}/assign", json={"subcontractor": "Charlie"}, headers=h)
    assert r.status_code == 400 and "does not serve" in r.json()["detail"]
    r = client.post(f"/api/v1/tickets/{n}/assign", json={"subcontractor": "Alfa"}, headers=h)
    assert r.status_code == 200, r.text
    events = client.get(f"/api/v1/tickets/{n}", headers=h).json()["events"]
    assignment = [e for e in events if e["type"] == "assignment"][-1]
    assert assignment["data"]["outside_contract"] is False


# --- The console --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    seeded = build_seeded_app(tmp_path_factory.mktemp("handoff"))
    with seeded.factory() as s:
        from core.contracts.models import Contract

        std = s.scalar(select(Contract).where(Contract.code == "BETA-STD"))
        s.add(Subcontractor(name="Zeta Serwis", contracts=[std]))
        s.commit()
    return seeded


def assign_form(page: str) -> str:
    """The hand-over form (the assignee has a form of its own, so that changing the assignee
    never hands the ticket over to the preselected suggestion)."""
    match = re.search(r'data-testid="handoff-form">(.*?)</form>', page, re.S)
    assert match, "the ticket page has the hand-over form"
    return match.group(1)


def test_console_preselects_the_best_with_its_reason(instance: SeededApp) -> None:
    client, _ = console_client(instance.app, instance.users["coordinator"])
    form = assign_form(client.get(f"/tickets/{instance.numbers['key_new']}").text)
    # FixIt has key_subcontractor open; it serves ACME-KEY and is offered first, chosen.
    assert re.search(
        r'<option value="FixIt" data-serves="true" selected>FixIt — obsługuje umowę ACME-KEY'
        r" · 1 otwarte zgłoszenie",
        form,
    ), form
    assert '<optgroup label="Nie obsługują tej umowy"' in form
    assert '<option value="Zeta Serwis" data-serves="false">' in form
    assert '<option value="">— brak —</option>' in form
    client.cookies.set("lang", "en")
    form = assign_form(client.get(f"/tickets/{instance.numbers['key_new']}").text)
    assert "FixIt — serves contract ACME-KEY · 1 open ticket" in form


def test_console_asks_before_handing_outside_the_contract(instance: SeededApp) -> None:
    client, csrf = console_client(instance.app, instance.users["coordinator"])
    number = instance.numbers["key_new"]
    form = {"csrf_token": csrf, "assignee": "", "subcontractor": "Zeta Serwis"}
    r = client.post(f"/tickets/{number}/assign", data=form, follow_redirects=False)
    assert r.status_code == 400
    assert "Zeta Serwis nie obsługuje umowy ACME-KEY. Przekazać zgłoszenie mimo to?" in r.text
    assert 'name="confirm_outside" value="1"' in r.text
    assert '<option value="Zeta Serwis" data-serves="false" selected>' in r.text
    with instance.factory() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None and t.subcontractor_id is None
    r = client.post(
        f"/tickets/{number}/assign", data={**form, "confirm_outside": "1"}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"]).text
    assert 'data-testid="outside-contract-badge">poza umową</span>' in page
    with instance.factory() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None and t.subcontractor is not None
        assert t.subcontractor.name == "Zeta Serwis"
        last = [e for e in t.events if e.type == "assignment"][-1]
        assert last.data["outside_contract"] is True


def test_changing_the_assignee_keeps_a_confirmed_outside_hand_off(
    session: Session, world: World
) -> None:
    ticket = open_ticket(session, world, "printer")
    coordinator, charlie = world.users["coordinator"], sub(session, "Charlie")
    svc.assign(
        session, ticket, actor=coordinator, assignee=None, subcontractor=charlie,
        allow_outside_contract=True,
    )  # fmt: skip
    ev = svc.assign(
        session,
        ticket,
        actor=coordinator,
        assignee=world.users["technician"],
        subcontractor=charlie,
    )
    assert ev is not None and ev.data["outside_contract"] is True
