"""Two-step login: set up from the profile page, asked at login, each code once, turned off by
its owner or reset by an administrator's command (``pulpit user reset-totp``)."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyotp
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from config.settings import SettingsError, load_settings
from core.access.models import RecoveryCode, WebSession
from core.audit import AuditEntry
from core.directory.models import User
from pulpit.cli import main
from tests.e2e.conftest import PASSWORD, SeededApp, build_seeded_app, console_client


@pytest.fixture
def seeded(tmp_path: Path) -> SeededApp:
    return build_seeded_app(tmp_path)


def _user(seeded: SeededApp, email: str) -> User:
    with seeded.factory() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        session.expunge(user)
        return user


def _login(email: str, app: Any, code: str | None = None) -> Any:
    client: Any = TestClient(app)
    data = {"email": email, "password": PASSWORD, "next": "/tickets"}
    if code is not None:
        data["code"] = code
    return client.post("/login", data=data, follow_redirects=False)


def _secret_on_page(html: str) -> str:
    match = re.search(r'name="secret" value="([A-Z2-7]+)"', html)
    assert match, "the set-up form carries the new secret"
    return match.group(1)


def _enable(seeded: SeededApp, email: str) -> tuple[Any, str, str, float]:
    """Set up through the page; returns the client, its CSRF token, the secret and the moment
    whose code confirmed it (codes are derived from that moment, not from a later now(), so a
    30-second boundary passing during the test changes nothing)."""
    client, csrf = console_client(seeded.app, email)
    page = client.get("/profile/two-step")
    assert page.status_code == 200
    secret = _secret_on_page(page.text)
    assert 'data-testid="two-step-qr"><svg' in page.text
    form = {"csrf_token": csrf, "action": "enable", "secret": secret, "password": PASSWORD}
    t0 = time.time()
    r = client.post(
        "/profile/two-step",
        data={**form, "code": pyotp.TOTP(secret).at(t0)},
        follow_redirects=False,
    )
    # The answer shows the ten recovery codes, once.
    assert r.status_code == 200 and 'data-testid="recovery-codes"' in r.text
    return client, csrf, secret, t0


def test_set_up_then_every_login_asks_for_a_fresh_code(seeded: SeededApp) -> None:
    email = seeded.users["technician"]
    client, csrf = console_client(seeded.app, email)
    assert "Logowanie dwuetapowe jest wyłączone." in client.get("/profile").text

    page = client.get("/profile/two-step")
    secret = _secret_on_page(page.text)
    wrong = client.post(
        "/profile/two-step",
        data={
            "csrf_token": csrf,
            "action": "enable",
            "secret": secret,
            "password": "not-the-password",
            "code": pyotp.TOTP(secret).now(),
        },
    )
    assert wrong.status_code == 400
    assert "hasło jest błędne" in wrong.text
    assert _secret_on_page(wrong.text) == secret  # the app the user just set up still fits
    assert _user(seeded, email).totp_secret is None

    no_code = client.post(
        "/profile/two-step",
        data={"csrf_token": csrf, "action": "enable", "secret": secret, "password": PASSWORD},
    )
    assert no_code.status_code == 400 and "kod się nie zgadza" in no_code.text

    t0 = time.time()
    done = client.post(
        "/profile/two-step",
        data={
            "csrf_token": csrf,
            "action": "enable",
            "secret": secret,
            "password": PASSWORD,
            "code": pyotp.TOTP(secret).at(t0),
        },
    )
    assert done.status_code == 200  # the recovery codes, shown once
    assert "Logowanie dwuetapowe jest włączone: od teraz konsola poprosi o kod." in done.text
    assert len(re.findall(r"<li><code>[a-z2-9]{5}-[a-z2-9]{5}</code></li>", done.text)) == 10
    assert _user(seeded, email).totp_secret == secret

    asked = _login(email, seeded.app)
    assert asked.status_code == 401 and "Wpisz kod z aplikacji" in asked.text
    # The code used to confirm the set-up does not log in again (RFC 6238 5.2); the next does.
    same_step = _login(email, seeded.app, pyotp.TOTP(secret).at(t0))
    assert same_step.status_code == 401 and "został już użyty" in same_step.text
    later = pyotp.TOTP(secret).at(t0 + 30)
    assert _login(email, seeded.app, later).status_code == 303
    assert _login(email, seeded.app, later).status_code == 401  # and only once


def test_the_owner_turns_it_off_with_password_and_code(seeded: SeededApp) -> None:
    email = seeded.users["coordinator"]
    client, csrf, secret, t0 = _enable(seeded, email)
    page = client.get("/profile/two-step")
    assert 'data-testid="two-step-disable"' in page.text
    form = {"csrf_token": csrf, "action": "disable", "password": PASSWORD}
    used = client.post("/profile/two-step", data={**form, "code": pyotp.TOTP(secret).at(t0)})
    assert used.status_code == 400 and "został już użyty" in used.text
    fresh = pyotp.TOTP(secret).at(t0 + 30)
    off = client.post("/profile/two-step", data={**form, "code": fresh})
    assert off.status_code == 200 and "Logowanie dwuetapowe jest wyłączone." in off.text
    assert _user(seeded, email).totp_secret is None
    assert _login(email, seeded.app).status_code == 303
    with seeded.factory() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.action.like("totp.%"))
        ).all()
    assert actions == ["totp.enable", "totp.disable"]


def test_the_form_needs_the_csrf_token(seeded: SeededApp) -> None:
    client, _ = console_client(seeded.app, seeded.users["technician"])
    secret = _secret_on_page(client.get("/profile/two-step").text)
    r = client.post(
        "/profile/two-step",
        data={"action": "enable", "secret": secret, "password": PASSWORD, "code": "000000"},
    )
    assert r.status_code == 403


def test_an_administrator_resets_a_lost_phone_from_the_command_line(
    seeded: SeededApp, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    email = seeded.users["technician"]
    _enable(seeded, email)
    monkeypatch.setenv("PULPIT_DATA_DIR", str(seeded.settings.data_dir))
    monkeypatch.setenv("PULPIT_DATABASE_URL", seeded.settings.database_url)
    assert main(["user", "reset-totp", "--email", email]) == 0
    assert "two-step login of tech@support.example is off" in capsys.readouterr().out
    assert _user(seeded, email).totp_secret is None
    with seeded.factory() as session:
        user_id = _user(seeded, email).id
        assert session.scalars(select(WebSession).where(WebSession.user_id == user_id)).all() == []
        reset = session.scalar(select(AuditEntry).where(AuditEntry.action == "totp.reset"))
        assert reset is not None and reset.actor == "cli" and reset.data["was_on"] is True
    assert _login(email, seeded.app).status_code == 303

    assert main(["user", "reset-totp", "--email", "nobody@support.example"]) != 0
    assert "no user with the e-mail" in capsys.readouterr().err


def test_roles_that_must_use_it_are_sent_to_set_it_up_first(seeded: SeededApp) -> None:
    seeded.app.state.settings = replace(seeded.app.state.settings, two_step_roles="admin")
    admin, csrf = console_client(seeded.app, seeded.users["admin"])
    r = admin.get("/tickets", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/profile/two-step"
    page = admin.get("/tickets")  # followed: the set-up page, saying why
    assert "Twoja rola wymaga logowania dwuetapowego: włącz je, aby kontynuować." in page.text
    assert "włącz je, aby korzystać z konsoli" in page.text
    # The same cookie does not reach the API either (a token would: programs are not gated).
    api = admin.get("/api/v1/me")
    assert api.status_code == 403 and "two-step" in api.json()["detail"]
    assert (
        admin.post(
            "/api/v1/tickets",
            json={"subject": "x", "requester": "a@b.example"},
            headers={"x-csrf-token": csrf},
        ).status_code
        == 403
    )

    coordinator, _ = console_client(seeded.app, seeded.users["coordinator"])
    assert coordinator.get("/tickets", follow_redirects=False).status_code == 200

    secret = _secret_on_page(page.text)
    t0 = time.time()
    form = {"csrf_token": csrf, "secret": secret, "password": PASSWORD}
    done = admin.post(
        "/profile/two-step",
        data={**form, "action": "enable", "code": pyotp.TOTP(secret).at(t0)},
    )
    assert done.status_code == 200
    assert admin.get("/tickets", follow_redirects=False).status_code == 200
    assert admin.get("/api/v1/me").status_code == 200
    assert "nie można go wyłączyć" in admin.get("/profile/two-step").text
    off = admin.post(
        "/profile/two-step",
        data={**form, "action": "disable", "code": pyotp.TOTP(secret).at(t0 + 30)},
    )
    assert off.status_code == 403 and "nie można go wyłączyć" in off.text
    assert _user(seeded, seeded.users["admin"]).totp_secret == secret


def test_an_unknown_role_in_the_setting_is_named() -> None:
    with pytest.raises(SettingsError, match="'boss' is no role"):
        load_settings({"PULPIT_TWO_STEP_ROLES": "admin, boss"})
    assert load_settings(
        {"PULPIT_TWO_STEP_ROLES": "Admin, coordinator"}
    ).required_two_step_roles == {
        "admin",
        "coordinator",
    }


def _recovery_codes(html: str) -> list[str]:
    return re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", html)


def test_a_recovery_code_replaces_the_app_once_and_new_ones_replace_the_old(
    seeded: SeededApp,
) -> None:
    email = seeded.users["technician2"]
    client, csrf = console_client(seeded.app, email)
    secret = _secret_on_page(client.get("/profile/two-step").text)
    shown = client.post(
        "/profile/two-step",
        data={
            "csrf_token": csrf,
            "action": "enable",
            "secret": secret,
            "password": PASSWORD,
            "code": pyotp.TOTP(secret).now(),
        },
    )
    codes = _recovery_codes(shown.text)
    assert len(set(codes)) == 10
    assert _recovery_codes(client.get("/profile/two-step").text) == []  # shown once
    with seeded.factory() as session:
        stored = session.scalars(select(RecoveryCode.code_hash)).all()
        assert len(stored) == 10 and not set(codes) & set(stored)

    browser: Any = TestClient(seeded.app)
    step = browser.post(
        "/login", data={"email": email, "password": PASSWORD}, follow_redirects=False
    )
    assert step.status_code == 401 and 'name="challenge"' in step.text
    challenge = re.search(r'name="challenge" value="([^"]+)"', step.text).group(1)  # type: ignore[union-attr]
    done = browser.post(
        "/login", data={"challenge": challenge, "code": codes[0].upper()}, follow_redirects=False
    )
    assert done.status_code == 303
    # The same code once more: refused; another one works.
    assert _login(email, seeded.app, codes[0]).status_code == 401
    assert _login(email, seeded.app, codes[1]).status_code == 303
    assert "Zostało 8 kodów zapasowych." in client.get("/profile/two-step").text

    fresh = client.post(
        "/profile/two-step", data={"csrf_token": csrf, "action": "recovery", "password": PASSWORD}
    )
    new_codes = _recovery_codes(fresh.text)
    assert len(new_codes) == 10
    assert _login(email, seeded.app, codes[2]).status_code == 401  # the old ones are gone
    assert _login(email, seeded.app, new_codes[0]).status_code == 303
    with seeded.factory() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.action.like("recovery_code%"))
        ).all()
    assert (
        actions.count("recovery_codes.generate") == 2 and actions.count("recovery_code.used") == 3
    )


def test_an_administrator_puts_a_user_on_the_app_or_off_it_from_the_command_line(
    seeded: SeededApp, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    email = seeded.users["subcontractor"]
    monkeypatch.setenv("PULPIT_DATA_DIR", str(seeded.settings.data_dir))
    monkeypatch.setenv("PULPIT_DATABASE_URL", seeded.settings.database_url)
    args = ["user", "add", "--email", email, "--role", "subcontractor", "--two-step"]
    assert main([*args, "totp"]) == 0
    client, csrf = console_client(seeded.app, email)  # the password alone, no app yet
    r = client.get("/tickets", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/profile/two-step"
    assert client.get("/api/v1/me").status_code == 403
    secret = _secret_on_page(client.get("/profile/two-step").text)
    t0 = time.time()
    form = {"csrf_token": csrf, "action": "enable", "secret": secret, "password": PASSWORD}
    client.post("/profile/two-step", data={**form, "code": pyotp.TOTP(secret).at(t0)})
    assert client.get("/tickets", follow_redirects=False).status_code == 200
    assert _login(email, seeded.app).status_code == 401  # the app's code is asked now

    assert main([*args, "none"]) == 0
    assert _user(seeded, email).totp_secret is None
    assert _login(email, seeded.app).status_code == 303
    assert main([*args, "sms"]) != 0
    assert "invalid choice" in capsys.readouterr().err
