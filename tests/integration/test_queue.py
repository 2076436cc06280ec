"""Work queues (issue 15): technicians serving a contract see its open unassigned tickets and
take one (core.tickets.queue), through the services, the YAML, the API and the console."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.accounts import create_api_token
from core.access.permissions import can, can_view, ticket_scope
from core.configuration import apply_config_text, export_config
from core.configuration.errors import ConfigError
from core.contracts.models import Contract
from core.directory.models import Role, User
from core.errors import Conflict, Forbidden, NotFound
from core.tickets import services as svc
from core.tickets.models import Ticket, TicketEvent
from core.tickets.queries import TicketFilter, search_tickets
from core.tickets.queue import queue_count, take_ticket
from tests.conftest import migrated_database
from tests.e2e.conftest import build_seeded_app, console_client
from tests.factories import World, at, build_world


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    w.acme_contract.technicians = [w.users["technician"], w.users["technician2"]]
    session.flush()
    return w


def new_ticket(session: Session, w: World, subject: str, *, beta: bool = False) -> Ticket:
    t = svc.open_ticket(
        session,
        svc.NewTicket(
            subject=subject,
            requester=w.users["beta" if beta else "client"],
            contract=w.beta_contract if beta else w.acme_contract,
            at=at("2026-11-02 09:00"),
        ),
    )
    session.flush()
    return t


def visible(session: Session, user: User) -> set[str]:
    return set(session.scalars(select(Ticket.subject).where(ticket_scope(user))))


def test_a_technician_sees_the_open_unassigned_tickets_of_contracts_they_serve(
    session: Session, world: World
) -> None:
    tech, coord = world.users["technician"], world.users["coordinator"]
    free = new_ticket(session, world, "free")
    new_ticket(session, world, "other contract", beta=True)
    closed = new_ticket(session, world, "closed")
    svc.change_status(session, closed, "Resolved", actor=coord, at=at("2026-11-02 10:00"))
    theirs = new_ticket(session, world, "someone else's")
    svc.assign(
        session, theirs, actor=coord, assignee=world.users["technician2"], subcontractor=None
    )
    session.flush()
    assert visible(session, tech) == {"free"}
    assert can_view(tech, free) and not can_view(tech, theirs) and not can_view(tech, closed)
    # The list's assignee=none is exactly the queue; its count agrees.
    page = search_tickets(
        session, tech, TicketFilter(assignee="none", state="open"), at("2026-11-02 11:00")
    )
    assert [t.subject for t in page.items] == ["free"]
    assert queue_count(session, tech) == 1
    # Someone serving nothing sees nothing of it.
    world.acme_contract.technicians = [world.users["technician2"]]
    session.flush()
    session.expire_all()
    assert visible(session, tech) == set() and queue_count(session, tech) == 0


def test_taking_assigns_writes_the_assignment_and_takes_it_from_the_others_queue(
    session: Session, world: World
) -> None:
    tech, tech2 = world.users["technician"], world.users["technician2"]
    t = new_ticket(session, world, "free")
    event = take_ticket(session, tech, t, at=at("2026-11-02 09:30"))
    session.flush()
    session.refresh(t)
    assert event is not None and event.type == "assignment"
    assert event.data["assignee"] == tech.email and event.data["taken"] is True
    assert t.assignee_id == tech.id
    assert take_ticket(session, tech, t) is None  # already theirs: nothing changes
    with pytest.raises(Conflict, match="has just been taken by Technician"):
        take_ticket(session, tech2, t)
    assert not can_view(tech2, t) and queue_count(session, tech2) == 0


def test_taking_is_refused_outside_the_contracts_one_serves_and_when_denied(
    session: Session, world: World
) -> None:
    coord = world.users["coordinator"]
    beta = new_ticket(session, world, "beta", beta=True)
    tech = world.users["technician"]
    assert not can_view(tech, beta)
    # A coordinator may assign anyway, so may take any open unassigned ticket.
    assert take_ticket(session, coord, beta) is not None
    # A custom role on the technician base that denies taking.
    role = Role(name="trainee", base="technician", grant=[], deny=["take"], labels={})
    session.add(role)
    tech.custom_role = role
    session.flush()
    t = new_ticket(session, world, "free")
    assert can_view(tech, t) and not can(tech, "take", t)
    with pytest.raises(Forbidden):
        take_ticket(session, tech, t)


def test_of_two_taking_at_once_the_second_is_told_who_took_it(backend: str, tmp_path: Path) -> None:
    """The second person loaded the ticket unassigned before the first committed: the
    conditional UPDATE finds no row and the refusal names the winner; one assignment only."""
    with migrated_database(backend, tmp_path) as factory:
        with factory() as s:
            w = build_world(s)
            w.acme_contract.technicians = [w.users["technician"], w.users["technician2"]]
            number = new_ticket(s, w, "race").number
            s.commit()
        with factory() as first, factory(expire_on_commit=False) as second:
            t2 = svc.get_ticket(second, number)
            tech2 = second.scalar(select(User).where(User.email == "tech2@support.example"))
            assert t2.assignee_id is None and tech2 is not None
            second.commit()  # its read ends (SQLite: BEGIN IMMEDIATE holds the lock)
            t1 = svc.get_ticket(first, number)
            tech1 = first.scalar(select(User).where(User.email == "tech@support.example"))
            assert tech1 is not None
            take_ticket(first, tech1, t1)
            first.commit()
            assert t2.assignee_id is None  # stale: it still says unassigned
            with pytest.raises(Conflict, match="taken by Technician"):
                take_ticket(second, tech2, t2)
            second.rollback()
        with factory() as s:
            events = s.scalars(
                select(TicketEvent)
                .join(Ticket)
                .where(Ticket.number == number, TicketEvent.type == "assignment")
            ).all()
            assert len(events) == 1


def test_yaml_names_the_technicians_of_a_contract(session: Session, world: World) -> None:
    session.commit()
    apply_config_text(
        session,
        "contracts:\n  - code: BETA-247\n    technicians: [tech@support.example]\n",
    )
    beta = session.scalar(select(Contract).where(Contract.code == "BETA-247"))
    assert beta is not None and [u.email for u in beta.technicians] == ["tech@support.example"]
    exported = yaml.safe_load(export_config(session))
    by_code = {c["code"]: c for c in exported["contracts"]}
    assert by_code["BETA-247"]["technicians"] == ["tech@support.example"]
    apply_config_text(
        session,
        "contracts:\n  - code: BETA-247\n    remove: {technicians: [tech@support.example]}\n",
    )
    session.refresh(beta)
    assert beta.technicians == []
    with pytest.raises(ConfigError, match="only staff can serve a contract"):
        apply_config_text(
            session, "contracts:\n  - code: BETA-247\n    technicians: [anna@acme.example]\n"
        )
    with pytest.raises(ConfigError, match="no user"):
        apply_config_text(
            session, "contracts:\n  - code: BETA-247\n    technicians: [nobody@support.example]\n"
        )


def test_api_take(tmp_path: Path) -> None:
    from litestar.testing import TestClient

    seeded = build_seeded_app(tmp_path)
    tech, tech2 = seeded.users["technician"], seeded.users["technician2"]
    number = seeded.numbers["key_new"]
    with seeded.factory() as s:
        contract = s.scalar(select(Contract).where(Contract.code == "ACME-KEY"))
        people = list(s.scalars(select(User).where(User.email.in_([tech, tech2]))))
        assert contract is not None
        contract.technicians = people
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None and t.assignee_id is None
        tokens = {u.email: create_api_token(s, u) for u in people}
        coord = s.scalar(select(User).where(User.email == seeded.users["coordinator"]))
        assert coord is not None
        coord_token = create_api_token(s, coord)
        s.commit()
    api = TestClient(seeded.app)

    def headers(email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[email]}"}

    listed = api.get("/api/v1/tickets", params={"assignee": "none"}, headers=headers(tech))
    assert number in [i["number"] for i in listed.json()["items"]]
    r = api.post(f"/api/v1/tickets/{number}/take", headers=headers(tech))
    assert r.status_code == 200, r.text
    assert r.json()["assignee"] == tech
    r = api.post(f"/api/v1/tickets/{number}/take", headers=headers(tech2))
    assert r.status_code == 404  # taken: no longer in their queue, so not visible to them
    # A ticket of another contract: not visible, not found.
    other = seeded.numbers["beta_open"]
    assert api.post(f"/api/v1/tickets/{other}/take", headers=headers(tech)).status_code == 404
    # An assigned ticket a coordinator sees: 409 with a sentence.
    r = api.post(
        f"/api/v1/tickets/{number}/take", headers={"Authorization": f"Bearer {coord_token}"}
    )
    assert r.status_code == 409 and "taken" in r.json()["detail"]


def test_console_queue_link_and_take_button(tmp_path: Path) -> None:
    seeded = build_seeded_app(tmp_path)
    tech = seeded.users["technician"]
    number = seeded.numbers["key_new"]
    with seeded.factory() as s:
        contract = s.scalar(select(Contract).where(Contract.code == "ACME-KEY"))
        user = s.scalar(select(User).where(User.email == tech))
        assert contract is not None and user is not None
        contract.technicians = [user]
        s.commit()
    client, token = console_client(seeded.app, tech)
    page = client.get("/tickets")
    assert 'data-testid="queue-link"' in page.text
    queue = client.get("/tickets?assignee=none")
    assert f'action="/tickets/{number}/take"' in queue.text
    detail = client.get(f"/tickets/{number}")
    assert f'action="/tickets/{number}/take"' in detail.text
    r = client.post(
        f"/tickets/{number}/take",
        data={"csrf_token": token, "back": "assignee=none"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/tickets?assignee=none")
    with seeded.factory() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None and t.assignee is not None and t.assignee.email == tech
    # Taken: the ticket page no longer offers it, and a second take says it is already theirs.
    detail = client.get(f"/tickets/{number}")
    assert f'action="/tickets/{number}/take"' not in detail.text
    assert re.search(r"data-queue-count>\s*\d+", client.get("/tickets").text)
    counts = client.get("/views/counts").json()
    assert counts["queue"] is not None


def test_taking_a_ticket_one_cannot_see_is_not_found(session: Session, world: World) -> None:
    beta = new_ticket(session, world, "beta", beta=True)
    with pytest.raises(NotFound):
        svc.get_ticket(session, beta.number, world.users["technician"])
