"""Bad input gets a 4xx with a sentence, never a 500 (issue 11), on SQLite and PostgreSQL.

Integers overflow differently per backend (SQLite's 64 bits against PostgreSQL's 32-bit
``integer``), so every check runs on both, over a seeded desk of its own (``desk``). The
console's error page is checked here too: in the user's language, inside the layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.access.accounts import create_api_token
from core.blobs import DirectoryBlobStore
from core.directory.models import User
from tests.conftest import migrated_database
from tests.e2e.conftest import console_client, seed_world
from web.app import create_app
from web.render import UserView, _user_view

HUGE = "99999999999999999999999"
PAST_INT32 = str(2**31)


@dataclass
class Desk:
    backend: str
    app: Any
    factory: sessionmaker[Session]
    api: Any
    admin: dict[str, str]  # headers with the admin's token
    coordinator: dict[str, str]
    users: dict[str, str]
    numbers: dict[str, int]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def desk(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Desk]:
    tmp = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    with migrated_database(request.param, tmp) as factory:
        settings = Settings(data_dir=tmp, secret_key="bad-input")
        with factory() as session:
            world = seed_world(session, DirectoryBlobStore(settings.blob_dir))
            admin = create_api_token(session, world.users["admin"])
            coordinator = create_api_token(session, world.users["coordinator"])
            # The technician reads the console in English, everyone else in Polish.
            world.users["technician"].language = "en"
            session.commit()
            users = {k: u.email for k, u in world.users.items()}
        app = create_app(settings, session_factory=factory)
        with TestClient(app) as api:
            yield Desk(
                request.param,
                app,
                factory,
                api,
                {"Authorization": f"Bearer {admin}"},
                {"Authorization": f"Bearer {coordinator}"},
                users,
                dict(world.numbers),
            )


def assert_refused(r: Any, status: int = 400, *words: str) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["status_code"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    for word in words:
        assert word in body["detail"], body["detail"]
    return str(body["detail"])


# --- Integers past what the database holds ---------------------------------------------------


@pytest.mark.parametrize("number", [HUGE, PAST_INT32, "0", "-1"])
def test_a_ticket_number_out_of_range_is_a_400_naming_it(desk: Desk, number: str) -> None:
    r = desk.api.get(f"/api/v1/tickets/{number}", headers=desk.coordinator)
    assert_refused(r, 400, "number")


def test_the_largest_ticket_number_is_simply_not_there(desk: Desk) -> None:
    r = desk.api.get(f"/api/v1/tickets/{2**31 - 1}", headers=desk.coordinator)
    assert_refused(r, 404, "does not exist")


@pytest.mark.parametrize(
    ("query", "name"),
    [(f"page={HUGE}", "page"), (f"page={PAST_INT32}", "page"), (f"per_page={HUGE}", "per_page")],
)
def test_list_parameters_out_of_range_are_400(desk: Desk, query: str, name: str) -> None:
    r = desk.api.get(f"/api/v1/tickets?{query}", headers=desk.coordinator)
    assert_refused(r, 400, name)


def test_the_last_page_there_can_be_is_empty_not_an_error(desk: Desk) -> None:
    r = desk.api.get(f"/api/v1/tickets?page={2**31 - 1}&per_page=200", headers=desk.coordinator)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []


@pytest.mark.parametrize("number", [int(HUGE), 2**31, 2**63, 0])
def test_bulk_numbers_out_of_range_are_400(desk: Desk, number: int) -> None:
    r = desk.api.post(
        "/api/v1/tickets/bulk-status",
        json={"numbers": [desk.numbers["key_new"], number], "status": "In progress"},
        headers=desk.coordinator,
    )
    assert_refused(r, 400, "numbers")


@pytest.mark.parametrize("value", [HUGE, PAST_INT32])
def test_substitution_and_outbox_ids_out_of_range_are_400(desk: Desk, value: str) -> None:
    assert_refused(
        desk.api.delete(f"/api/v1/substitutions/{value}", headers=desk.coordinator),
        400,
        "substitution_id",
    )
    assert_refused(
        desk.api.post(f"/api/v1/outbox/{value}/resend", headers=desk.admin), 400, "outbound_id"
    )
    assert_refused(desk.api.get(f"/api/v1/outbox?limit={value}", headers=desk.admin), 400, "limit")


# --- Bodies that break a decoder, addresses, dates ------------------------------------------


def test_json_nested_100000_deep_is_a_400(desk: Desk) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    r = desk.api.post(
        "/api/v1/tickets",
        content=deep,
        headers={**desk.coordinator, "Content-Type": "application/json"},
    )
    assert_refused(r, 400)
    deep_object = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    r = desk.api.post(
        "/api/v1/substitutions",
        content=deep_object,
        headers={**desk.coordinator, "Content-Type": "application/json"},
    )
    assert_refused(r, 400)


@pytest.mark.parametrize("requester", ["a@b@c", "a@b,c@d", "<a@b>", "a@", "a b@c.example"])
def test_a_requester_that_is_not_one_address_is_a_400(desk: Desk, requester: str) -> None:
    r = desk.api.post(
        "/api/v1/tickets",
        json={"subject": "Zła skrzynka", "requester": requester},
        headers=desk.coordinator,
    )
    assert_refused(r, 400, "is not an e-mail address")


@pytest.mark.parametrize(
    ("starts_at", "ends_at"),
    [
        ("0001-01-01T00:00:00+05:00", "2099-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00Z", "2099-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00"),
        ("2026-01-01T00:00:00Z", "9999-12-31T23:59:59+05:00"),
    ],
)
def test_substitution_times_at_the_ends_of_the_calendar_are_400(
    desk: Desk, starts_at: str, ends_at: str
) -> None:
    r = desk.api.post(
        "/api/v1/substitutions",
        json={
            "absent": desk.users["technician"],
            "substitute": desk.users["technician2"],
            "starts_at": starts_at,
            "ends_at": ends_at,
        },
        headers=desk.coordinator,
    )
    assert_refused(r, 400, "2000 and 9998")


def test_a_console_ticket_number_out_of_range_is_an_error_page_not_a_500(desk: Desk) -> None:
    client, csrf = console_client(desk.app, desk.users["coordinator"])
    for number in (HUGE, PAST_INT32):
        # The page's own handler (web.console.ticket_detail) queries as it is: the app's
        # handler answers the overflow with a 400 page; SQLite's 64 bits simply find nothing.
        r = client.get(f"/tickets/{number}")
        assert r.status_code in (400, 404), r.text[:300]
        assert 'data-testid="whoami"' in r.text
        # Forms look the ticket up through the ``ticket`` dependency, which checks the bound.
        r = client.post(f"/tickets/{number}/status", data={"status": "New", "csrf_token": csrf})
        assert r.status_code == 404, r.text[:300]
        assert "nie istnieje" in r.text
    assert client.get(f"/attachments/{HUGE}").status_code == 404
    assert client.get(f"/events/{HUGE}/raw").status_code == 404


# --- The console's error page: the layout, the user, their language --------------------------


def main_text(html: str) -> str:
    match = re.search(r'<section class="error-card".*?</section>', html, re.S)
    assert match, html[:500]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0))).strip()


@pytest.mark.parametrize(
    ("role", "lang", "heading", "sentence", "name"),
    [
        ("coordinator", "pl", "Brak uprawnień", "formularz wygasł", "Ola Koordynator"),
        ("technician", "en", "Not allowed", "the form expired", "Tomasz Technik"),
    ],
)
def test_a_csrf_refusal_is_the_error_page_in_the_users_language(
    desk: Desk, role: str, lang: str, heading: str, sentence: str, name: str
) -> None:
    client, _ = console_client(desk.app, desk.users[role])
    number = desk.numbers["key_new"]
    r = client.post(f"/tickets/{number}/status", data={"status": "New", "csrf_token": "forged"})
    assert r.status_code == 403
    assert f'<html lang="{lang}">' in r.text
    assert 'data-testid="whoami"' in r.text and name in r.text  # the layout, with the user
    text = main_text(r.text)
    assert heading in text and sentence in text


@pytest.mark.parametrize(
    ("role", "lang", "heading", "sentence"),
    [
        ("coordinator", "pl", "Nie znaleziono", "załącznik 987654 nie istnieje"),
        ("technician", "en", "Not found", "attachment 987654 does not exist"),
    ],
)
def test_a_missing_attachment_is_the_error_page_in_the_users_language(
    desk: Desk, role: str, lang: str, heading: str, sentence: str
) -> None:
    client, _ = console_client(desk.app, desk.users[role])
    r = client.get("/attachments/987654")
    assert r.status_code == 404
    assert f'<html lang="{lang}">' in r.text
    assert 'data-testid="whoami"' in r.text
    text = main_text(r.text)
    assert heading in text and sentence in text


def test_the_error_page_reads_a_detached_expired_user_again(desk: Desk) -> None:
    """What crashed the error page (DetachedInstanceError): the request's user, expired by a
    commit and detached by the closed session. The page reads them again in a session of its
    own, or renders without them."""
    with desk.factory() as session:
        user = session.scalar(select(User).where(User.email == desk.users["technician"]))
        assert user is not None
        session.commit()  # expires every attribute
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(
        session_factory=desk.factory
    )))  # fmt: skip
    view = _user_view(request, user)
    assert isinstance(view, UserView)
    assert (view.email, view.language, view.display) == (
        desk.users["technician"],
        "en",
        "Tomasz Technik",
    )


def test_a_page_that_does_not_exist_names_the_user_in_their_language(desk: Desk) -> None:
    """No route matched, so no dependency ran: the error page identifies the user itself."""
    for role, lang, sentence in (
        ("coordinator", "pl", "Ta strona nie istnieje."),
        ("technician", "en", "This page does not exist."),
    ):
        client, _ = console_client(desk.app, desk.users[role])
        r = client.get("/no/such/page")
        assert r.status_code == 404
        assert f'<html lang="{lang}">' in r.text and 'data-testid="whoami"' in r.text
        assert sentence in main_text(r.text)
