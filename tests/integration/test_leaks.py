"""Issue 11, "Leaks and wrong doors": what a client or a subcontractor may not read is absent
from every door (API objects, filters, mail), and opening a ticket follows the rules of
changing one. The console's side is in tests/integration/test_console_permissions.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import create_api_token
from core.access.permissions import can_see_event, event_scope
from core.contracts.models import CustomField
from core.mail.models import OutboundMail
from core.notify import notifications
from core.tickets import services as svc
from core.tickets.models import Ticket, TicketEvent
from core.tickets.visibility import custom_field_rows, custom_fields_for
from tests.factories import World, build_world
from web.app import create_app


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    session.add_all(
        [
            CustomField(contract_id=None, name="serial", label="Serial number"),
            CustomField(
                contract_id=None, name="price", label="Internal price", visible_to_client=False
            ),
        ]
    )
    session.flush()
    return w


@pytest.fixture
def api(session: Session, tmp_path: Any) -> Iterator[TestClient[Any]]:
    conn = session.connection()

    def factory() -> Session:
        return Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)

    app = create_app(Settings(data_dir=tmp_path, secret_key="test"), session_factory=factory)
    with TestClient(app) as c:
        yield c


def auth(session: Session, world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(session, world.users[role])}"}


def handed(session: Session, world: World, **fields: Any) -> Ticket:
    """A ticket of Anna's (client), assigned to the technician and handed to FixIt."""
    u = world.users
    ticket = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Drukarka",
            requester=u["client"],
            contract=world.acme_contract,
            custom_fields=fields or None,
        ),
    )
    svc.assign(
        session, ticket, actor=u["coordinator"], assignee=u["technician"], subcontractor=world.fixit
    )
    session.flush()
    return ticket


# --- 1. Custom fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("coordinator", {"serial": "X1", "price": "120"}),
        ("technician", {"serial": "X1", "price": "120"}),
        ("client", {"serial": "X1"}),
        ("subcontractor", {"serial": "X1"}),
    ],
)
def test_a_field_kept_from_clients_is_absent_from_the_api(
    api: TestClient[Any], session: Session, world: World, role: str, expected: dict[str, Any]
) -> None:
    ticket = handed(session, world, serial="X1", price="120")
    headers = auth(session, world, role)
    one = api.get(f"/api/v1/tickets/{ticket.number}", headers=headers).json()
    assert one["custom_fields"] == expected
    listed = api.get("/api/v1/tickets", headers=headers).json()["items"]
    assert [t["custom_fields"] for t in listed if t["number"] == ticket.number] == [expected]
    # The one function every door uses says the same.
    assert custom_fields_for(world.users[role], ticket) == expected
    labels = [label for label, _ in custom_field_rows(world.users[role], ticket)]
    assert ("Internal price" in labels) is ("price" in expected)


def test_a_change_of_a_hidden_field_is_not_on_the_subcontractors_timeline(
    api: TestClient[Any], session: Session, world: World
) -> None:
    ticket = handed(session, world)
    svc.set_fields(session, ticket, actor=world.users["technician"], custom_fields={"price": "99"})
    svc.set_fields(session, ticket, actor=world.users["technician"], custom_fields={"serial": "S"})
    session.flush()
    sub = api.get(f"/api/v1/tickets/{ticket.number}", headers=auth(session, world, "subcontractor"))
    changes = [e["data"]["changes"] for e in sub.json()["events"] if e["type"] == "field"]
    assert changes == [{"serial": [None, "S"]}]
    staff = api.get(f"/api/v1/tickets/{ticket.number}", headers=auth(session, world, "coordinator"))
    assert len([e for e in staff.json()["events"] if e["type"] == "field"]) == 2


# --- 2. Hidden statuses ----------------------------------------------------------------------


def _through_internal_review(session: Session, world: World) -> Ticket:
    """In progress -> Internal review (hidden from clients and subcontractors) -> Resolved."""
    ticket = handed(session, world)
    coordinator = world.users["coordinator"]
    svc.change_status(session, ticket, "In progress", actor=coordinator)
    svc.change_status(session, ticket, "Internal review", actor=coordinator)
    session.flush()
    return ticket


@pytest.mark.parametrize("role", ["client", "subcontractor"])
def test_status_events_name_hidden_statuses_by_their_category(
    api: TestClient[Any], session: Session, world: World, role: str
) -> None:
    ticket = _through_internal_review(session, world)
    headers = auth(session, world, role)
    shown = api.get(f"/api/v1/tickets/{ticket.number}", headers=headers).json()
    assert shown["status"] == "In progress"  # Internal review, by its category
    svc.change_status(session, ticket, "Resolved", actor=world.users["coordinator"])
    session.flush()
    r = api.get(f"/api/v1/tickets/{ticket.number}", headers=headers)
    assert "Internal review" not in r.text
    moves = [
        (e["data"]["from"], e["data"]["to"]) for e in r.json()["events"] if e["type"] == "status"
    ]
    assert ("In progress", "Resolved") in moves  # the public move out of Internal review
    staff = api.get(f"/api/v1/tickets/{ticket.number}", headers=auth(session, world, "coordinator"))
    assert "Internal review" in staff.text


@pytest.mark.parametrize("role", ["client", "subcontractor"])
def test_filtering_by_a_hidden_status_answers_like_an_unknown_one(
    api: TestClient[Any], session: Session, world: World, role: str
) -> None:
    _through_internal_review(session, world)
    headers = auth(session, world, role)
    hidden = api.get("/api/v1/tickets", params={"status": "Internal review"}, headers=headers)
    unknown = api.get("/api/v1/tickets", params={"status": "No such status"}, headers=headers)
    assert hidden.status_code == unknown.status_code == 200
    assert hidden.json() == unknown.json()
    assert hidden.json()["total"] == 0
    staff = api.get(
        "/api/v1/tickets",
        params={"status": "Internal review"},
        headers=auth(session, world, "coordinator"),
    )
    assert staff.json()["total"] == 1


# --- 3. Opening a ticket follows the rules of changing one -----------------------------------


def _open(api: TestClient[Any], headers: dict[str, str], **extra: Any) -> Any:
    body = {"subject": "Awaria", "requester": "anna@acme.example", "contract": "ACME-2026"}
    return api.post("/api/v1/tickets", json={**body, **extra}, headers=headers)


def test_a_technician_cannot_assign_by_opening(
    api: TestClient[Any], session: Session, world: World
) -> None:
    tech = auth(session, world, "technician")
    r = _open(api, tech, assignee="tech2@support.example")
    assert r.status_code == 403
    assert "assign" in r.json()["detail"]
    assert session.scalar(select(Ticket).where(Ticket.subject == "Awaria")) is None
    r = _open(api, tech, subcontractor="FixIt")
    assert r.status_code == 403
    # Naming oneself is no assigning: the ticket starts theirs.
    r = _open(api, tech, assignee="tech@support.example")
    assert r.status_code == 201
    assert r.json()["assignee"] == "tech@support.example"


def test_a_coordinator_opens_assigned_and_handed(
    api: TestClient[Any], session: Session, world: World
) -> None:
    r = _open(
        api,
        auth(session, world, "coordinator"),
        assignee="tech2@support.example",
        subcontractor="FixIt",
    )
    assert r.status_code == 201
    assert (r.json()["assignee"], r.json()["subcontractor"]) == ("tech2@support.example", "FixIt")
    seen = api.get(
        f"/api/v1/tickets/{r.json()['number']}", headers=auth(session, world, "subcontractor")
    )
    assert seen.status_code == 200


def test_a_client_cannot_set_custom_fields_by_opening(
    api: TestClient[Any], session: Session, world: World
) -> None:
    client = auth(session, world, "client")
    r = _open(api, client, custom_fields={"price": 1})
    assert r.status_code == 403
    assert "may not edit the field" in r.json()["detail"]
    assert _open(api, client).status_code == 201


# --- 4. The audience of an internal note ----------------------------------------------------


def _note(
    api: TestClient[Any], headers: dict[str, str], number: int, body: str, **extra: Any
) -> Any:
    return api.post(
        f"/api/v1/tickets/{number}/comments",
        json={"body": body, "public": False, **extra},
        headers=headers,
    )


def test_a_subcontractor_reads_only_the_notes_meant_for_them(
    api: TestClient[Any], session: Session, world: World
) -> None:
    ticket = handed(session, world)
    coord = auth(session, world, "coordinator")
    staff_only = _note(api, coord, ticket.number, "ours only")
    assert staff_only.status_code == 201
    assert staff_only.json()["audience"] == "staff"
    for_sub = _note(api, coord, ticket.number, "for FixIt", audience="subcontractor")
    assert for_sub.status_code == 201
    assert for_sub.json()["audience"] == "subcontractor"
    own = _note(api, auth(session, world, "subcontractor"), ticket.number, "from FixIt")
    assert own.json()["audience"] == "subcontractor"  # they read what they wrote
    sub = api.get(f"/api/v1/tickets/{ticket.number}", headers=auth(session, world, "subcontractor"))
    bodies = [e["body_text"] for e in sub.json()["events"]]
    assert "for FixIt" in bodies and "from FixIt" in bodies
    assert "ours only" not in bodies
    staff = api.get(f"/api/v1/tickets/{ticket.number}", headers=coord).json()["events"]
    assert {"ours only", "for FixIt", "from FixIt"} <= {e["body_text"] for e in staff}
    client = api.get(f"/api/v1/tickets/{ticket.number}", headers=auth(session, world, "client"))
    assert not {"ours only", "for FixIt", "from FixIt"} & {
        e["body_text"] for e in client.json()["events"]
    }


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"audience": "everyone"}, 400),
        ({"audience": "subcontractor", "public": True}, 400),
    ],
)
def test_a_wrong_audience_is_refused(
    api: TestClient[Any], session: Session, world: World, extra: dict[str, Any], status: int
) -> None:
    ticket = handed(session, world)
    r = _note(api, auth(session, world, "coordinator"), ticket.number, "x", **extra)
    assert r.status_code == status
    assert r.json()["detail"]


def test_a_note_for_a_subcontractor_needs_one(
    api: TestClient[Any], session: Session, world: World
) -> None:
    ticket = svc.open_ticket(
        session,
        svc.NewTicket(subject="S", requester=world.users["client"], contract=world.acme_contract),
    )
    session.flush()
    r = _note(
        api, auth(session, world, "coordinator"), ticket.number, "x", audience="subcontractor"
    )
    assert r.status_code == 400
    assert "no subcontractor" in r.json()["detail"]


def test_old_notes_and_unverified_mail_stay_with_staff(session: Session, world: World) -> None:
    """Notes stored before audiences existed (no ``audience``) and mail kept as an unverified
    internal note (mailgw.process) are for our staff; text-less lines stay visible. The query
    form of the rule (event_scope) agrees with the per-event one."""
    ticket = handed(session, world)
    at = ticket.created_at
    from core.tickets.timeline import append_event

    old = append_event(
        session, ticket, "note", author=world.users["coordinator"], at=at, body_text="old"
    )
    svc.record_email(
        session,
        ticket,
        author=None,
        body="unverified",
        public=False,
        at=at,
        data={"unverified": True, "claimed_from": "x@evil.example"},
    )
    session.flush()
    sub = world.users["subcontractor"]
    events = list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)))
    seen = {e.id for e in events if can_see_event(sub, e)}
    by_query = set(
        session.scalars(
            select(TicketEvent.id).where(TicketEvent.ticket_id == ticket.id, event_scope(sub))
        )
    )
    assert seen == by_query
    bodies = {e.body_text for e in events if e.id in seen}
    assert "old" not in bodies and "unverified" not in bodies
    assert old.id not in seen
    assert any(e.type == "assignment" for e in events if e.id in seen)
    coordinator = world.users["coordinator"]
    assert all(can_see_event(coordinator, e) for e in events)


# --- Mail ------------------------------------------------------------------------------------


def test_mail_to_a_subcontractor_names_a_hidden_status_by_its_category(
    session: Session, world: World
) -> None:
    session.info["notify"] = notifications.NotifyConfig("desk.example", "https://desk.example")
    u = world.users
    ticket = svc.open_ticket(
        session,
        svc.NewTicket(subject="S", requester=u["client"], contract=world.acme_contract),
    )
    svc.change_status(session, ticket, "Internal review", actor=u["coordinator"])
    svc.assign(session, ticket, actor=u["coordinator"], assignee=None, subcontractor=world.fixit)
    session.flush()
    sent = list(
        session.scalars(select(OutboundMail).where(OutboundMail.template == "ticket_assigned"))
    )
    assert [m.to_addr for m in sent] == ["sub@fixit.example"]
    assert sent[0].context["status"] == "In progress"
    assert "Internal review" not in str(sent[0].context)


def test_the_message_id_filter_finds_no_mail_the_user_may_not_read(
    api: TestClient[Any], session: Session, world: World
) -> None:
    ticket = handed(session, world)
    svc.record_email(
        session,
        ticket,
        author=world.users["coordinator"],
        body="internal forward",
        public=False,
        at=ticket.created_at,
        message_id="<internal-1@our.example>",
    )
    session.flush()

    def found(role: str, mid: str) -> Any:
        r = api.get(
            "/api/v1/tickets", params={"message_id": mid}, headers=auth(session, world, role)
        )
        return r.json()

    assert found("coordinator", "<internal-1@our.example>")["total"] == 1
    for role in ("client", "subcontractor"):
        assert found(role, "<internal-1@our.example>") == found(role, "<none@our.example>")
        assert found(role, "<internal-1@our.example>")["total"] == 0


@pytest.mark.parametrize("role", ["client", "subcontractor"])
def test_setting_a_hidden_status_answers_like_an_unknown_one(
    api: TestClient[Any], session: Session, world: World, role: str
) -> None:
    ticket = handed(session, world)
    headers = auth(session, world, role)

    def refused(name: str) -> tuple[int, str]:
        r = api.post(
            f"/api/v1/tickets/{ticket.number}/status", json={"status": name}, headers=headers
        )
        return r.status_code, r.json()["detail"].replace(repr(name), "'?'")

    hidden, unknown = refused("Internal review"), refused("No such status")
    assert hidden == unknown
    assert hidden[0] == 400
    assert "Internal review" not in hidden[1]  # the list of choices leaves it out too
