"""A one-time code mailed at login as the second factor (issue 11): chosen by an administrator
(``pulpit user add --two-step email``) or on the profile, delivered through the outbox to a real
SMTP server, taken by the login form's ``code`` field, once, for 10 minutes, 5 tries."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select, update

from core.access.models import LoginChallenge, LoginThrottle
from core.clock import utcnow
from core.mail.models import OutboundMail
from pulpit.cli import main
from tests.e2e.conftest import PASSWORD, SeededApp, build_seeded_app, console_client
from tests.smtp_sink import SmtpSink, smtp_sink_fixture  # noqa: F401
from workers.actors import send_outbound_mail


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SeededApp:
    seeded = build_seeded_app(tmp_path)
    monkeypatch.setenv("PULPIT_DATA_DIR", str(seeded.settings.data_dir))
    monkeypatch.setenv("PULPIT_DATABASE_URL", seeded.settings.database_url)
    return seeded


def _post(client: Any, **data: str) -> Any:
    return client.post("/login", data={"next": "/tickets", **data}, follow_redirects=False)


def _challenge(html: str) -> str:
    match = re.search(r'name="challenge" value="([^"]+)"', html)
    assert match, "the second step carries a challenge, not the password"
    return match.group(1)


def _deliver(seeded: SeededApp, sink: SmtpSink, to: str) -> str:
    """Send the newest login_code row to the sink; the code as the recipient reads it."""
    with seeded.factory() as session:
        row = session.scalars(
            select(OutboundMail)
            .where(OutboundMail.template == "login_code", OutboundMail.to_addr == to)
            .order_by(OutboundMail.id.desc())
        ).first()
        assert row is not None
        row_id = row.id
    settings = replace(seeded.settings, outbound_smtp_url=sink.url)
    assert send_outbound_mail(seeded.factory, settings, row_id, batch=1) == "sent"
    mail = sink.messages[-1]
    assert mail.rcpt_tos == (to,)
    message = mail.message
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def test_set_by_the_command_line_the_code_arrives_by_smtp_and_logs_in_once(
    seeded: SeededApp, smtp_sink: SmtpSink, capsys: pytest.CaptureFixture[str]
) -> None:
    email = seeded.users["technician"]
    assert (
        main(["user", "add", "--email", email, "--role", "technician", "--two-step", "email"]) == 0
    )
    assert "second factor email" in capsys.readouterr().out

    browser: Any = TestClient(seeded.app)
    asked = _post(browser, email=email, password=PASSWORD)
    assert asked.status_code == 401
    assert "Wysłaliśmy Ci mailem sześciocyfrowy kod" in asked.text
    assert PASSWORD not in asked.text
    challenge = _challenge(asked.text)
    code = _deliver(seeded, smtp_sink, email)
    with seeded.factory() as session:
        stored = session.scalars(select(LoginChallenge)).one()
        assert stored.code_hash and code not in stored.code_hash  # hashed

    wrong = "000000" if code != "000000" else "111111"
    again = _post(browser, challenge=challenge, code=wrong)
    assert again.status_code == 401 and "Kod z maila jest błędny" in again.text
    assert _challenge(again.text) == challenge
    done = _post(browser, challenge=challenge, code=code)
    assert done.status_code == 303 and done.headers["location"] == "/tickets"
    # Once: the challenge is gone, and so is the code.
    assert _post(TestClient(seeded.app), challenge=challenge, code=code).status_code == 401
    assert (
        _post(TestClient(seeded.app), email=email, password=PASSWORD, code=code).status_code == 401
    )


def test_scripts_post_the_code_with_the_password(seeded: SeededApp, smtp_sink: SmtpSink) -> None:
    email = seeded.users["client"]
    assert main(["user", "add", "--email", email, "--role", "client", "--two-step", "email"]) == 0
    script: Any = TestClient(seeded.app)
    assert _post(script, email=email, password=PASSWORD).status_code == 401
    code = _deliver(seeded, smtp_sink, email)
    # A second right password within a minute mails nothing new; the first code still works.
    assert _post(script, email=email, password=PASSWORD).status_code == 401
    with seeded.factory() as session:
        codes = session.scalars(
            select(OutboundMail).where(OutboundMail.template == "login_code")
        ).all()
        assert len(codes) == 1
    assert _post(script, email=email, password=PASSWORD, code=code).status_code == 303


def test_five_wrong_codes_end_the_attempt_and_count_as_failures(
    seeded: SeededApp, smtp_sink: SmtpSink
) -> None:
    email = seeded.users["technician2"]
    assert (
        main(["user", "add", "--email", email, "--role", "technician", "--two-step", "email"]) == 0
    )
    browser: Any = TestClient(seeded.app)
    challenge = _challenge(_post(browser, email=email, password=PASSWORD).text)
    code = _deliver(seeded, smtp_sink, email)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        assert _post(browser, challenge=challenge, code=wrong).status_code == 401
    fifth = _post(browser, challenge=challenge, code=wrong)
    assert fifth.status_code == 401
    assert "wpisz hasło ponownie" in fifth.text and 'name="password"' in fifth.text
    with seeded.factory() as session:
        assert session.scalars(select(LoginChallenge)).all() == []
        assert session.get(LoginThrottle, f"account:{email}").failures == 5  # type: ignore[union-attr]
        session.execute(update(LoginThrottle).values(locked_until=utcnow() - timedelta(seconds=1)))
        session.commit()
    # The right code of the dead attempt does not log in; a new password step does.
    assert _post(browser, challenge=challenge, code=code).status_code == 401
    challenge = _challenge(_post(browser, email=email, password=PASSWORD).text)
    fresh = _deliver(seeded, smtp_sink, email)
    assert _post(browser, challenge=challenge, code=fresh).status_code == 303


def test_a_code_expires_after_ten_minutes(seeded: SeededApp, smtp_sink: SmtpSink) -> None:
    email = seeded.users["manager"]
    assert main(["user", "add", "--email", email, "--role", "client", "--two-step", "email"]) == 0
    browser: Any = TestClient(seeded.app)
    challenge = _challenge(_post(browser, email=email, password=PASSWORD).text)
    code = _deliver(seeded, smtp_sink, email)
    with seeded.factory() as session:
        row = session.scalars(select(LoginChallenge)).one()
        assert row.expires_at - row.created_at == timedelta(minutes=10)
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    late = _post(browser, challenge=challenge, code=code)
    assert late.status_code == 401 and "wpisz hasło ponownie" in late.text


def test_chosen_on_the_profile_and_enough_for_a_role_that_needs_two_steps(
    seeded: SeededApp, smtp_sink: SmtpSink
) -> None:
    seeded.app.state.settings = replace(seeded.app.state.settings, two_step_roles="coordinator")
    email = seeded.users["coordinator"]
    client, csrf = console_client(seeded.app, email)
    assert client.get("/tickets", follow_redirects=False).status_code == 303  # set it up first
    page = client.get("/profile/two-step")
    assert 'data-testid="two-step-email"' in page.text
    refused = client.post(
        "/profile/two-step", data={"csrf_token": csrf, "action": "email", "password": "nope"}
    )
    assert refused.status_code == 400
    done = client.post(
        "/profile/two-step", data={"csrf_token": csrf, "action": "email", "password": PASSWORD}
    )
    assert done.status_code == 200 and "przy każdym logowaniu wyślemy Ci kod" in done.text
    assert client.get("/tickets", follow_redirects=False).status_code == 200
    assert client.get("/api/v1/me").status_code == 200
    # The next login asks for the mailed code.
    browser: Any = TestClient(seeded.app)
    challenge = _challenge(_post(browser, email=email, password=PASSWORD).text)
    assert (
        _post(browser, challenge=challenge, code=_deliver(seeded, smtp_sink, email)).status_code
        == 303
    )


def test_only_allowed_methods_are_offered_and_accepted(
    seeded: SeededApp, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PULPIT_TWO_STEP_METHODS", "totp")
    email = seeded.users["technician"]
    assert (
        main(["user", "add", "--email", email, "--role", "technician", "--two-step", "email"]) != 0
    )
    assert "not allowed" in capsys.readouterr().err
    seeded.app.state.settings = replace(seeded.app.state.settings, two_step_methods="totp")
    client, _ = console_client(seeded.app, email)
    page = client.get("/profile/two-step").text
    assert 'data-testid="two-step-email"' not in page and 'data-testid="two-step-enable"' in page
