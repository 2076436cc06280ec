"""The console through the permission scope, table-driven: every role against own and foreign
tickets, through the real app (Litestar's TestClient, real login form, real CSRF tokens) on a
fresh migrated SQLite file seeded with the e2e world (tests/e2e/conftest.py).

The expectations are written out by hand below *and* checked against core.access.permissions, so a
change of the rules shows up here as a failing table rather than a silently different console.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from core.access.permissions import can_view
from core.directory.models import User
from core.tickets.models import Attachment, Ticket, TicketEvent
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client

ALL = {
    "overdue",
    "closed",
    "beta_waiting",
    "key_subcontractor",
    "triage",
    "key_assigned",
    "beta_open",
    "key_new",
    "client_web",
}
# What each role sees (tests/e2e/conftest.py describes who requested and works what).
VISIBLE: dict[str, set[str]] = {
    "admin": ALL,
    "coordinator": ALL,
    "technician": {"key_assigned"},
    "technician2": {"overdue", "key_subcontractor"},
    "subcontractor": {"key_subcontractor"},
    "client": {"key_subcontractor", "key_new", "client_web"},
    "client2": {"closed", "key_assigned"},
    "manager": {"closed", "key_subcontractor", "key_assigned", "key_new", "client_web"},
    "beta": {"overdue", "beta_waiting", "beta_open"},
}
# role -> (own ticket, foreign ticket) for the actions below
OWN_FOREIGN: dict[str, tuple[str, str]] = {
    "admin": ("beta_open", "beta_open"),  # admins have no foreign tickets
    "coordinator": ("beta_open", "beta_open"),
    "technician": ("key_assigned", "key_new"),
    "subcontractor": ("key_subcontractor", "key_assigned"),
    "client": ("key_new", "key_assigned"),
    "manager": ("key_assigned", "beta_open"),
}
# role -> (public comment, internal note, status "In progress", assign) on its own ticket
MAY: dict[str, tuple[bool, bool, bool, bool]] = {
    "admin": (True, True, True, True),
    "coordinator": (True, True, True, True),
    "technician": (True, True, True, False),
    "subcontractor": (True, True, True, False),
    "client": (True, False, False, False),
    "manager": (True, False, False, False),
}


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("console-permissions"))


@dataclass
class Browser:
    client: TestClient[Any]
    csrf: str


class Browsers(dict[str, Browser]):
    """One logged-in client per role, created on first use."""

    def __init__(self, instance: SeededApp) -> None:
        super().__init__()
        self.instance = instance

    def __missing__(self, role: str) -> Browser:
        self[role] = Browser(*console_client(self.instance.app, self.instance.users[role]))
        return self[role]


@pytest.fixture(scope="module")
def browsers(instance: SeededApp) -> Browsers:
    return Browsers(instance)


@pytest.mark.parametrize("role", sorted(VISIBLE))
def test_the_table_matches_core_permissions(instance: SeededApp, role: str) -> None:
    with instance.factory() as session:
        user = session.scalar(select(User).where(User.email == instance.users[role]))
        assert user is not None
        seen = {
            name
            for name, number in instance.numbers.items()
            if can_view(user, session.scalar(select(Ticket).where(Ticket.number == number)))  # type: ignore[arg-type]
        }
    assert seen == VISIBLE[role]


@pytest.mark.parametrize("role", sorted(VISIBLE))
def test_the_list_shows_exactly_the_visible_tickets(
    instance: SeededApp, browsers: dict[str, Browser], role: str
) -> None:
    r = browsers[role].client.get("/tickets?state=all&per_page=200")
    assert r.status_code == 200
    shown = {
        int(n)
        for n in re.findall(r'<tr class="ticket-row[^"]*" data-href="/tickets/(\d+)"', r.text)
    }
    assert shown == {instance.numbers[name] for name in VISIBLE[role]}


@pytest.mark.parametrize("role", sorted(VISIBLE))
@pytest.mark.parametrize("ticket", sorted(ALL))
def test_the_detail_is_200_or_404(
    instance: SeededApp, browsers: dict[str, Browser], role: str, ticket: str
) -> None:
    r = browsers[role].client.get(f"/tickets/{instance.numbers[ticket]}")
    expected = 200 if ticket in VISIBLE[role] else 404
    assert r.status_code == expected
    if expected == 404:
        # The same answer as for a number that does not exist: numbers cannot be probed.
        assert "nie istnieje albo nie masz do niego dostępu" in r.text
        assert "Brak dostępu do VPN" not in r.text or ticket != "overdue"


def _post(b: Browser, path: str, data: dict[str, str], *, csrf: bool = True) -> int:
    form = {**data, **({"csrf_token": b.csrf} if csrf else {})}
    if path.endswith("/comment"):
        files = {k: (None, v) for k, v in form.items()}
        r = b.client.post(path, files=files, follow_redirects=False)  # multipart, like the form
    else:
        r = b.client.post(path, data=form, follow_redirects=False)
    return r.status_code


def _current_assignment(instance: SeededApp, number: int) -> dict[str, str]:
    with instance.factory() as session:
        t = session.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None
        return {
            "assignee": t.assignee.email if t.assignee else "",
            "subcontractor": t.subcontractor.name if t.subcontractor else "",
        }


@pytest.mark.parametrize("role", sorted(MAY))
def test_actions_on_own_tickets_follow_the_roles(
    instance: SeededApp, browsers: dict[str, Browser], role: str
) -> None:
    b = browsers[role]
    own = instance.numbers[OWN_FOREIGN[role][0]]
    comment, note, status, assign = MAY[role]
    base = f"/tickets/{own}"
    assert _post(b, base + "/comment", {"body": f"public from {role}"}) == (303 if comment else 403)
    internal = {"body": f"note from {role}", "visibility": "internal"}
    assert _post(b, base + "/comment", internal) == (303 if note else 403)
    assert _post(b, base + "/status", {"status": "In progress"}) == (303 if status else 403)
    # Assigning to the current people keeps the world the same for the other tests.
    assert _post(b, base + "/assign", _current_assignment(instance, own)) == (
        303 if assign else 403
    )


@pytest.mark.parametrize("role", sorted(r for r in MAY if r not in ("admin", "coordinator")))
def test_actions_on_foreign_tickets_are_404(
    instance: SeededApp, browsers: dict[str, Browser], role: str
) -> None:
    b = browsers[role]
    foreign = instance.numbers[OWN_FOREIGN[role][1]]
    assert foreign not in {instance.numbers[n] for n in VISIBLE[role]}
    base = f"/tickets/{foreign}"
    assert _post(b, base + "/comment", {"body": "hello"}) == 404
    assert _post(b, base + "/status", {"status": "Resolved"}) == 404
    assert _post(b, base + "/assign", {"assignee": "", "subcontractor": ""}) == 404
    assert _post(b, base + "/worklog", {"minutes": "5"}) == 404


def _says_reload(text: str) -> bool:
    """The CSRF refusal, in the console's language (Polish by default) or in English."""
    return "reload the page" in text or "odśwież stronę" in text


@pytest.mark.parametrize(
    "path", ["/comment", "/status", "/assign", "/worklog", "bulk", "new", "logout"]
)
def test_a_post_without_the_csrf_token_is_403(
    instance: SeededApp, browsers: dict[str, Browser], path: str
) -> None:
    b = browsers["coordinator"]
    number = instance.numbers["beta_open"]
    target = {
        "bulk": "/tickets/bulk-status",
        "new": "/tickets/new",
        "logout": "/logout",
    }.get(path, f"/tickets/{number}{path}")
    data = {"body": "x", "status": "Resolved", "minutes": "5", "subject": "x"}
    data["numbers"] = str(number)
    if path in ("new", "/comment"):  # multipart forms (they carry files)
        files = {k: (None, v) for k, v in data.items()}
        r = b.client.post(target, files=files, follow_redirects=False)
    else:
        r = b.client.post(target, data=data, follow_redirects=False)
    assert r.status_code == 403
    assert _says_reload(r.text)
    # Nothing happened: the session still works and the ticket is unchanged.
    assert b.client.get(f"/tickets/{number}").status_code == 200


def test_a_wrong_csrf_token_is_403(instance: SeededApp, browsers: dict[str, Browser]) -> None:
    b = browsers["coordinator"]
    number = instance.numbers["beta_open"]
    r = b.client.post(
        f"/tickets/{number}/status",
        data={"status": "Resolved", "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert _says_reload(r.text)


def test_bulk_is_refused_to_technicians(instance: SeededApp, browsers: dict[str, Browser]) -> None:
    b = browsers["technician"]
    number = instance.numbers["key_assigned"]
    r = b.client.post(
        "/tickets/bulk-status",
        data={"numbers": str(number), "status": "Resolved", "csrf_token": b.csrf},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert 'data-testid="bulk-error"' in r.text
    assert 'name="numbers"' not in browsers["technician"].client.get("/tickets").text


@pytest.mark.parametrize(
    ("role", "sees_note"),
    [("client2", False), ("manager", False), ("technician", True), ("coordinator", True)],
)
def test_internal_notes_only_reach_staff(
    instance: SeededApp, browsers: dict[str, Browser], role: str, sees_note: bool
) -> None:
    r = browsers[role].client.get(f"/tickets/{instance.numbers['key_assigned']}")
    assert r.status_code == 200
    assert ("eskalować do producenta" in r.text) is sees_note
    assert ('data-testid="internal-badge"' in r.text) is sees_note
    assert "Sprawdzamy serwer" in r.text  # the public comment is there for everyone


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("client2", 200),
        ("manager", 200),
        ("technician", 200),
        ("client", 404),
        ("beta", 404),
        ("subcontractor", 404),
    ],
)
def test_attachments_are_checked_through_their_ticket(
    instance: SeededApp, browsers: dict[str, Browser], role: str, status: int
) -> None:
    with instance.factory() as session:
        attachment_id = session.scalar(
            select(Attachment.id)
            .join(TicketEvent)
            .join(Ticket)
            .where(Ticket.number == instance.numbers["key_assigned"])
        )
    r = browsers[role].client.get(f"/attachments/{attachment_id}")
    assert r.status_code == status
    if status == 200:
        assert r.content == b"Krok 1...\n"
        assert "instrukcja.txt" in r.headers["content-disposition"]
        assert r.headers["content-disposition"].startswith("attachment")
        assert r.headers["x-content-type-options"] == "nosniff"


def test_clients_see_internal_statuses_by_category(
    instance: SeededApp, browsers: dict[str, Browser]
) -> None:
    coordinator = browsers["coordinator"]
    number = instance.numbers["client_web"]
    assert _post(coordinator, f"/tickets/{number}/status", {"status": "Waiting for parts"}) == 303
    staff_view = coordinator.client.get(f"/tickets/{number}").text
    assert "Waiting for parts" in staff_view
    client_view = browsers["client"].client.get(f"/tickets/{number}").text
    assert "Waiting for parts" not in client_view
    assert 'data-category="paused"' in client_view
    listing = browsers["client"].client.get("/tickets").text
    assert "Waiting for parts" not in listing


def test_not_logged_in_goes_to_the_login_page(instance: SeededApp) -> None:
    with TestClient(instance.app) as anonymous:
        r = anonymous.get("/tickets/1001?x=1", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login?next=")


# --- Issue 11: leaks and wrong doors ---------------------------------------------------------


def _page(b: Browser, number: int) -> str:
    r = b.client.get(f"/tickets/{number}")
    assert r.status_code == 200
    return str(r.text)


def test_a_subcontractor_reads_only_the_notes_meant_for_them(
    instance: SeededApp, browsers: dict[str, Browser]
) -> None:
    coordinator, sub = browsers["coordinator"], browsers["subcontractor"]
    number = instance.numbers["key_subcontractor"]
    # The checkbox is offered on a ticket handed to a subcontractor, not on one that is not.
    assert 'data-testid="note-audience"' in _page(coordinator, number)
    assert 'data-testid="note-audience"' not in _page(coordinator, instance.numbers["key_assigned"])
    assert 'data-testid="note-audience"' not in _page(sub, number)
    staff_only = {"body": "Tylko dla nas: rabat 20%", "visibility": "internal"}
    for_sub = {**staff_only, "body": "Dla FixIt: klucz u portiera", "audience": "subcontractor"}
    assert _post(coordinator, f"/tickets/{number}/comment", staff_only) == 303
    assert _post(coordinator, f"/tickets/{number}/comment", for_sub) == 303
    seen = _page(sub, number)
    assert "Dla FixIt: klucz u portiera" in seen
    assert "Tylko dla nas" not in seen
    assert 'data-testid="audience-badge"' in seen
    staff_view = _page(coordinator, number)
    assert "Tylko dla nas" in staff_view and "Dla FixIt" in staff_view
    assert 'data-testid="audience-badge"' in staff_view
    client_view = _page(browsers["client"], number)
    assert "Dla FixIt" not in client_view and "Tylko dla nas" not in client_view
    # The seeded internal note of another ticket never had an audience: staff only.
    assert _post(sub, f"/tickets/{number}/comment", {**staff_only, "body": "Od FixIt"}) == 303
    assert "Od FixIt" in _page(sub, number)


def test_a_field_kept_from_clients_is_kept_from_the_subcontractor(
    instance: SeededApp, browsers: dict[str, Browser]
) -> None:
    number = instance.numbers["key_subcontractor"]
    assert "Resolution code" in _page(browsers["coordinator"], number)
    assert "Resolution code" not in _page(browsers["subcontractor"], number)
    assert "Resolution code" not in _page(browsers["client"], number)
    assert "Serial number" in _page(browsers["subcontractor"], number)


def test_the_list_filter_answers_a_hidden_status_like_an_unknown_one(
    instance: SeededApp, browsers: dict[str, Browser]
) -> None:
    coordinator, client = browsers["coordinator"], browsers["client"]
    number = instance.numbers["key_new"]
    assert _post(coordinator, f"/tickets/{number}/status", {"status": "Escalated"}) == 303
    hidden = client.client.get("/tickets?state=all&status=Escalated")
    unknown = client.client.get("/tickets?state=all&status=Nonexistent")
    rows = r'<tr class="ticket-row[^"]*" data-href="/tickets/(\d+)"'
    assert re.findall(rows, hidden.text) == re.findall(rows, unknown.text) == []
    assert hidden.status_code == unknown.status_code == 200
    staff = coordinator.client.get("/tickets?state=all&status=Escalated").text
    assert str(number) in re.findall(rows, staff)
    assert _post(coordinator, f"/tickets/{number}/status", {"status": "New"}) == 303


def test_only_who_may_assign_chooses_the_assignee_of_a_new_ticket(
    instance: SeededApp, browsers: dict[str, Browser]
) -> None:
    tech, coordinator = browsers["technician"], browsers["coordinator"]
    assert 'name="assignee"' not in tech.client.get("/tickets/new").text
    assert 'name="assignee"' in coordinator.client.get("/tickets/new").text
    form = {
        "subject": "Otwarte przez technika",
        "requester": "anna@acme.example",
        "contract": "ACME-KEY",
        "assignee": "tech2@support.example",
        "csrf_token": tech.csrf,
    }
    files = {k: (None, v) for k, v in form.items()}
    r = tech.client.post("/tickets/new", files=files, follow_redirects=False)
    assert r.status_code == 403
    assert 'data-testid="form-error"' in r.text
    with instance.factory() as session:
        assert session.scalar(select(Ticket).where(Ticket.subject == form["subject"])) is None
    # Without an assignee the technician's ticket starts theirs, as before.
    files.pop("assignee")
    r = tech.client.post("/tickets/new", files=files, follow_redirects=False)
    assert r.status_code == 303
    with instance.factory() as session:
        opened = session.scalar(select(Ticket).where(Ticket.subject == form["subject"]))
        assert opened is not None and opened.assignee is not None
        assert opened.assignee.email == "tech@support.example"
