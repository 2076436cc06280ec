"""Macros (issue 15, core.desk.macros): checked when saved, applied in one transaction with a
reply, a status, an assignment and field values, all or nothing with a sentence naming what
was refused; on both databases. Then the ticket page's button and the API."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.accounts import create_api_token, get_user_by_email
from core.contracts.models import CustomField, Status
from core.desk import macros as desk
from core.errors import Forbidden, InputError, NotFound
from core.tickets import services as svc
from core.tickets.models import Ticket
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client
from tests.factories import World, build_world


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    session.add_all(
        [
            CustomField(name="location", type="select", options=["Warszawa", "Poznań"]),
            CustomField(
                name="room",
                type="select",
                options=["A1", "A2", "B1"],
                depends_on={
                    "field": "location",
                    "options": {"Warszawa": ["A1", "A2"], "Poznań": ["B1"]},
                },
            ),
        ]
    )
    # Only BETA has a status "Waiting for parts".
    w.beta_contract.statuses.append(Status(name="Waiting for parts", category="paused", position=9))
    w.users["client"].name = "Anna Nowak"
    session.flush()
    return w


def ticket(session: Session, world: World, **kw: Any) -> Ticket:
    return svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Awaria drukarki",
            requester=world.users["client"],
            contract=kw.pop("contract", world.acme_contract),
            body="Nie drukuje.",
            **kw,
        ),
    )


def spec(**kw: Any) -> desk.MacroSpec:
    return desk.MacroSpec(**kw)


def test_a_macro_applies_fields_assignment_reply_and_status_at_once(
    session: Session, world: World
) -> None:
    coord = world.users["coordinator"]
    t = ticket(session, world)
    macro = desk.create_macro(
        session,
        coord,
        spec(
            name="Czekamy na klienta",
            reply="Dzień dobry {{ requester.first_name }}, prosimy o zdjęcie błędu (#{{ ticket.number }}).",
            status="waiting for client",  # matched without case
            assignee="tech@support.example",
            custom_fields={"location": "Warszawa", "room": "A2"},
        ),
    )
    assert macro.status == "Waiting for client"
    applied = desk.apply_macro(session, coord, t, macro.id)
    assert [e.type for e in applied.events] == ["field", "assignment", "comment", "status"]
    assert t.custom_fields == {"location": "Warszawa", "room": "A2"}
    assert t.assignee is world.users["technician"]
    assert applied.events[2].public and applied.events[2].body_text == (
        f"Dzień dobry Anna, prosimy o zdjęcie błędu (#{t.number})."
    )
    assert t.status.name == "Waiting for client"
    assert all(e.author is coord for e in applied.events)


def test_an_internal_reply_and_me_as_assignee(session: Session, world: World) -> None:
    coord = world.users["coordinator"]
    t = ticket(session, world)
    macro = desk.create_macro(
        session, coord, spec(name="Biorę", reply="Sprawdzam.", reply_public=False, assignee="me")
    )
    applied = desk.apply_macro(session, coord, t, macro.id)
    assert [e.type for e in applied.events] == ["assignment", "note"]
    assert t.assignee is coord


def test_a_technician_takes_an_unassigned_ticket_of_their_queue_with_a_me_macro(
    session: Session, world: World
) -> None:
    tech = world.users["technician"]
    world.acme_contract.technicians.append(tech)
    session.flush()
    t = ticket(session, world)
    macro = desk.create_macro(
        session, tech, spec(name="Biorę", assignee="me", status="In progress")
    )
    applied = desk.apply_macro(session, tech, t, macro.id)
    assert [e.type for e in applied.events] == ["assignment", "status"]
    assert applied.events[0].data.get("taken") is True and t.assignee is tech


def test_a_status_the_contract_lacks_refuses_the_whole_macro(
    session: Session, world: World
) -> None:
    coord = world.users["coordinator"]
    t = ticket(session, world)  # ACME has no "Waiting for parts"
    events_before = len(t.events)
    macro = desk.create_macro(
        session,
        coord,
        spec(name="Części", reply="Zamówiliśmy części.", status="Waiting for parts", assignee="me"),
    )
    savepoint = session.begin_nested()
    with pytest.raises(desk.MacroRefused) as exc:
        desk.apply_macro(session, coord, t, macro.id)
    savepoint.rollback()
    sentence = str(exc.value)
    assert sentence.startswith("macro 'Części' was not applied (the status): ")
    assert "there is no status 'Waiting for parts' for contract ACME-2026" in sentence
    assert exc.value.status_code == 400
    session.refresh(t)
    assert len(t.events) == events_before and t.assignee is None  # nothing kept


def test_a_field_value_its_dependency_refuses_names_the_field(
    session: Session, world: World
) -> None:
    coord = world.users["coordinator"]
    t = ticket(session, world)
    macro = desk.create_macro(
        session, coord, spec(name="Poznań A1", custom_fields={"location": "Poznań", "room": "A1"})
    )
    with pytest.raises(desk.MacroRefused, match=r"\(the fields\): .*room|Room"):
        desk.apply_macro(session, coord, t, macro.id)


def test_what_a_macro_holds_is_checked_when_saved(session: Session, world: World) -> None:
    coord = world.users["coordinator"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": " "}, "give the macro a name"),
        ({"name": "Pusty"}, "needs a reply, a status"),
        ({"name": "X", "status": "Nope"}, "no contract has a status 'Nope'"),
        ({"name": "X", "assignee": "nobody@nowhere.example"}, "no user with e-mail"),
        ({"name": "X", "assignee": "anna@acme.example"}, "is not staff"),
        ({"name": "X", "custom_fields": {"colour": "red"}}, "no custom field 'colour'"),
        ({"name": "X", "reply": "{{ ticket.secret }}"}, "no placeholder {{ ticket.secret }}"),
    ]
    for kwargs, words in cases:
        with pytest.raises(InputError, match=re.escape(words)):
            desk.create_macro(session, coord, spec(**kwargs))
    desk.create_macro(session, coord, spec(name="Raz", status="Resolved"))
    with pytest.raises(InputError, match="already a macro named 'raz'"):
        desk.create_macro(session, coord, spec(name="raz", status="Resolved"))


def test_field_lines_from_the_console(session: Session, world: World) -> None:
    assert desk.fields_from_text(session, "location = Warszawa\n\nroom=A1") == {
        "location": "Warszawa",
        "room": "A1",
    }
    with pytest.raises(InputError, match="name = value"):
        desk.fields_from_text(session, "location Warszawa")


def test_who_may_share_and_apply(session: Session, world: World) -> None:
    u = world.users
    with pytest.raises(Forbidden):
        desk.create_macro(session, u["technician"], spec(name="S", status="Resolved"), shared=True)
    with pytest.raises(Forbidden):
        desk.create_macro(session, u["client"], spec(name="S", status="Resolved"))
    mine = desk.create_macro(session, u["technician2"], spec(name="Moje", status="Resolved"))
    shared = desk.create_macro(
        session,
        u["coordinator"],
        spec(name="Koord", status="Resolved", roles=["coordinator"]),
        shared=True,
    )
    assert [m.id for m in desk.usable_macros(session, u["coordinator"])] == [shared.id]
    assert desk.usable_macros(session, u["technician"]) == []
    t = ticket(session, world, assignee=u["technician"])
    with pytest.raises(NotFound):
        desk.apply_macro(session, u["technician"], t, mine.id)
    with pytest.raises(NotFound):
        desk.apply_macro(session, u["technician"], t, shared.id)
    with pytest.raises(Forbidden):
        desk.apply_macro(session, u["client"], t, shared.id)


# --- The console and the API ----------------------------------------------------------------


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("macros"))


def test_the_ticket_page_offers_macros_and_one_click_applies_one(instance: SeededApp) -> None:
    client, csrf = console_client(instance.app, instance.users["coordinator"])
    r = client.post(
        "/profile/macros",
        data={
            "csrf_token": csrf,
            "name": "Eskaluj",
            "reply": "Przekazujemy wyżej: #{{ ticket.number }}.",
            "reply_public": "0",
            "status": "Escalated",
            "assignee": "me",
            "fields": "location = Warszawa",
        },
    )
    assert r.status_code == 200 and "Zapisano makro Eskaluj." in r.text
    number = instance.numbers["key_new"]
    page = client.get(f"/tickets/{number}").text
    button = re.search(rf'action="/tickets/{number}/macros/(\d+)"', page)
    assert button is not None and 'data-testid="macro-apply"' in page
    r = client.post(
        f"/tickets/{number}/macros/{button.group(1)}",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303 and re.search(r"#e\d+$", r.headers["location"])
    with instance.factory() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None
        assert (t.status.name, t.assignee.email if t.assignee else None) == (
            "Escalated",
            instance.users["coordinator"],
        )
        assert t.custom_fields.get("location") == "Warszawa"
        assert t.events[-2].body_text == f"Przekazujemy wyżej: #{number}."


def test_a_refused_macro_shows_the_ticket_with_the_sentence_and_changes_nothing(
    instance: SeededApp,
) -> None:
    client, csrf = console_client(instance.app, instance.users["coordinator"])
    client.post(
        "/profile/macros",
        data={
            "csrf_token": csrf,
            "name": "Części",
            "reply": "Czekamy.",
            "status": "Waiting for parts",
        },
    )
    number = instance.numbers["beta_open"]  # BETA-STD has no "Waiting for parts"
    page = client.get(f"/tickets/{number}").text
    macro_id = re.search(rf'action="/tickets/{number}/macros/(\d+)".*?>Części</button>', page, re.S)
    assert macro_id is not None
    before = page.count('data-testid="event"')
    r = client.post(f"/tickets/{number}/macros/{macro_id.group(1)}", data={"csrf_token": csrf})
    assert r.status_code == 400
    error = re.search(r'data-testid="form-error">(.*?)</p>', r.text, re.S)
    assert error is not None
    assert "makro 'Części' nie zostało zastosowane (status):" in html.unescape(error.group(1))
    assert client.get(f"/tickets/{number}").text.count('data-testid="event"') == before


def test_the_api_applies_a_macro(instance: SeededApp) -> None:
    from litestar.testing import TestClient

    with instance.factory() as s:
        coord = get_user_by_email(s, instance.users["coordinator"])
        assert coord is not None
        macro = desk.create_macro(s, coord, desk.MacroSpec(name="API", status="In progress"))
        token = create_api_token(s, coord)
        macro_id = macro.id
        s.commit()
    api: Any = TestClient(instance.app)
    headers = {"Authorization": f"Bearer {token}"}
    assert "API" in [m["name"] for m in api.get("/api/v1/macros", headers=headers).json()["items"]]
    number = instance.numbers["beta_waiting"]
    r = api.post(f"/api/v1/tickets/{number}/macros/{macro_id}", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "In progress"
    assert [e["type"] for e in r.json()["events"]] == ["status"]
    r = api.post(f"/api/v1/tickets/{number}/macros/999999", headers=headers)
    assert r.status_code == 404 and "there is no macro 999999" in r.json()["detail"]
