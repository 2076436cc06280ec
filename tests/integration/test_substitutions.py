"""Substitutions: the substitute sees the absent person's tickets within the window only,
chains resolve, cycles stop, every start and end is audited; through core, the scope, the
SLA recipients and the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.access.accounts import create_api_token, upsert_user
from core.access.permissions import can_view, ticket_scope
from core.access.substitutions import (
    create_substitution,
    end_substitution,
    list_substitutions,
    represented,
)
from core.audit import AuditEntry
from core.directory.models import User
from core.errors import Forbidden, InputError, NotFound
from core.notify.recipients import sla_recipients, with_substitutes
from core.tickets import services as svc
from core.tickets.models import Ticket
from tests.factories import World, at, build_world
from web.app import create_app

START = at("2026-12-01 08:00")
END = at("2026-12-05 16:00")
BEFORE = START - timedelta(hours=1)
DURING = START + timedelta(days=1)
AFTER = END + timedelta(minutes=1)
CREATED = START - timedelta(days=1)


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    w.users["technician3"] = upsert_user(
        session, email="tech3@support.example", role="technician", name="Technician3"
    )
    w.users["subcontractor2"] = upsert_user(
        session, email="sub2@fixit.example", role="subcontractor", subcontractor="FixIt"
    )
    session.flush()
    return w


@pytest.fixture
def tickets(session: Session, world: World) -> dict[str, Ticket]:
    u = world.users
    out: dict[str, Ticket] = {}
    for name, assignee in (("t1", "technician"), ("t2", "technician2"), ("t3", "technician3")):
        t = svc.open_ticket(
            session,
            svc.NewTicket(subject=name, requester=u["client"], contract=world.acme_contract),
        )
        svc.assign(session, t, actor=u["coordinator"], assignee=u[assignee], subcontractor=None)
        out[name] = t
    session.flush()
    return out


def visible(session: Session, user: User, now: Any) -> set[str]:
    rows = session.scalars(select(Ticket).where(ticket_scope(user, now=now)))
    return {t.subject for t in rows}


def cover(session: Session, w: World, absent: str, substitute: str, **kw: Any) -> Any:
    return create_substitution(
        session,
        absent=w.users[absent],
        substitute=w.users[substitute],
        starts_at=kw.get("starts_at", START),
        ends_at=kw.get("ends_at", END),
        actor=w.users[kw.get("actor", "coordinator")],
        now=kw.get("now", CREATED),
    )


# (who covers whom: list of (absent, substitute)), viewer, instant -> the tickets they see
SCOPE_ROWS: list[tuple[str, list[tuple[str, str]], str, Any, set[str]]] = [
    ("none", [], "technician2", DURING, {"t2"}),
    ("before the window", [("technician", "technician2")], "technician2", BEFORE, {"t2"}),
    ("in the window", [("technician", "technician2")], "technician2", DURING, {"t1", "t2"}),
    ("at the start", [("technician", "technician2")], "technician2", START, {"t1", "t2"}),
    ("at the end", [("technician", "technician2")], "technician2", END, {"t2"}),
    ("after the window", [("technician", "technician2")], "technician2", AFTER, {"t2"}),
    ("the absent keeps theirs", [("technician", "technician2")], "technician", DURING, {"t1"}),
    ("a bystander", [("technician", "technician2")], "technician3", DURING, {"t3"}),
    (
        "a chain",
        [("technician", "technician2"), ("technician2", "technician3")],
        "technician3",
        DURING,
        {"t1", "t2", "t3"},
    ),
    (
        "a cycle",
        [("technician", "technician2"), ("technician2", "technician")],
        "technician",
        DURING,
        {"t1", "t2"},
    ),
    (
        "covering a coordinator",
        [("coordinator", "technician3")],
        "technician3",
        DURING,
        {
            "t1",
            "t2",
            "t3",
        },
    ),
]


@pytest.mark.parametrize(
    ("pairs", "viewer", "now", "expected"),
    [row[1:] for row in SCOPE_ROWS],
    ids=[row[0] for row in SCOPE_ROWS],
)
def test_the_scope_follows_the_window(
    session: Session,
    world: World,
    tickets: dict[str, Ticket],
    pairs: list[tuple[str, str]],
    viewer: str,
    now: Any,
    expected: set[str],
) -> None:
    for absent, substitute in pairs:
        cover(session, world, absent, substitute)
    user = world.users[viewer]
    assert visible(session, user, now) == expected
    assert {name for name, t in tickets.items() if can_view(user, t, now=now)} == expected


def test_ending_early_stops_access_at_once(
    session: Session, world: World, tickets: dict[str, Ticket]
) -> None:
    sub = cover(session, world, "technician", "technician2")
    tech2 = world.users["technician2"]
    assert can_view(tech2, tickets["t1"], now=DURING)
    end_substitution(session, sub.id, world.users["coordinator"], DURING)
    assert not can_view(tech2, tickets["t1"], now=DURING)
    assert visible(session, tech2, DURING) == {"t2"}
    assert not sub.is_active(DURING)
    with pytest.raises(InputError, match="already ended"):
        end_substitution(session, sub.id, world.users["coordinator"], DURING)


def test_the_default_clock_is_used_without_now(
    session: Session, world: World, tickets: dict[str, Ticket]
) -> None:
    from core.clock import utcnow

    now = utcnow()
    cover(
        session,
        world,
        "technician",
        "technician2",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        now=now,
    )
    assert can_view(world.users["technician2"], tickets["t1"])
    assert visible(session, world.users["technician2"], None) == {"t1", "t2"}


def test_represented_resolves_chains_and_stops_at_cycles(session: Session, world: World) -> None:
    u = world.users
    cover(session, world, "technician", "technician2")
    cover(session, world, "technician2", "technician3")
    cover(session, world, "technician3", "technician")
    ids = {u[k].id for k in ("technician", "technician2", "technician3")}
    assert represented(session, u["technician3"], DURING) == ids
    assert represented(session, u["technician3"], AFTER) == {u["technician3"].id}


def test_subcontractor_users_cover_colleagues_of_their_company(
    session: Session, world: World
) -> None:
    sub = cover(session, world, "subcontractor", "subcontractor2")
    assert sub.substitute.email == "sub2@fixit.example"
    with pytest.raises(InputError, match="same subcontractor"):
        cover(session, world, "subcontractor", "technician")


INVALID: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("self", {"absent": "technician", "substitute": "technician"}, InputError, "themselves"),
    ("client", {"absent": "technician", "substitute": "client"}, InputError, "staff"),
    ("reversed", {"starts_at": END, "ends_at": START}, InputError, "end after"),
    ("naive", {"starts_at": START.replace(tzinfo=None)}, InputError, "time zone"),
    ("past", {"now": AFTER}, InputError, "past"),
    ("not own", {"actor": "technician3"}, Forbidden, "own absence"),
    ("by client", {"actor": "client"}, Forbidden, "staff"),
]


@pytest.mark.parametrize(
    ("kw", "error", "sentence"), [r[1:] for r in INVALID], ids=[r[0] for r in INVALID]
)
def test_create_validates(
    session: Session, world: World, kw: dict[str, Any], error: type[Exception], sentence: str
) -> None:
    kw = dict(kw)
    absent = kw.pop("absent", "technician")
    substitute = kw.pop("substitute", "technician2")
    with pytest.raises(error, match=sentence):
        cover(session, world, absent, substitute, **kw)


def test_staff_record_their_own_absence_and_list_their_own(session: Session, world: World) -> None:
    u = world.users
    mine = cover(session, world, "technician", "technician2", actor="technician")
    cover(session, world, "technician3", "coordinator")
    assert list_substitutions(session, u["technician"], DURING) == [mine]
    assert len(list_substitutions(session, u["admin"], DURING)) == 2
    assert list_substitutions(session, u["admin"], AFTER) == []
    assert len(list_substitutions(session, u["admin"], AFTER, include_past=True)) == 2
    with pytest.raises(NotFound):
        end_substitution(session, mine.id, u["technician3"], DURING)


def test_every_start_and_end_is_audited(session: Session, world: World) -> None:
    sub = cover(session, world, "technician", "technician2")
    end_substitution(session, sub.id, world.users["technician"], DURING)
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.action.like("substitution.%")).order_by(AuditEntry.id)
    ).all()
    assert [(e.action, e.actor) for e in entries] == [
        ("substitution.create", "coord@support.example"),
        ("substitution.end", "tech@support.example"),
    ]
    assert entries[0].data["substitute"] == "tech2@support.example"
    assert entries[1].at == DURING


def test_sla_recipients_include_the_substitute_within_the_window(
    session: Session, world: World, tickets: dict[str, Ticket]
) -> None:
    u = world.users
    cover(session, world, "technician", "technician2")
    cover(session, world, "technician2", "technician3")
    emails = {p.email for p in sla_recipients(session, tickets["t1"], DURING)}
    assert {"tech@support.example", "tech2@support.example", "tech3@support.example"} <= emails
    emails = {p.email for p in sla_recipients(session, tickets["t1"], AFTER)}
    assert "tech2@support.example" not in emails and "tech@support.example" in emails
    people = with_substitutes(session, [u["technician"], u["technician2"]], DURING)
    assert [p.email for p in people] == [
        "tech@support.example",
        "tech2@support.example",
        "tech3@support.example",
    ]


# --- API -------------------------------------------------------------------------------------


@pytest.fixture
def client(session: Session, tmp_path: Any) -> Iterator[TestClient[Any]]:
    # A sessionmaker (not a bare function): the app may configure it (core.notify.notifications).
    factory = sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    app = create_app(Settings(data_dir=tmp_path, secret_key="test"), session_factory=factory)
    with TestClient(app) as c:
        yield c


def auth(session: Session, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(session, user)}"}


def body(**kw: str) -> dict[str, str]:
    data = {
        "absent": "tech@support.example",
        "substitute": "tech2@support.example",
        "starts_at": "2020-01-01T08:00:00Z",
        "ends_at": "2099-01-01T08:00:00+01:00",
    }
    data.update(kw)
    return data


def test_api_creates_lists_and_ends(
    client: TestClient[Any], session: Session, world: World, tickets: dict[str, Ticket]
) -> None:
    h = auth(session, world.users["coordinator"])
    r = client.post("/api/v1/substitutions", json=body(), headers=h)
    assert r.status_code == 201, r.text
    data = r.json()
    assert data["absent"] == "tech@support.example"
    assert data["substitute"] == "tech2@support.example"
    assert data["active"] is True and data["ended_at"] is None
    assert data["ends_at"] == "2099-01-01T07:00:00Z"

    h2 = auth(session, world.users["technician2"])
    numbers = {t["number"] for t in client.get("/api/v1/tickets", headers=h2).json()["items"]}
    assert tickets["t1"].number in numbers
    listed = client.get("/api/v1/substitutions", headers=h2).json()["items"]
    assert [s["id"] for s in listed] == [data["id"]]

    r = client.delete(f"/api/v1/substitutions/{data['id']}", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False and r.json()["ended_at"]
    numbers = {t["number"] for t in client.get("/api/v1/tickets", headers=h2).json()["items"]}
    assert tickets["t1"].number not in numbers
    r = client.get(f"/api/v1/tickets/{tickets['t1'].number}", headers=h2)
    assert r.status_code == 404
    assert client.get("/api/v1/substitutions", headers=h).json()["items"] == []
    assert len(client.get("/api/v1/substitutions?past=true", headers=h).json()["items"]) == 1


BAD_BODIES: list[tuple[str, dict[str, str], str]] = [
    ("unknown person", {"absent": "nobody@x.example"}, "no user"),
    ("bad time", {"starts_at": "tomorrow"}, "ISO 8601"),
    ("naive time", {"starts_at": "2026-12-01T08:00:00"}, "time zone"),
    ("reversed", {"ends_at": "2019-01-01T00:00:00Z"}, "end after"),
    ("same person", {"substitute": "tech@support.example"}, "themselves"),
    ("a client", {"substitute": "anna@acme.example"}, "staff"),
]


@pytest.mark.parametrize(
    ("changes", "sentence"), [r[1:] for r in BAD_BODIES], ids=[r[0] for r in BAD_BODIES]
)
def test_api_answers_bad_input_with_400_sentences(
    client: TestClient[Any],
    session: Session,
    world: World,
    changes: dict[str, str],
    sentence: str,
) -> None:
    h = auth(session, world.users["coordinator"])
    r = client.post("/api/v1/substitutions", json=body(**changes), headers=h)
    assert r.status_code == 400, r.text
    assert sentence in r.json()["detail"]


def test_api_refuses_clients_and_foreign_absences(
    client: TestClient[Any], session: Session, world: World
) -> None:
    hc = auth(session, world.users["client"])
    assert client.get("/api/v1/substitutions", headers=hc).status_code == 403
    r = client.post("/api/v1/substitutions", json=body(), headers=hc)
    assert r.status_code == 403 and r.json()["detail"]
    ht = auth(session, world.users["technician3"])
    r = client.post("/api/v1/substitutions", json=body(), headers=ht)
    assert r.status_code == 403 and "own absence" in r.json()["detail"]
    r = client.delete("/api/v1/substitutions/9999", headers=ht)
    assert r.status_code == 404 and r.json()["detail"]
    own = client.post(
        "/api/v1/substitutions", json=body(absent="tech3@support.example"), headers=ht
    )
    assert own.status_code == 201, own.text


# --- Console ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.e2e.conftest import build_seeded_app

    return build_seeded_app(tmp_path_factory.mktemp("console-substitutions"))


def test_console_adds_lists_and_ends_a_substitution(instance: Any) -> None:
    from tests.e2e.conftest import console_client

    client, csrf = console_client(instance.app, instance.users["coordinator"])
    page = client.get("/substitutions")
    assert page.status_code == 200 and 'href="/substitutions"' in page.text
    form = {
        "csrf_token": csrf,
        "absent": instance.users["technician"],
        "substitute": instance.users["technician2"],
        "starts_at": "2020-01-01T08:00",
        "ends_at": "2099-01-01T08:00",
    }
    r = client.post("/substitutions", data={**form, "csrf_token": "forged"})
    assert r.status_code == 403
    r = client.post("/substitutions", data={**form, "ends_at": "2019-01-01T08:00"})
    assert r.status_code == 400 and "musi kończyć się po swoim początku" in r.text
    r = client.post("/substitutions", data=form, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/substitutions")
    ids = re.findall(r'action="/substitutions/(\d+)/end"', page.text)
    assert len(ids) == 1
    r = client.post(f"/substitutions/{ids[0]}/end", data={"csrf_token": csrf})
    assert r.status_code == 200
    assert f"/substitutions/{ids[0]}/end" not in r.text


def test_console_page_is_for_staff_only(instance: Any) -> None:
    from tests.e2e.conftest import console_client

    client, _ = console_client(instance.app, instance.users["client"])
    assert client.get("/substitutions").status_code == 403
    assert 'href="/substitutions"' not in client.get("/tickets").text
