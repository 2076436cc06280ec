"""Throttling of logins (issue 11): failures per account and per address in the database, a
cool-down refused with 429 even for the right password, mailed to the owner and the admins, on
the audit trail; failed API tokens per address; cross-site login posts refused."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from litestar.testing import TestClient
from sqlalchemy import select, update

from core.access import throttle
from core.access.accounts import create_api_token, get_user_by_email
from core.access.models import LoginThrottle
from core.audit import AuditEntry
from core.clock import utcnow
from core.mail.models import OutboundMail
from mailgw.outbound import render
from tests.e2e.conftest import PASSWORD, SeededApp, build_seeded_app, console_client


@pytest.fixture
def seeded(tmp_path: Path) -> SeededApp:
    return build_seeded_app(tmp_path)


def _client(seeded: SeededApp, lang: str | None = None) -> Any:
    client: Any = TestClient(seeded.app)
    if lang:
        client.cookies.set("lang", lang)
    return client


def _login(client: Any, email: str, password: str = PASSWORD, **extra: str) -> Any:
    return client.post(
        "/login",
        data={"email": email, "password": password, "next": "/tickets", **extra},
        follow_redirects=False,
    )


def _end_locks(seeded: SeededApp) -> None:
    """The cool-down is over: every lock ended a second ago (the failures stay counted)."""
    with seeded.factory() as session:
        session.execute(update(LoginThrottle).values(locked_until=utcnow() - timedelta(seconds=1)))
        session.commit()


def test_thirty_wrong_passwords_then_the_right_one_is_refused_until_the_cool_down_ends(
    seeded: SeededApp,
) -> None:
    email = seeded.users["technician"]
    client = _client(seeded)
    answers = [_login(client, email, f"wrong-{i}").status_code for i in range(30)]
    assert answers == [401] * 5 + [429] * 25
    right = _login(client, email)
    assert right.status_code == 429
    assert "Zbyt wiele nieudanych prób. Spróbuj ponownie po" in right.text
    assert 0 < int(right.headers["retry-after"]) <= 60
    english = _login(_client(seeded, "en"), email)
    assert english.status_code == 429
    assert "Too many failed attempts. Try again after" in english.text
    assert "(in 1 minute)" in english.text

    _end_locks(seeded)
    assert _login(client, email).status_code == 303
    with seeded.factory() as session:
        # A success forgets the account's failures: the next mistake is no lock.
        assert session.get(LoginThrottle, f"account:{email}") is None
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.actor == email).order_by(AuditEntry.id)
        ).all()
        login = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "login", AuditEntry.actor == email)
        ).one()
    assert actions.count("login.failed") == 5 and actions.count("login.locked") == 1
    assert actions.count("login.throttled") == 27 and actions[-1] == "login"
    assert login.data["ip"] == "testclient"


def test_the_cool_down_doubles_and_stops_at_an_hour(seeded: SeededApp) -> None:
    policy = throttle.ACCOUNT
    assert [throttle.lock_for(policy, n) for n in (1, 4)] == [None, None]
    minutes = [throttle.lock_for(policy, n) // timedelta(minutes=1) for n in range(5, 13)]  # type: ignore[operator]
    assert minutes == [1, 2, 4, 8, 16, 32, 60, 60]
    start = utcnow()
    with seeded.factory() as session:
        for _ in range(5):
            failure = throttle.record_failure(session, policy, "x@y.example", start)
        assert failure.locked_until == start + timedelta(minutes=1)
        # After the lock, one more failure locks for two minutes.
        later = start + timedelta(minutes=2)
        assert throttle.locked(session, [(policy, "x@y.example")], later) is None
        failure = throttle.record_failure(session, policy, "x@y.example", later)
        assert failure.failures == 6 and failure.locked_until == later + timedelta(minutes=2)
        # An hour after the last lock ended, the failures are forgotten.
        much_later = later + timedelta(minutes=2, hours=1, seconds=1)
        assert throttle.record_failure(session, policy, "x@y.example", much_later).failures == 1


def test_thirty_wrong_authenticator_codes_are_refused_too(seeded: SeededApp) -> None:
    email = seeded.users["coordinator"]
    client, csrf = console_client(seeded.app, email)
    page = client.get("/profile/two-step").text
    secret = page.split('name="secret" value="')[1].split('"')[0]
    t0 = time.time()
    r = client.post(
        "/profile/two-step",
        data={
            "csrf_token": csrf,
            "action": "enable",
            "secret": secret,
            "password": PASSWORD,
            "code": pyotp.TOTP(secret).at(t0),
        },
    )
    assert r.status_code == 200
    browser = _client(seeded)
    good = pyotp.TOTP(secret).at(t0 + 30)
    wrong = "000000" if good != "000000" else "111111"
    answers = [_login(browser, email, code=wrong).status_code for _ in range(30)]
    assert answers == [401] * 5 + [429] * 25
    assert _login(browser, email, code=good).status_code == 429
    _end_locks(seeded)
    assert _login(browser, email, code=good).status_code == 303


def test_failures_from_one_address_lock_it_for_every_account(seeded: SeededApp) -> None:
    client = _client(seeded)
    for i in range(throttle.ADDRESS.threshold):
        assert _login(client, f"guess{i}@nowhere.example", "x").status_code == 401
    # Another account's right password from the same address: refused too.
    assert _login(client, seeded.users["client"]).status_code == 429
    with seeded.factory() as session:
        assert throttle.locked(session, [(throttle.ADDRESS, "testclient")]) is not None
        assert throttle.locked(session, [(throttle.ADDRESS, "203.0.113.9")]) is None
        # The admins hear about the address; nobody hears about the unknown accounts.
        mails = session.scalars(
            select(OutboundMail).where(OutboundMail.template == "login_locked")
        ).all()
        admins = {seeded.users["admin"]}
        assert {m.to_addr for m in mails} == admins
        assert mails[0].context["ip"] == "testclient" and mails[0].context["account"] is None


def test_a_lock_mails_the_owner_and_the_admins_once(seeded: SeededApp) -> None:
    email = seeded.users["technician2"]
    client = _client(seeded)
    for _ in range(8):
        _login(client, email, "wrong")
    _end_locks(seeded)
    _login(client, email, "wrong")  # a second, longer lock: no second mail within the hour
    with seeded.factory() as session:
        mails = session.scalars(
            select(OutboundMail).where(OutboundMail.template == "login_locked")
        ).all()
        session.expunge_all()
    assert sorted(m.to_addr for m in mails) == sorted([email, seeded.users["admin"]])
    mail = next(m for m in mails if m.to_addr == email)
    assert mail.headers.get("Auto-Submitted") == "auto-generated"
    assert mail.context["account"] == email and mail.context["failures"] == 5
    text = render(mail.template, mail.language, mail.context).text
    assert email in text and "nawet z poprawnym hasłem" in text


def test_failed_api_tokens_lock_the_address_with_429_and_retry_after(seeded: SeededApp) -> None:
    with seeded.factory() as session:
        user = get_user_by_email(session, seeded.users["coordinator"])
        assert user is not None
        token = create_api_token(session, user)
        session.commit()
    api: Any = TestClient(seeded.app)
    ok = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/me", headers=ok).status_code == 200
    for i in range(throttle.API_ADDRESS.threshold):
        bad = api.get("/api/v1/me", headers={"Authorization": f"Bearer pulpit_guess{i}"})
        assert bad.status_code == 401
    refused = api.get("/api/v1/me", headers=ok)
    assert refused.status_code == 429
    assert "retry after" in refused.json()["detail"]
    assert 0 < int(refused.headers["retry-after"]) <= 60
    _end_locks(seeded)
    assert api.get("/api/v1/me", headers=ok).status_code == 200


def test_a_cross_site_login_post_is_refused(seeded: SeededApp) -> None:
    email = seeded.users["technician"]
    forged = _client(seeded)
    r = forged.post(
        "/login",
        data={"email": email, "password": PASSWORD, "next": "/tickets"},
        headers={"origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert "pulpit_session" not in forged.cookies
    r = forged.post(
        "/login",
        data={"email": email, "password": PASSWORD},
        headers={"referer": "https://evil.example/page"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    # Our own page (the origin as the request reached us, or PULPIT_PUBLIC_URL), and scripts
    # sending neither header, log in.
    for headers in (
        {"origin": "http://testserver.local"},
        {"origin": seeded.settings.public_url},
        {"referer": "http://testserver.local/login?next=/tickets"},
        {},
    ):
        r = _client(seeded).post(
            "/login",
            data={"email": email, "password": PASSWORD},
            headers=headers,
            follow_redirects=False,
        )
        assert r.status_code == 303, headers
