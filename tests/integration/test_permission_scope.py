"""The one permission scope, table-driven: every role against own and foreign tickets,
through core (lists and lookups) and through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import create_api_token
from core.access.permissions import can
from core.clock import utcnow
from core.errors import NotFound
from core.tickets import services as svc
from core.tickets.queries import TicketFilter, search_tickets
from tests.factories import World, build_world
from web.app import create_app

# Tickets of the scenario, by name:
#   own       requested by client (Acme), assigned to technician, handed to FixIt;
#             and client2 (Acme) is copied on it (core.tickets.contacts)
#   colleague requested by client2 (Acme), unassigned
#   foreign   requested by beta (Beta), assigned to technician2
#   triage    from an unknown sender, no client, no contract
VISIBLE: dict[str, set[str]] = {
    "admin": {"own", "colleague", "foreign", "triage"},
    "coordinator": {"own", "colleague", "foreign", "triage"},
    "technician": {"own"},
    "technician2": {"foreign"},
    "subcontractor": {"own"},
    "client": {"own"},
    "client2": {"colleague", "own"},
    "manager": {"own", "colleague"},
    "beta": {"foreign"},
}

# role -> (may comment publicly, may write internal notes, may assign, may change in bulk)
ABILITIES: dict[str, tuple[bool, bool, bool, bool]] = {
    "admin": (True, True, True, True),
    "coordinator": (True, True, True, True),
    "technician": (True, True, False, False),
    "subcontractor": (True, True, False, False),
    "client": (True, False, False, False),
    "manager": (True, False, False, False),
}


@pytest.fixture
def scenario(session: Session) -> tuple[World, dict[str, int]]:
    from core.directory.services import find_or_create_contact

    w = build_world(session)
    u = w.users
    own = svc.open_ticket(
        session, svc.NewTicket(subject="Own", requester=u["client"], contract=w.acme_contract)
    )
    svc.assign(
        session, own, actor=u["coordinator"], assignee=u["technician"], subcontractor=w.fixit
    )
    from core.tickets.contacts import add_contact

    add_contact(session, own, u["client2"], actor=u["client"])
    colleague = svc.open_ticket(
        session,
        svc.NewTicket(subject="Colleague", requester=u["client2"], contract=w.acme_contract),
    )
    foreign = svc.open_ticket(
        session, svc.NewTicket(subject="Foreign", requester=u["beta"], contract=w.beta_contract)
    )
    svc.assign(
        session, foreign, actor=u["coordinator"], assignee=u["technician2"], subcontractor=None
    )
    stranger = find_or_create_contact(session, "who@nowhere.example")
    triage = svc.open_ticket(session, svc.NewTicket(subject="Triage", requester=stranger))
    session.flush()
    numbers = {
        "own": own.number,
        "colleague": colleague.number,
        "foreign": foreign.number,
        "triage": triage.number,
    }
    return w, numbers


@pytest.mark.parametrize("role", sorted(VISIBLE))
def test_lists_show_exactly_the_visible_tickets(
    session: Session, scenario: tuple[World, dict[str, int]], role: str
) -> None:
    w, numbers = scenario
    page = search_tickets(session, w.users[role], TicketFilter(per_page=200), utcnow())
    shown = {n for n in (t.number for t in page.items)}
    assert shown == {numbers[name] for name in VISIBLE[role]}
    assert page.total == len(VISIBLE[role])


@pytest.mark.parametrize("role", sorted(VISIBLE))
def test_lookups_refuse_invisible_tickets_as_not_found(
    session: Session, scenario: tuple[World, dict[str, int]], role: str
) -> None:
    w, numbers = scenario
    for name, number in numbers.items():
        if name in VISIBLE[role]:
            assert svc.get_ticket(session, number, w.users[role]).number == number
        else:
            with pytest.raises(NotFound):
                svc.get_ticket(session, number, w.users[role])


@pytest.mark.parametrize("role", sorted(ABILITIES))
def test_actions_per_role_on_a_visible_ticket(
    session: Session, scenario: tuple[World, dict[str, int]], role: str
) -> None:
    w, numbers = scenario
    ticket = svc.get_ticket(session, numbers["own"] if role != "manager" else numbers["colleague"])
    comment, note, assign, bulk = ABILITIES[role]
    user = w.users[role]
    assert can(user, "comment", ticket) is comment
    assert can(user, "note", ticket) is note
    assert can(user, "assign", ticket) is assign
    assert can(user, "bulk") is bulk


@pytest.fixture
def api(session: Session, tmp_path: Any) -> Iterator[TestClient[Any]]:
    conn = session.connection()
    app = create_app(
        Settings(data_dir=tmp_path, secret_key="t"),
        session_factory=lambda: Session(bind=conn, join_transaction_mode="create_savepoint"),
    )
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("role", sorted(VISIBLE))
def test_api_scope_matches_the_table(
    session: Session, scenario: tuple[World, dict[str, int]], api: TestClient[Any], role: str
) -> None:
    w, numbers = scenario
    headers = {"Authorization": f"Bearer {create_api_token(session, w.users[role])}"}
    listed = {
        t["number"]
        for t in api.get("/api/v1/tickets?per_page=200", headers=headers).json()["items"]
    }
    assert listed == {numbers[n] for n in VISIBLE[role]}
    for name, number in numbers.items():
        r = api.get(f"/api/v1/tickets/{number}", headers=headers)
        assert r.status_code == (200 if name in VISIBLE[role] else 404), (role, name)
        r = api.post(f"/api/v1/tickets/{number}/comments", json={"body": "hi"}, headers=headers)
        if name not in VISIBLE[role]:
            assert r.status_code == 404, (role, name)


# Issue 11: which internal notes of the "own" ticket (handed to FixIt) each role reads through
# the API: staff everything, the subcontractor only what is meant for them, clients neither.
NOTES_SEEN: dict[str, set[str]] = {
    "admin": {"staff note", "note for FixIt"},
    "coordinator": {"staff note", "note for FixIt"},
    "technician": {"staff note", "note for FixIt"},
    "subcontractor": {"note for FixIt"},
    "client": set(),
    "client2": set(),
    "manager": set(),
}


@pytest.mark.parametrize("role", sorted(NOTES_SEEN))
def test_api_notes_follow_their_audience(
    session: Session, scenario: tuple[World, dict[str, int]], api: TestClient[Any], role: str
) -> None:
    w, numbers = scenario
    own = svc.get_ticket(session, numbers["own"])
    coordinator = w.users["coordinator"]
    svc.add_comment(session, own, author=coordinator, body="staff note", public=False)
    svc.add_comment(
        session,
        own,
        author=coordinator,
        body="note for FixIt",
        public=False,
        audience="subcontractor",
    )
    session.flush()
    headers = {"Authorization": f"Bearer {create_api_token(session, w.users[role])}"}
    events = api.get(f"/api/v1/tickets/{numbers['own']}", headers=headers).json()["events"]
    notes = {e["body_text"] for e in events if e["type"] == "note"}
    assert notes == NOTES_SEEN[role]
