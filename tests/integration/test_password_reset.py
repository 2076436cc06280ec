"""Passwords (issue 11): the change on the profile needs the old one; a forgotten one is reset
by a mailed, signed link that works once, for 30 minutes, and ends every web session; the
request answers the same for unknown addresses and is throttled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from core.access.accounts import create_api_token, get_user_by_email, password_reset_token
from core.audit import AuditEntry
from core.clock import utcnow
from core.mail.models import OutboundMail
from mailgw.outbound import render
from tests.e2e.conftest import PASSWORD, SeededApp, build_seeded_app, console_client

NEW = "a-brand-new-password"


@pytest.fixture
def seeded(tmp_path: Path) -> SeededApp:
    return build_seeded_app(tmp_path)


def _login(email: str, app: Any, password: str = PASSWORD) -> Any:
    client: Any = TestClient(app)
    return client.post(
        "/login", data={"email": email, "password": password}, follow_redirects=False
    )


def _ask(client: Any, email: str, **headers: str) -> Any:
    return client.post("/password/forgot", data={"email": email}, headers=headers)


def _reset_links(seeded: SeededApp, to: str) -> list[str]:
    with seeded.factory() as session:
        rows = session.scalars(
            select(OutboundMail)
            .where(OutboundMail.template == "password_reset", OutboundMail.to_addr == to)
            .order_by(OutboundMail.id)
        ).all()
        return [row.context["url"] for row in rows]


def test_the_login_page_links_to_the_form_and_unknown_addresses_get_the_same_answer(
    seeded: SeededApp,
) -> None:
    client: Any = TestClient(seeded.app)
    assert 'href="/password/forgot"' in client.get("/login").text
    assert client.get("/password/forgot").status_code == 200
    known, unknown = seeded.users["technician"], "nobody@nowhere.example"
    a, b = _ask(client, known), _ask(client, unknown)
    assert a.status_code == b.status_code == 200
    assert a.text.replace(known, "X") == b.text.replace(unknown, "X")
    assert "właśnie wysłaliśmy na nie link" in a.text
    assert len(_reset_links(seeded, known)) == 1 and _reset_links(seeded, unknown) == []
    with seeded.factory() as session:
        actors = session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "password.reset.request")
        ).all()
    assert sorted(actors) == sorted([known, unknown])


def test_the_link_sets_a_password_once_and_ends_every_session_but_not_tokens(
    seeded: SeededApp,
) -> None:
    email = seeded.users["coordinator"]
    logged_in, _ = console_client(seeded.app, email)
    with seeded.factory() as session:
        user = get_user_by_email(session, email)
        assert user is not None
        token = create_api_token(session, user)
        session.commit()
    client: Any = TestClient(seeded.app)
    _ask(client, email)
    (link,) = _reset_links(seeded, email)
    assert link.startswith(seeded.settings.public_url + "/password/reset/")
    with seeded.factory() as session:
        mail = session.scalars(
            select(OutboundMail).where(OutboundMail.template == "password_reset")
        ).one()
        assert mail.headers.get("Auto-Submitted") == "auto-generated"
        assert link in render(mail.template, mail.language, mail.context).text
    path = link.removeprefix(seeded.settings.public_url)

    form = client.get(path)
    assert form.status_code == 200 and 'data-testid="reset-form"' in form.text
    differ = client.post(path, data={"password": NEW, "repeat": NEW + "x"})
    assert differ.status_code == 400 and "różnią" in differ.text
    short = client.post(path, data={"password": "short", "repeat": "short"})
    assert short.status_code == 400
    done = client.post(path, data={"password": NEW, "repeat": NEW}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/login"

    # Every browser of the user is logged out; the API token stays (docs/decisions.md).
    assert logged_in.get("/tickets", follow_redirects=False).status_code == 303
    api: Any = TestClient(seeded.app)
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert _login(email, seeded.app).status_code == 401
    assert _login(email, seeded.app, NEW).status_code == 303
    # Once: the link died with the old password hash.
    used = client.get(path)
    assert used.status_code == 410 and "wygasł albo został już użyty" in used.text
    assert (
        client.post(path, data={"password": "another-one!", "repeat": "another-one!"}).status_code
        == 410
    )
    with seeded.factory() as session:
        assert session.scalar(select(AuditEntry).where(AuditEntry.action == "password.reset"))


def test_a_link_expires_after_thirty_minutes_and_a_forged_one_is_refused(
    seeded: SeededApp,
) -> None:
    email = seeded.users["client"]
    secret = seeded.settings.secret_key
    with seeded.factory() as session:
        user = get_user_by_email(session, email)
        assert user is not None
        old = password_reset_token(secret, user, now=utcnow() - timedelta(minutes=31))
        fresh = password_reset_token(secret, user, now=utcnow() - timedelta(minutes=29))
        forged = password_reset_token("another-key", user)
    client: Any = TestClient(seeded.app)
    assert client.get(f"/password/reset/{old}").status_code == 410
    assert client.get(f"/password/reset/{forged}").status_code == 410
    assert client.get(f"/password/reset/{fresh}").status_code == 200


def test_requests_are_throttled_and_cross_site_posts_refused(seeded: SeededApp) -> None:
    client: Any = TestClient(seeded.app)
    email = seeded.users["technician2"]
    assert _ask(client, email, origin="https://evil.example").status_code == 403
    for _ in range(5):
        assert _ask(client, email).status_code == 200
    refused = _ask(client, email)
    assert refused.status_code == 429 and "Zbyt wiele nieudanych prób" in refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert len(_reset_links(seeded, email)) == 5


def test_the_change_on_the_profile_needs_the_old_password(seeded: SeededApp) -> None:
    email = seeded.users["technician"]
    other, _ = console_client(seeded.app, email)
    client, csrf = console_client(seeded.app, email)
    profile = client.get("/profile").text
    assert 'data-testid="password-form"' in profile
    wrong = client.post(
        "/profile/password",
        data={"csrf_token": csrf, "current": "not-it", "password": NEW, "repeat": NEW},
    )
    assert wrong.status_code == 400 and "obecne hasło jest błędne" in wrong.text
    assert (
        client.post(
            "/profile/password", data={"current": PASSWORD, "password": NEW, "repeat": NEW}
        ).status_code
        == 403
    )  # the CSRF token
    done = client.post(
        "/profile/password",
        data={"csrf_token": csrf, "current": PASSWORD, "password": NEW, "repeat": NEW},
    )
    assert done.status_code == 200 and "Hasło zostało zmienione" in done.text
    assert client.get("/tickets", follow_redirects=False).status_code == 200  # this one stays
    assert other.get("/tickets", follow_redirects=False).status_code == 303  # the other ends
    assert _login(email, seeded.app).status_code == 401
    assert _login(email, seeded.app, NEW).status_code == 303
