"""The JSON API against a real database: shapes, scoping, errors as sentences."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import create_api_token
from core.tickets import services as svc
from tests.factories import World, build_world
from web.app import create_app


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


@pytest.fixture
def client(session: Session, tmp_path: Any) -> Iterator[TestClient[Any]]:
    conn = session.connection()

    def factory() -> Session:
        return Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)

    app = create_app(Settings(data_dir=tmp_path, secret_key="test"), session_factory=factory)
    with TestClient(app) as c:
        yield c


def auth(session: Session, user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(session, user)}"}


def test_health_answers_without_a_token(client: TestClient[Any]) -> None:
    r = client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_missing_token_is_401_with_a_sentence(client: TestClient[Any]) -> None:
    r = client.get("/api/v1/tickets")
    assert r.status_code == 401
    assert "Bearer" in r.json()["detail"]


def test_me_describes_the_token_user(
    client: TestClient[Any], session: Session, world: World
) -> None:
    r = client.get("/api/v1/me", headers=auth(session, world.users["subcontractor"]))
    assert r.json()["role"] == "subcontractor"
    assert r.json()["subcontractor"] == "FixIt"


def test_open_ticket_routes_by_requester_domain_and_keyword(
    client: TestClient[Any], session: Session, world: World
) -> None:
    h = auth(session, world.users["coordinator"])
    r = client.post(
        "/api/v1/tickets",
        json={
            "subject": "Awaria drukarki w księgowości",
            "requester": "nowy@acme.example",
            "body": "Nie drukuje.",
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["contract"] == "ACME-2026"
    assert t["client"] == "Acme"
    assert t["ticket_type"] == "failure"
    assert t["status"] == "New" and t["status_category"] == "new"
    assert t["key_contract"] is True
    assert t["sla"]["reaction_due"] and t["sla"]["resolution_due"]
    assert t["events"][0]["body_text"] == "Nie drukuje."
    assert isinstance(t["number"], int)


def test_unknown_sender_lands_in_triage(
    client: TestClient[Any], session: Session, world: World
) -> None:
    h = auth(session, world.users["coordinator"])
    r = client.post(
        "/api/v1/tickets", json={"subject": "Hello", "requester": "x@unknown.example"}, headers=h
    )
    assert r.status_code == 201
    assert r.json()["contract"] is None and r.json()["client"] is None


def test_missing_subject_is_a_400_sentence(
    client: TestClient[Any], session: Session, world: World
) -> None:
    h = auth(session, world.users["coordinator"])
    r = client.post("/api/v1/tickets", json={"requester": "a@acme.example"}, headers=h)
    assert r.status_code == 400
    assert "subject" in r.json()["detail"]


def test_bad_json_is_400_not_500(client: TestClient[Any], session: Session, world: World) -> None:
    h = auth(session, world.users["coordinator"])
    r = client.post(
        "/api/v1/tickets", content=b"{not json", headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["detail"]


def test_unknown_contract_is_400(client: TestClient[Any], session: Session, world: World) -> None:
    h = auth(session, world.users["coordinator"])
    r = client.post(
        "/api/v1/tickets",
        json={"subject": "x", "requester": "a@acme.example", "contract": "NOPE"},
        headers=h,
    )
    assert r.status_code == 400
    assert "NOPE" in r.json()["detail"]


def _open(
    session: Session, world: World, subject: str, requester: str = "client", **kw: Any
) -> int:
    contract = kw.pop("contract", world.acme_contract)
    new = svc.NewTicket(subject=subject, requester=world.users[requester], contract=contract, **kw)
    t = svc.open_ticket(session, new)
    session.flush()
    return t.number


def test_list_is_scoped_per_role(client: TestClient[Any], session: Session, world: World) -> None:
    own = _open(session, world, "Mine")
    colleague = _open(session, world, "Colleague's", requester="client2")
    foreign = _open(session, world, "Beta's", requester="beta", contract=world.beta_contract)

    def numbers(user: str) -> set[int]:
        r = client.get("/api/v1/tickets", headers=auth(session, world.users[user]))
        assert r.status_code == 200
        return {t["number"] for t in r.json()["items"]}

    assert numbers("coordinator") >= {own, colleague, foreign}
    assert numbers("client") == {own}
    assert numbers("manager") == {own, colleague}
    assert numbers("beta") == {foreign}
    assert numbers("technician") == set()
    assert numbers("subcontractor") == set()


def test_foreign_ticket_is_404(client: TestClient[Any], session: Session, world: World) -> None:
    foreign = _open(session, world, "Beta's", requester="beta", contract=world.beta_contract)
    r = client.get(f"/api/v1/tickets/{foreign}", headers=auth(session, world.users["client"]))
    assert r.status_code == 404


def test_client_does_not_see_internal_notes(
    client: TestClient[Any], session: Session, world: World
) -> None:
    n = _open(session, world, "Printer")
    coord = auth(session, world.users["coordinator"])
    assert (
        client.post(
            f"/api/v1/tickets/{n}/comments",
            json={"body": "internal", "public": False},
            headers=coord,
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"/api/v1/tickets/{n}/comments", json={"body": "hello", "public": True}, headers=coord
        ).status_code
        == 201
    )
    events = client.get(
        f"/api/v1/tickets/{n}", headers=auth(session, world.users["client"])
    ).json()["events"]
    bodies = [e["body_text"] for e in events]
    assert "hello" in bodies and "internal" not in bodies
    staff_events = client.get(f"/api/v1/tickets/{n}", headers=coord).json()["events"]
    assert "internal" in [e["body_text"] for e in staff_events]


def test_client_cannot_write_a_note(
    client: TestClient[Any], session: Session, world: World
) -> None:
    n = _open(session, world, "Printer")
    r = client.post(
        f"/api/v1/tickets/{n}/comments",
        json={"body": "psst", "public": False},
        headers=auth(session, world.users["client"]),
    )
    assert r.status_code == 403


def test_public_staff_comment_meets_reaction(
    client: TestClient[Any], session: Session, world: World
) -> None:
    n = _open(session, world, "Printer")
    h = auth(session, world.users["coordinator"])
    client.post(f"/api/v1/tickets/{n}/comments", json={"body": "note", "public": False}, headers=h)
    assert client.get(f"/api/v1/tickets/{n}", headers=h).json()["sla"]["first_response_at"] is None
    client.post(f"/api/v1/tickets/{n}/comments", json={"body": "On it"}, headers=h)
    assert client.get(f"/api/v1/tickets/{n}", headers=h).json()["sla"]["first_response_at"]


def test_status_change_and_client_can_set(
    client: TestClient[Any], session: Session, world: World
) -> None:
    n = _open(session, world, "Printer")
    h = auth(session, world.users["coordinator"])
    r = client.post(f"/api/v1/tickets/{n}/status", json={"status": "In progress"}, headers=h)
    assert r.status_code == 200 and r.json()["status_category"] == "open"
    c = auth(session, world.users["client"])
    r = client.post(f"/api/v1/tickets/{n}/status", json={"status": "In progress"}, headers=c)
    assert r.status_code == 403
    r = client.post(f"/api/v1/tickets/{n}/status", json={"status": "Resolved"}, headers=c)
    assert r.status_code == 200 and r.json()["sla"]["resolved_at"]
    r = client.post(f"/api/v1/tickets/{n}/status", json={"status": "Nope"}, headers=h)
    assert r.status_code == 400 and "Resolved" in r.json()["detail"]


def test_client_sees_hidden_status_by_category(
    client: TestClient[Any], session: Session, world: World
) -> None:
    n = _open(session, world, "Printer")
    h = auth(session, world.users["coordinator"])
    client.post(f"/api/v1/tickets/{n}/status", json={"status": "Internal review"}, headers=h)
    r = client.get(f"/api/v1/tickets/{n}", headers=auth(session, world.users["client"]))
    assert r.json()["status"] == "In progress"


def test_bulk_status_is_all_or_nothing(
    client: TestClient[Any], session: Session, world: World
) -> None:
    a = _open(session, world, "A")
    b = _open(session, world, "B")
    h = auth(session, world.users["coordinator"])
    r = client.post(
        "/api/v1/tickets/bulk-status",
        json={"numbers": [a, b, 999999], "status": "Resolved"},
        headers=h,
    )
    assert r.status_code == 409
    assert "999999" in r.json()["reasons"]
    assert client.get(f"/api/v1/tickets/{a}", headers=h).json()["status"] == "New"
    r = client.post(
        "/api/v1/tickets/bulk-status", json={"numbers": [a, b], "status": "Resolved"}, headers=h
    )
    assert r.status_code == 200 and r.json()["changed"] == 2
    assert client.get(f"/api/v1/tickets/{b}", headers=h).json()["status"] == "Resolved"


def test_bulk_refused_for_technicians(
    client: TestClient[Any], session: Session, world: World
) -> None:
    a = _open(session, world, "A")
    r = client.post(
        "/api/v1/tickets/bulk-status",
        json={"numbers": [a], "status": "Resolved"},
        headers=auth(session, world.users["technician"]),
    )
    assert r.status_code == 403


def test_assign_hands_to_technician_and_subcontractor(
    client: TestClient[Any], session: Session, world: World
) -> None:
    n = _open(session, world, "Printer")
    h = auth(session, world.users["coordinator"])
    r = client.post(
        f"/api/v1/tickets/{n}/assign",
        json={"assignee": "tech@support.example", "subcontractor": "FixIt"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["assignee"] == "tech@support.example" and r.json()["subcontractor"] == "FixIt"
    tech = client.get(f"/api/v1/tickets/{n}", headers=auth(session, world.users["technician"]))
    assert tech.status_code == 200
    sub = client.get(f"/api/v1/tickets/{n}", headers=auth(session, world.users["subcontractor"]))
    assert sub.status_code == 200
    assert (
        client.get(
            f"/api/v1/tickets/{n}", headers=auth(session, world.users["technician2"])
        ).status_code
        == 404
    )
    r = client.post(f"/api/v1/tickets/{n}/assign", json={"assignee": None}, headers=h)
    assert r.json()["assignee"] is None and r.json()["subcontractor"] == "FixIt"


def test_assign_to_a_client_is_refused(
    client: TestClient[Any], session: Session, world: World
) -> None:
    n = _open(session, world, "Printer")
    r = client.post(
        f"/api/v1/tickets/{n}/assign",
        json={"assignee": "anna@acme.example"},
        headers=auth(session, world.users["coordinator"]),
    )
    assert r.status_code == 400


def test_filters_contract_client_q_and_message_id(
    client: TestClient[Any], session: Session, world: World
) -> None:
    a = _open(session, world, "Drukarka nie drukuje", message_id="<abc@acme.example>")
    b = _open(session, world, "Router", requester="beta", contract=world.beta_contract)
    h = auth(session, world.users["coordinator"])

    def numbers(query: str) -> list[int]:
        r = client.get(f"/api/v1/tickets?{query}", headers=h)
        assert r.status_code == 200, r.text
        return [t["number"] for t in r.json()["items"]]

    assert a in numbers("contract=ACME-2026") and b not in numbers("contract=ACME-2026")
    assert numbers("client=Beta") == [b]
    assert numbers("q=drukarka") == [a]
    assert numbers(f"q=%23{a}") == [a]
    assert numbers("message_id=%3Cabc@acme.example%3E") == [a]
    assert numbers("message_id=abc@acme.example") == [a]
    assert numbers("status=New") == numbers("status=new")


def test_bad_query_parameters_are_400(
    client: TestClient[Any], session: Session, world: World
) -> None:
    h = auth(session, world.users["coordinator"])
    for query in ("overdue=maybe", "per_page=0", "sort=nope", "page=x"):
        r = client.get(f"/api/v1/tickets?{query}", headers=h)
        assert r.status_code == 400, (query, r.text)
        assert r.json()["detail"]


def test_pagination(client: TestClient[Any], session: Session, world: World) -> None:
    for i in range(5):
        _open(session, world, f"T{i}")
    h = auth(session, world.users["coordinator"])
    r = client.get("/api/v1/tickets?per_page=2&page=2", headers=h).json()
    assert r["total"] == 5 and len(r["items"]) == 2


def test_openapi_schema_is_served(client: TestClient[Any]) -> None:
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    assert "/api/v1/tickets" in r.json()["paths"]


def test_triage_ticket_is_sorted_into_a_contract(
    client: TestClient[Any], session: Session, world: World
) -> None:
    h = auth(session, world.users["coordinator"])
    r = client.post(
        "/api/v1/tickets", json={"subject": "Awaria", "requester": "x@unknown.example"}, headers=h
    )
    number = r.json()["number"]
    assert r.json()["contract"] is None and r.json()["sla"]["resolution_due"] is None
    r = client.post(f"/api/v1/tickets/{number}/contract", json={"contract": "ACME-2026"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["contract"] == "ACME-2026" and r.json()["ticket_type"] == "failure"
    assert r.json()["sla"]["resolution_due"]
    r = client.post(f"/api/v1/tickets/{number}/type", json={"ticket_type": "inspection"}, headers=h)
    assert r.status_code == 200 and r.json()["ticket_type"] == "inspection"
    r = client.post(f"/api/v1/tickets/{number}/type", json={"ticket_type": "nope"}, headers=h)
    assert r.status_code == 400 and "inspection" in r.json()["detail"]
    r = client.post(
        f"/api/v1/tickets/{number}/contract",
        json={"contract": "ACME-2026"},
        headers=auth(session, world.users["client"]),
    )
    assert r.status_code in (403, 404)


def test_error_bodies_carry_their_status_and_a_sentence(
    client: TestClient[Any], session: Session, world: World
) -> None:
    """The one error shape (docs/api.md): what the OpenAPI document declares for every code."""
    assert client.get("/api/v1/tickets").json()["status_code"] == 401
    h = auth(session, world.users["coordinator"])
    missing = client.get(f"/api/v1/tickets/{2**31 - 1}", headers=h)
    assert missing.status_code == 404
    assert missing.json() == {
        "status_code": 404,
        "detail": f"ticket #{2**31 - 1} does not exist or is not visible to you",
    }
    assert client.get("/api/v1/nothing-here", headers=h).json()["status_code"] == 404
    bad = client.get("/api/v1/tickets/0", headers=h)
    assert bad.status_code == 400 and "number" in bad.json()["detail"]


def test_the_document_declares_the_error_answers(client: TestClient[Any]) -> None:
    doc = client.get("/schema/openapi.json").json()
    show = doc["paths"]["/api/v1/tickets/{number}"]["get"]
    assert {"400", "401", "403", "404", "409"} <= set(show["responses"])
    number = show["parameters"][0]["schema"]
    assert (number["minimum"], number["maximum"]) == (1, 2**31 - 1)
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"status_code", "detail"}
