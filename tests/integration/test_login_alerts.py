"""Login alerts (issue 5): failed logins mail the account's owner (rate-limited), repeated ones
alert the admins, a login from a new browser mails the user and sets the device cookie; through
``POST /login`` on a seeded app, and through ``core.notify.login_alerts`` with an injected clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from core.audit import AuditEntry
from core.clock import utcnow
from core.directory.models import User
from core.mail.models import OutboundMail
from core.notify.login_alerts import DEVICE_COOKIE, device_known, new_device_token, on_login_failed
from mailgw.outbound import render
from tests.e2e.conftest import PASSWORD, SeededApp, build_seeded_app

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"


@pytest.fixture
def seeded(tmp_path: Path) -> SeededApp:
    return build_seeded_app(tmp_path)


def _client(seeded: SeededApp) -> Any:
    # Not a context manager: see tests.e2e.conftest.console_client.
    client: Any = TestClient(seeded.app)
    client.headers["user-agent"] = UA
    return client


def _login(client: Any, email: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/login",
        data={"email": email, "password": password, "next": "/tickets"},
        follow_redirects=False,
    )


def _mails(seeded: SeededApp, template: str, to: str | None = None) -> list[OutboundMail]:
    with seeded.factory() as session:
        query = select(OutboundMail).where(OutboundMail.template == template)
        if to is not None:
            query = query.where(OutboundMail.to_addr == to)
        rows = list(session.scalars(query.order_by(OutboundMail.id)))
        session.expunge_all()
        return rows


def test_a_failed_login_mails_the_owner_once_per_window(seeded: SeededApp) -> None:
    email = seeded.users["technician"]
    client = _client(seeded)
    for _ in range(3):
        assert _login(client, email.upper(), "wrong-password").status_code == 401
    mails = _mails(seeded, "login_failed")
    assert [m.to_addr for m in mails] == [email]
    mail = mails[0]
    assert mail.ticket_id is None
    assert mail.headers.get("Auto-Submitted") == "auto-generated"
    assert mail.context["user_agent"] == UA and mail.context["ip"]
    assert mail.context["account"] == email
    with seeded.factory() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None and mail.language == user.language
    rendered = render(mail.template, mail.language, mail.context)
    assert UA in rendered.text
    # Three failures are no attack.
    assert _mails(seeded, "login_attack") == []


def test_the_window_ends_and_the_owner_is_mailed_again(seeded: SeededApp) -> None:
    email = seeded.users["technician"]
    start = utcnow()
    with seeded.factory() as session:
        for minutes in (0, 5, 16):
            now = start + timedelta(minutes=minutes)
            session.add(AuditEntry(at=now, actor=email, action="login.failed", data={}))
            on_login_failed(session, email=email, ip="203.0.113.7", user_agent=None, now=now)
        session.commit()
    mails = _mails(seeded, "login_failed", email)
    assert len(mails) == 2
    assert mails[0].context["user_agent"] is None


def test_an_unknown_address_gets_no_mail_only_the_audit_entry(seeded: SeededApp) -> None:
    client = _client(seeded)
    for _ in range(5):
        assert _login(client, "nobody@nowhere.example", "x").status_code == 401
    # Throttled like an existing account (a different answer would tell which ones exist).
    assert _login(client, "nobody@nowhere.example", "x").status_code == 429
    with seeded.factory() as session:
        assert session.scalars(select(OutboundMail)).all() == []
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.actor == "nobody@nowhere.example")
        ).all()
    assert actions == ["login.failed"] * 5 + ["login.locked", "login.throttled"]


def test_five_failures_alert_every_admin_once(seeded: SeededApp) -> None:
    target = seeded.users["technician2"]
    client = _client(seeded)
    for _ in range(4):
        _login(client, target, "wrong")
    assert _mails(seeded, "login_attack") == []
    for _ in range(4):
        _login(client, target, "wrong")
    attacks = _mails(seeded, "login_attack")
    with seeded.factory() as session:
        admins = session.scalars(
            select(User.email).where(User.role == "admin", User.active.is_(True))
        ).all()
    assert admins and sorted(m.to_addr for m in attacks) == sorted(admins)
    assert attacks[0].context["account"] == target and attacks[0].context["failures"] == 5
    assert attacks[0].headers.get("Auto-Submitted") == "auto-generated"
    # The owner still hears about it once in the window.
    assert len(_mails(seeded, "login_failed", target)) == 1


def test_a_new_browser_is_mailed_once_and_remembered(seeded: SeededApp) -> None:
    email = seeded.users["client"]
    first = _client(seeded)
    r = _login(first, email)
    assert r.status_code == 303
    cookie = r.headers.get("set-cookie", "")
    device_cookies = [c for c in r.headers.get_list("set-cookie") if c.startswith(DEVICE_COOKIE)]
    assert len(device_cookies) == 1, cookie
    attrs = device_cookies[0].lower()
    assert "httponly" in attrs and "samesite=lax" in attrs and "max-age=31536000" in attrs
    mails = _mails(seeded, "login_new_device")
    assert [m.to_addr for m in mails] == [email]
    assert mails[0].context["user_agent"] == UA
    assert mails[0].headers.get("Auto-Submitted") == "auto-generated"
    assert first.cookies.get(DEVICE_COOKIE)

    # The same browser again: nothing, and the cookie is not reissued.
    again = _login(first, email)
    assert again.status_code == 303
    assert not any(c.startswith(DEVICE_COOKIE) for c in again.headers.get_list("set-cookie"))
    assert len(_mails(seeded, "login_new_device")) == 1

    # Another browser (no cookie) is new again.
    assert _login(_client(seeded), email).status_code == 303
    assert len(_mails(seeded, "login_new_device", email)) == 2


def test_a_device_cookie_is_bound_to_its_user_and_the_secret(seeded: SeededApp) -> None:
    secret = seeded.settings.secret_key
    token = new_device_token(secret, 7)
    assert device_known(secret, 7, token)
    assert not device_known(secret, 8, token)
    assert not device_known("another-secret", 7, token)
    assert not device_known(secret, 7, token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not device_known(secret, 7, None) and not device_known(secret, 7, "garbage")

    # Another user's cookie in the browser does not make it known for this user.
    browser = _client(seeded)
    assert _login(browser, seeded.users["client"]).status_code == 303
    assert _login(browser, seeded.users["client2"]).status_code == 303
    assert len(_mails(seeded, "login_new_device", seeded.users["client2"])) == 1


@pytest.mark.parametrize("language", ["pl", "en"])
def test_the_queued_alerts_render_in_the_users_language(seeded: SeededApp, language: str) -> None:
    email = seeded.users["technician"]
    with seeded.factory() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        user.language = language
        session.commit()
    client = _client(seeded)
    _login(client, email, "wrong")
    _login(client, email)
    for template in ("login_failed", "login_new_device"):
        (mail,) = _mails(seeded, template, email)
        assert mail.language == language
        rendered = render(mail.template, mail.language, mail.context)
        assert mail.context["url"] in rendered.text
        expected = {"pl": "Przeglądarka", "en": "Browser"}[language]
        assert f"{expected}: {UA}" in rendered.text
