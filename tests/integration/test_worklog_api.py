"""The work log in the JSON API (docs/worklog.md): the first contract of ``POST .../worklog``
kept, the entry's round trip (log, list with totals, change, delete), the timer, and the
refusals as sentences."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import create_api_token
from core.clock import utcnow
from core.tickets import services as svc
from core.tickets.models import Ticket
from core.worklog.models import WorkLogEntry, WorkType
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

    settings = Settings(data_dir=tmp_path, secret_key="test", worklog_edit_days=3)
    app = create_app(settings, session_factory=factory)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def ticket(session: Session, world: World) -> Ticket:
    t = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Drukarka", requester=world.users["client"], contract=world.acme_contract
        ),
    )
    svc.assign(
        session,
        t,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=None,
    )
    session.add(WorkType(contract=world.acme_contract, name="travel", rate=6000, billable=False))
    session.flush()
    return t


def auth(session: Session, user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(session, user)}"}


def test_round_trip(
    client: TestClient[Any], session: Session, world: World, ticket: Ticket
) -> None:
    tech = auth(session, world.users["technician"])
    base = f"/api/v1/tickets/{ticket.number}"
    # The first contract: minutes and a note; the answer is the timeline event, plus the entry.
    r = client.post(f"{base}/worklog", json={"minutes": 30, "note": "diagnoza"}, headers=tech)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["type"], body["data"]["action"], body["data"]["minutes"]) == (
        "worklog",
        "logged",
        30,
    )
    assert body["body_text"] == "diagnoza"
    assert body["entry"]["description"] == "diagnoza" and body["entry"]["billable"] is True
    first = body["entry"]["id"]
    r = client.post(
        f"{base}/worklog",
        json={
            "started_at": "2026-03-02T08:00:00+01:00",
            "ended_at": "2026-03-02T08:45:00+01:00",
            "description": "dojazd",
            "work_type": "travel",
        },
        headers=tech,
    )
    assert r.status_code == 201, r.text
    travel = r.json()["entry"]
    assert (travel["minutes"], travel["billable"], travel["work_type"]) == (45, False, "travel")
    assert travel["started_at"] == "2026-03-02T07:00:00Z"

    listed = client.get(f"{base}/worklog", headers=tech).json()
    assert [e["id"] for e in listed["entries"]] == [first, travel["id"]]  # newest work first
    assert listed["totals"]["minutes"] == 75 and listed["totals"]["billable_minutes"] == 30
    assert listed["totals"]["people"] == [
        {"user": "tech@support.example", "minutes": 75, "billable_minutes": 30}
    ]

    r = client.patch(
        f"{base}/worklog/{first}", json={"minutes": 40, "billable": False}, headers=tech
    )
    assert r.status_code == 200, r.text
    assert r.json()["changes"] == {"minutes": [30, 40], "billable": [True, False]}
    assert client.delete(f"{base}/worklog/{travel['id']}", headers=tech).status_code == 204
    listed = client.get(f"{base}/worklog", headers=tech).json()
    assert listed["totals"]["minutes"] == 40 and listed["totals"]["billable_minutes"] == 0
    history = client.get(base, headers=tech).json()["events"]
    actions = [e["data"]["action"] for e in history if e["type"] == "worklog"]
    assert actions == ["logged", "logged", "changed", "deleted"]


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        ({"minutes": 0}, "between 1 and 1440"),
        (
            {"started_at": "2026-03-02T09:00:00+01:00", "ended_at": "2026-03-02T08:00:00+01:00"},
            "end after it starts",
        ),
        ({"started_at": "2026-03-02T08:00:00", "ended_at": "2026-03-02T09:00:00"}, "time zone"),
        ({"minutes": 5, "work_type": "teleport"}, "not a work type"),
        ({}, "say how long"),
        ({"minutes": 5, "user": "tech2@support.example"}, "someone else"),
    ],
)
def test_bad_input_is_a_sentence(
    client: TestClient[Any],
    session: Session,
    world: World,
    ticket: Ticket,
    body: Any,
    sentence: str,
) -> None:
    r = client.post(
        f"/api/v1/tickets/{ticket.number}/worklog",
        json=body,
        headers=auth(session, world.users["technician"]),
    )
    assert 400 <= r.status_code < 500 and sentence in r.json()["detail"], r.text


def test_others_entries_after_the_window_are_403(
    client: TestClient[Any], session: Session, world: World, ticket: Ticket
) -> None:
    base = f"/api/v1/tickets/{ticket.number}/worklog"
    tech = auth(session, world.users["technician"])
    entry_id = client.post(base, json={"minutes": 20}, headers=tech).json()["entry"]["id"]
    entry = session.get(WorkLogEntry, entry_id)
    assert entry is not None
    entry.created_at = utcnow() - timedelta(days=4)  # PULPIT_WORKLOG_EDIT_DAYS is 3 here
    session.flush()
    r = client.patch(f"{base}/{entry_id}", json={"minutes": 25}, headers=tech)
    assert r.status_code == 403 and "3 days" in r.json()["detail"]
    coord = auth(session, world.users["coordinator"])
    r = client.patch(
        f"{base}/{entry_id}", json={"minutes": 25, "user": "admin@support.example"}, headers=coord
    )
    assert r.status_code == 200 and r.json()["entry"]["user"] == "admin@support.example"
    r = client.patch(f"{base}/{entry_id}", json={"hours": 1}, headers=coord)
    assert r.status_code == 400 and "unknown field hours" in r.json()["detail"]
    # Logging for someone else by e-mail is a coordinator's.
    r = client.post(base, json={"minutes": 10, "user": "admin@support.example"}, headers=coord)
    assert r.status_code == 201 and r.json()["data"]["for"] == "admin@support.example"


def test_the_timer(client: TestClient[Any], session: Session, world: World, ticket: Ticket) -> None:
    base = f"/api/v1/tickets/{ticket.number}"
    tech = auth(session, world.users["technician"])
    r = client.post(f"{base}/timer", json={"action": "start"}, headers=tech)
    assert r.status_code == 200 and r.json()["timer"]["ticket"] == ticket.number
    assert client.get(f"{base}/worklog", headers=tech).json()["timer"]["ticket"] == ticket.number
    r = client.post(
        f"{base}/timer", json={"action": "stop", "description": "z stopera"}, headers=tech
    )
    assert r.status_code == 200, r.text
    assert r.json()["timer"] is None and r.json()["entry"]["minutes"] == 1
    assert r.json()["entry"]["description"] == "z stopera"
    r = client.post(f"{base}/timer", json={"action": "cancel"}, headers=tech)
    assert r.status_code == 409
    r = client.post(f"{base}/timer", json={"action": "pause"}, headers=tech)
    assert r.status_code == 400 and "start, stop or cancel" in r.json()["detail"]


def test_clients_read_billable_entries_when_the_contract_shows_them(
    client: TestClient[Any], session: Session, world: World, ticket: Ticket
) -> None:
    base = f"/api/v1/tickets/{ticket.number}/worklog"
    tech = auth(session, world.users["technician"])
    client.post(base, json={"minutes": 30, "note": "naprawa"}, headers=tech)
    client.post(base, json={"minutes": 10, "note": "wewnętrzne", "billable": False}, headers=tech)
    anna = auth(session, world.users["client"])
    assert client.get(base, headers=anna).json()["entries"] == []
    world.acme_contract.worklog_visible_to_client = True
    session.flush()
    shown = client.get(base, headers=anna).json()
    assert [e["description"] for e in shown["entries"]] == ["naprawa"]
    assert set(shown["entries"][0]) == {"id", "started_at", "minutes", "description"}
    assert client.post(base, json={"minutes": 5}, headers=anna).status_code == 403
