"""Ticket forms (issue 12) through the API and the services: custom field types and rights,
dependencies, required fields on open and on close, checklists, and the list's field filter.
Every refusal: 403 for rights, 400 for a type or dependency, 409 for closing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import create_api_token
from core.contracts.models import CustomField
from core.directory.models import User
from core.tickets import services as svc
from core.tickets.models import Ticket
from tests.factories import World, build_world
from web.app import create_app

FIELDS = [
    dict(
        name="device_serial",
        labels={"pl": "Numer seryjny", "en": "Serial number"},
        type="text",
        edit=["coordinator", "technician"],
        visible_to_client=False,
        position=10,
    ),
    dict(
        name="location",
        label="Location",
        type="select",
        options=["Warszawa", "Poznań"],
        position=20,
    ),
    dict(
        name="room",
        label="Room",
        type="select",
        options=["A1", "A2", "B1"],
        depends_on={"field": "location", "options": {"Warszawa": ["A1", "A2"], "Poznań": ["B1"]}},
        position=30,
    ),
    dict(
        name="outage_cause",
        label="Outage cause",
        type="textarea",
        depends_on={"field": "location", "when": ["Warszawa"]},
        position=40,
    ),
    dict(name="pages", label="Pages", type="number", min_value=0, max_value=1000, position=50),
    dict(name="visit", label="Visit", type="date", position=60),
    dict(name="on_site", label="On site", type="bool", position=70),
    dict(
        name="parts",
        label="Parts",
        type="multiselect",
        options=["toner", "drum", "roller"],
        position=80,
    ),
    dict(
        name="resolution_code",
        label="Resolution code",
        type="text",
        edit=["coordinator"],
        position=90,
    ),
]


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    session.add_all([CustomField(**spec) for spec in FIELDS])  # type: ignore[arg-type]
    w.acme_contract.required_fields = {"location": "open", "device_serial": "close"}
    inspection = next(t for t in w.acme_contract.ticket_types if t.name == "inspection")
    inspection.checklist = {
        "items": ["Sprawdzić toner", "Wyczyścić rolki", "Wydruk testowy"],
        "required_to_close": True,
    }
    session.flush()
    return w


@pytest.fixture
def api(session: Session, tmp_path: Path) -> Iterator[TestClient[Any]]:
    conn = session.connection()

    def factory() -> Session:
        return Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)

    app = create_app(Settings(data_dir=tmp_path, secret_key="test"), session_factory=factory)
    with TestClient(app) as c:
        yield c


def auth(session: Session, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(session, user)}"}


def opened(session: Session, w: World, subject: str = "Drukarka", **values: Any) -> Ticket:
    """A ticket of Anna's under ACME-2026 for the technician, opened by mail (no fields
    asked), with ``values``."""
    ticket = svc.open_ticket(
        session,
        svc.NewTicket(
            subject=subject,
            requester=w.users["client"],
            contract=w.acme_contract,
            assignee=w.users["technician"],
            source="email",
        ),
    )
    if values:
        svc.set_fields(session, ticket, actor=w.users["coordinator"], custom_fields=values)
    session.flush()
    return ticket


def post_fields(api: TestClient[Any], headers: dict[str, str], n: int, **values: Any) -> Any:
    return api.post(f"/api/v1/tickets/{n}/fields", json={"custom_fields": values}, headers=headers)


# --- Types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "stored"),
    [
        ({"pages": "12"}, {"pages": 12}),
        ({"pages": "2,5"}, {"pages": 2.5}),
        ({"visit": "2026-12-01"}, {"visit": "2026-12-01"}),
        ({"on_site": "tak"}, {"on_site": True}),
        ({"parts": ["roller", "toner"]}, {"parts": ["toner", "roller"]}),
        ({"device_serial": "  SN  42 "}, {"device_serial": "SN 42"}),
    ],
)
def test_values_are_stored_as_their_type(
    api: TestClient[Any],
    session: Session,
    world: World,
    values: dict[str, Any],
    stored: dict[str, Any],
) -> None:
    n = opened(session, world).number
    r = post_fields(api, auth(session, world.users["technician"]), n, **values)
    assert r.status_code == 200, r.text
    assert {k: r.json()["custom_fields"][k] for k in stored} == stored


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"pages": "many"}, "Pages needs a number"),
        ({"pages": 1001}, "Pages must be at most 1000"),
        ({"pages": -1}, "Pages must be at least 0"),
        ({"pages": True}, "Pages needs a number"),
        ({"visit": "1.12.2026"}, "Visit needs a date"),
        ({"on_site": "maybe"}, "On site needs yes or no"),
        ({"location": "Kraków"}, "Location must be one of: Warszawa, Poznań"),
        ({"parts": ["toner", "ink"]}, "Parts takes values from"),
        ({"nonsense": 1}, "unknown custom field 'nonsense'"),
    ],
)
def test_a_value_its_type_refuses_is_400_naming_the_field(
    api: TestClient[Any], session: Session, world: World, values: dict[str, Any], words: str
) -> None:
    n = opened(session, world).number
    r = post_fields(api, auth(session, world.users["technician"]), n, **values)
    assert r.status_code == 400
    assert words in r.json()["detail"]


# --- Rights ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "name", "allowed"),
    [
        ("coordinator", "resolution_code", True),
        ("technician", "resolution_code", False),
        ("admin", "device_serial", False),  # edit: [coordinator, technician]
        ("technician", "device_serial", True),
        ("subcontractor", "location", False),
        ("client", "location", False),
    ],
)
def test_who_may_edit_a_field_follows_its_edit_roles(
    api: TestClient[Any], session: Session, world: World, role: str, name: str, allowed: bool
) -> None:
    ticket = opened(session, world)
    svc.assign(
        session,
        ticket,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=world.fixit,
    )
    session.flush()
    value = "Warszawa" if name == "location" else "X"
    r = post_fields(api, auth(session, world.users[role]), ticket.number, **{name: value})
    assert r.status_code == (200 if allowed else 403), r.text
    if not allowed:
        assert "may not edit the field" in r.json()["detail"]


def test_a_subcontractor_may_edit_a_field_that_names_them(session: Session, world: World) -> None:
    field = CustomField(name="meter", label="Meter", type="number", edit=["subcontractor"], visible_to_subcontractor=True, visible_to_client=False)  # fmt: skip
    session.add(field)
    ticket = opened(session, world)
    svc.assign(
        session,
        ticket,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=world.fixit,
    )
    svc.set_fields(
        session, ticket, actor=world.users["subcontractor"], custom_fields={"meter": 1234}
    )
    assert ticket.custom_fields["meter"] == 1234


# --- Dependencies ---------------------------------------------------------------------------


def test_a_dependent_select_takes_only_its_parents_options(
    api: TestClient[Any], session: Session, world: World
) -> None:
    n = opened(session, world).number
    tech = auth(session, world.users["technician"])
    r = post_fields(api, tech, n, location="Poznań", room="A1")
    assert r.status_code == 400
    assert r.json()["detail"] == "A1 is not an option of Room when Location is Poznań"
    assert post_fields(api, tech, n, room="A1").status_code == 400  # no location yet
    r = post_fields(api, tech, n, location="Warszawa", room="A1")
    assert r.status_code == 200
    assert r.json()["custom_fields"] == {"location": "Warszawa", "room": "A1"}


def test_a_field_that_applies_only_for_some_values_is_refused_otherwise(
    api: TestClient[Any], session: Session, world: World
) -> None:
    n = opened(session, world, location="Poznań").number
    r = post_fields(api, auth(session, world.users["technician"]), n, outage_cause="power")
    assert r.status_code == 400
    assert r.json()["detail"] == "Outage cause applies only when Location is Warszawa"


def test_changing_the_parent_clears_what_it_no_longer_allows_with_an_event(
    api: TestClient[Any], session: Session, world: World
) -> None:
    ticket = opened(session, world, location="Warszawa", room="A2", outage_cause="burza")
    r = post_fields(api, auth(session, world.users["technician"]), ticket.number, location="Poznań")
    assert r.status_code == 200
    assert r.json()["custom_fields"] == {"location": "Poznań"}
    events = api.get(f"/api/v1/tickets/{ticket.number}", headers=auth(session, world.users["technician"])).json()["events"]  # fmt: skip
    last = [e for e in events if e["type"] == "field"][-1]
    assert last["data"]["changes"] == {
        "location": ["Warszawa", "Poznań"],
        "room": ["A2", None],
        "outage_cause": ["burza", None],
    }
    assert sorted(last["data"]["cleared"]) == ["outage_cause", "room"]
    assert last["data"]["labels"]["location"] == "Location"


def test_the_event_keeps_labels_per_language(session: Session, world: World) -> None:
    ticket = opened(session, world)
    event = svc.set_fields(
        session, ticket, actor=world.users["technician"], custom_fields={"device_serial": "S1"}
    )
    assert event is not None and event.data["labels"] == {"device_serial": {"pl": "Numer seryjny", "en": "Serial number"}}  # fmt: skip


# --- Required fields ------------------------------------------------------------------------


def test_opening_asks_for_the_fields_required_on_open(
    api: TestClient[Any], session: Session, world: World
) -> None:
    client = auth(session, world.users["client"])
    body = {"subject": "Toner", "requester": "anna@acme.example", "contract": "ACME-2026"}
    r = api.post("/api/v1/tickets", json=body, headers=client)
    assert r.status_code == 400
    assert r.json()["detail"] == "fill in Location to open this ticket"
    # A client may fill in what the contract requires on open, though its edit roles are staff.
    r = api.post(
        "/api/v1/tickets", json={**body, "custom_fields": {"location": "Poznań"}}, headers=client
    )
    assert r.status_code == 201, r.text
    assert r.json()["custom_fields"] == {"location": "Poznań"}
    # ...but nothing else.
    r = api.post("/api/v1/tickets", json={**body, "custom_fields": {"location": "Poznań", "pages": 3}}, headers=client)  # fmt: skip
    assert r.status_code == 403


def test_a_ticket_opened_by_mail_shows_what_is_missing(
    api: TestClient[Any], session: Session, world: World
) -> None:
    n = opened(session, world).number
    r = api.get(f"/api/v1/tickets/{n}", headers=auth(session, world.users["coordinator"]))
    assert r.json()["missing_fields"] == {
        "open": ["location"],
        "close": ["device_serial", "location"],
    }
    # A client does not see device_serial, so it is not missing for them.
    r = api.get(f"/api/v1/tickets/{n}", headers=auth(session, world.users["client"]))
    assert r.json()["missing_fields"] == {"open": ["location"], "close": ["location"]}


def test_closing_waits_for_required_fields_single_and_bulk(
    api: TestClient[Any], session: Session, world: World
) -> None:
    a = opened(session, world, location="Warszawa").number
    b = opened(session, world, location="Poznań", device_serial="SN1").number
    coord = auth(session, world.users["coordinator"])
    r = api.post(f"/api/v1/tickets/{a}/status", json={"status": "Resolved"}, headers=coord)
    assert r.status_code == 409
    # The fields by their labels, in the user's language (the coordinator's is Polish).
    assert r.json()["detail"] == (
        f"ticket #{a} cannot be closed before these fields are filled in: Numer seryjny"
    )
    r = api.post("/api/v1/tickets/bulk-status", json={"numbers": [a, b], "status": "Resolved"}, headers=coord)  # fmt: skip
    assert r.status_code == 409
    assert "Numer seryjny" in str(r.json())
    assert post_fields(api, coord, a, device_serial="SN2").status_code == 200
    r = api.post("/api/v1/tickets/bulk-status", json={"numbers": [a, b], "status": "Resolved"}, headers=coord)  # fmt: skip
    assert r.status_code == 200, r.text


def test_a_field_that_does_not_apply_is_never_missing(session: Session, world: World) -> None:
    world.acme_contract.required_fields = {"outage_cause": "close", "device_serial": "close"}
    ticket = opened(session, world, location="Poznań", device_serial="S")
    svc.change_status(session, ticket, "Resolved", actor=world.users["coordinator"])
    assert ticket.status_category == "closed"


# --- Checklists -----------------------------------------------------------------------------


def test_a_new_ticket_gets_its_types_checklist_and_closing_waits_for_it(
    api: TestClient[Any], session: Session, world: World
) -> None:
    ticket = opened(session, world, "Przegląd drukarki", location="Poznań", device_serial="S")
    assert ticket.ticket_type is not None and ticket.ticket_type.name == "inspection"
    tech = auth(session, world.users["technician"])
    data = api.get(f"/api/v1/tickets/{ticket.number}", headers=tech).json()
    items = data["checklist"]
    assert [i["text"] for i in items] == ["Sprawdzić toner", "Wyczyścić rolki", "Wydruk testowy"]
    assert data["checklist_progress"] == {"done": 0, "total": 3}
    r = api.post(f"/api/v1/tickets/{ticket.number}/checklist/{items[0]['id']}", json={"done": True}, headers=tech)  # fmt: skip
    assert r.status_code == 200
    first = r.json()["checklist"][0]
    assert first["done"] and first["done_by"] == "tech@support.example" and first["done_at"]
    assert r.json()["checklist_progress"] == {"done": 1, "total": 3}
    r = api.post(
        f"/api/v1/tickets/{ticket.number}/status", json={"status": "Resolved"}, headers=tech
    )
    assert r.status_code == 409
    assert r.json()["detail"].endswith("ticked: Wyczyścić rolki, Wydruk testowy")
    for item in items[1:]:
        api.post(f"/api/v1/tickets/{ticket.number}/checklist/{item['id']}", json={"done": True}, headers=tech)  # fmt: skip
    r = api.post(
        f"/api/v1/tickets/{ticket.number}/status", json={"status": "Resolved"}, headers=tech
    )
    assert r.status_code == 200, r.text
    events = api.get(f"/api/v1/tickets/{ticket.number}", headers=tech).json()["events"]
    ticks = [e for e in events if e["type"] == "checklist"]
    assert len(ticks) == 3 and ticks[0]["author"] == "tech@support.example"
    assert ticks[0]["data"] == {"item": "Sprawdzić toner", "item_id": items[0]["id"], "done": True}


def test_who_ticks_and_adds_items(api: TestClient[Any], session: Session, world: World) -> None:
    ticket = opened(session, world, "Przegląd")
    svc.assign(
        session,
        ticket,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=world.fixit,
    )
    session.flush()
    item = ticket.checklist[0].id
    n = ticket.number
    sub = auth(session, world.users["subcontractor"])
    assert api.post(f"/api/v1/tickets/{n}/checklist/{item}", json={"done": True}, headers=sub).status_code == 200  # fmt: skip
    client = auth(session, world.users["client"])
    assert api.post(f"/api/v1/tickets/{n}/checklist/{item}", json={"done": False}, headers=client).status_code == 403  # fmt: skip
    assert api.get(f"/api/v1/tickets/{n}", headers=client).json()["checklist"] == []
    assert api.post(f"/api/v1/tickets/{n}/checklist/99999", json={"done": True}, headers=sub).status_code == 404  # fmt: skip
    assert api.post(f"/api/v1/tickets/{n}/checklist", json={"text": "Zdjęcie"}, headers=sub).status_code == 403  # fmt: skip
    tech = auth(session, world.users["technician"])
    r = api.post(f"/api/v1/tickets/{n}/checklist", json={"text": "Zdjęcie licznika", "required": True}, headers=tech)  # fmt: skip
    assert r.status_code == 201
    assert r.json()["checklist"][-1]["text"] == "Zdjęcie licznika"
    assert r.json()["checklist_progress"] == {"done": 1, "total": 4}
    assert api.post(f"/api/v1/tickets/{n}/checklist", json={"text": "  "}, headers=tech).status_code == 400  # fmt: skip


def test_changing_the_type_adds_its_items_when_asked(
    api: TestClient[Any], session: Session, world: World
) -> None:
    n = opened(session, world, "Awaria").number
    coord = auth(session, world.users["coordinator"])
    r = api.post(f"/api/v1/tickets/{n}/type", json={"ticket_type": "inspection"}, headers=coord)
    assert r.json()["checklist"] == []
    api.post(f"/api/v1/tickets/{n}/type", json={"ticket_type": "failure"}, headers=coord)
    r = api.post(f"/api/v1/tickets/{n}/type", json={"ticket_type": "inspection", "add_checklist": True}, headers=coord)  # fmt: skip
    assert len(r.json()["checklist"]) == 3


# --- The list's field filter ----------------------------------------------------------------


def test_the_list_filters_by_field_values(
    api: TestClient[Any], session: Session, world: World
) -> None:
    waw = opened(session, world, location="Warszawa", parts=["toner", "drum"], pages=10).number
    poz = opened(session, world, location="Poznań", on_site=True).number
    coord = auth(session, world.users["coordinator"])

    def numbers(**query: str) -> list[int]:
        r = api.get("/api/v1/tickets", params=query, headers=coord)
        assert r.status_code == 200, r.text
        return [t["number"] for t in r.json()["items"]]

    assert numbers(**{"field.location": "Warszawa"}) == [waw]
    assert numbers(**{"field.location": "Poznań"}) == [poz]
    assert numbers(**{"field.parts": "drum"}) == [waw]
    assert numbers(**{"field.parts": "roller"}) == []
    assert numbers(**{"field.pages": "10"}) == [waw]
    assert numbers(**{"field.on_site": "true"}) == [poz]
    assert numbers(**{"field.location": "Warszawa", "field.pages": "11"}) == []
    r = api.get("/api/v1/tickets", params={"field.nope": "x"}, headers=coord)
    assert r.status_code == 400 and "no field 'nope'" in r.json()["detail"]
    # A field kept from clients is unknown to them.
    r = api.get("/api/v1/tickets", params={"field.device_serial": "x"}, headers=auth(session, world.users["client"]))  # fmt: skip
    assert r.status_code == 400


def test_a_ticket_sorted_out_of_triage_gets_its_types_checklist(
    session: Session, world: World
) -> None:
    ticket = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Przegląd kserokopiarki", requester=world.users["client"], source="email"
        ),
    )
    assert ticket.contract is None and ticket.checklist == []
    svc.change_contract(session, ticket, world.acme_contract, actor=world.users["coordinator"])
    assert [i.text for i in ticket.checklist][:1] == ["Sprawdzić toner"]
    assert (ticket.checklist_done, ticket.checklist_total) == (0, 3)
