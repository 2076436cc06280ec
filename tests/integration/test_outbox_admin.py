"""What admins see of outgoing mail and how they send a failed one again (issue 5: "a 5xx is
permanent and shows on the ticket's timeline and to admins"): ``pulpit mail outbox`` /
``pulpit mail resend`` and ``GET /api/v1/outbox`` / ``POST /api/v1/outbox/{id}/resend``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from core.access.accounts import create_api_token, get_user_by_email
from core.audit import AuditEntry
from core.clock import utcnow
from core.db import unit_of_work
from core.mail.models import OutboundMail
from core.mail.outbox import mark_failed, mark_sent, queue_mail
from core.tickets.models import Ticket
from pulpit.cli import main
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SeededApp:
    app = build_seeded_app(tmp_path)
    monkeypatch.setenv("PULPIT_DATA_DIR", str(app.settings.data_dir))
    monkeypatch.setenv("PULPIT_DATABASE_URL", app.settings.database_url)
    return app


def _rows(seeded: SeededApp) -> dict[str, int]:
    """A failed, a sent and a pending mail about one ticket; their ids by state."""
    ids: dict[str, int] = {}
    with unit_of_work(seeded.factory) as session:
        ticket = session.scalar(select(Ticket).order_by(Ticket.id))
        assert ticket is not None
        for n, state in enumerate(("failed", "sent", "pending")):
            row = queue_mail(
                session,
                template="ticket_ack",
                to=f"adres{n}@acme.example",
                context={"ticket": {"number": ticket.number, "subject": ticket.subject}},
                ticket=ticket,
                mail_domain="support.example",
                now=utcnow(),
            )
            assert row is not None
            session.flush()
            if state == "failed":
                mark_failed(row, "adres0@acme.example: 550 5.1.1 No such mailbox here")
            elif state == "sent":
                mark_sent(row, utcnow())
            ids[state] = row.id
    return ids


def _api(seeded: SeededApp, role: str) -> Any:
    with unit_of_work(seeded.factory) as session:
        user = get_user_by_email(session, seeded.users[role])
        assert user is not None
        token = create_api_token(session, user)
    client: Any = TestClient(seeded.app)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_lists_failures_with_the_reason_and_sends_them_again(
    seeded: SeededApp, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _rows(seeded)
    code, out, _ = _run(capsys, "mail", "outbox", "--state", "failed", "--json")
    assert code == 0
    [failed] = json.loads(out)
    assert failed["id"] == ids["failed"] and failed["to"] == "adres0@acme.example"
    assert "550 5.1.1" in failed["last_error"] and failed["ticket"] is not None

    code, out, _ = _run(capsys, "mail", "outbox")
    assert code == 0 and "550 5.1.1" in out and "adres1@acme.example" in out

    code, _, err = _run(capsys, "mail", "resend", str(ids["sent"]))
    assert code != 0 and "only failed mail can be sent again" in err
    code, _, err = _run(capsys, "mail", "resend", "999999")
    assert code != 0 and "no outgoing mail with id 999999" in err

    code, out, _ = _run(capsys, "mail", "resend", "--failed")
    assert code == 0 and "1 mail(s) will be sent again" in out
    with seeded.factory() as session:
        row = session.get(OutboundMail, ids["failed"])
        assert row is not None and (row.state, row.attempts) == ("pending", 0)
        audit = session.scalar(select(AuditEntry).where(AuditEntry.action == "outbox.resend"))
        assert audit is not None and audit.actor == "cli" and audit.data == {"ids": [row.id]}
    code, out, _ = _run(capsys, "mail", "resend", "--failed")
    assert code == 0 and "no failed outgoing mail" in out


def test_the_api_shows_the_outbox_to_admins_only(seeded: SeededApp) -> None:
    ids = _rows(seeded)
    admin = _api(seeded, "admin")
    r = admin.get("/api/v1/outbox", params={"state": "failed"})
    assert r.status_code == 200
    assert [item["id"] for item in r.json()["items"]] == [ids["failed"]]
    assert admin.get("/api/v1/outbox", params={"state": "lost"}).status_code == 400

    coordinator = _api(seeded, "coordinator")
    refused = coordinator.get("/api/v1/outbox")
    assert refused.status_code == 403 and "administrators" in refused.json()["detail"]
    assert coordinator.post(f"/api/v1/outbox/{ids['failed']}/resend").status_code == 403

    again = admin.post(f"/api/v1/outbox/{ids['failed']}/resend")
    assert again.status_code == 200 and again.json()["state"] == "pending"
    twice = admin.post(f"/api/v1/outbox/{ids['failed']}/resend")
    assert twice.status_code == 400 and "not failed" in twice.json()["detail"]
    assert admin.post("/api/v1/outbox/999999/resend").status_code == 404


def test_the_console_page_lists_failures_and_sends_one_again(seeded: SeededApp) -> None:
    ids = _rows(seeded)
    admin, csrf = console_client(seeded.app, seeded.users["admin"])
    page = admin.get("/outbox")
    assert page.status_code == 200
    assert 'href="/outbox"' in page.text  # in the admin's navigation
    assert f'data-testid="outbox-{ids["failed"]}"' in page.text
    assert f'data-testid="outbox-{ids["sent"]}"' not in page.text  # failed first, alone
    assert "550 5.1.1 No such mailbox here" in page.text and "Wyślij ponownie" in page.text
    everything = admin.get("/outbox", params={"show": "all"}).text
    assert all(f'data-testid="outbox-{i}"' in everything for i in ids.values())

    done = admin.post(f"/outbox/{ids['failed']}/resend", data={"csrf_token": csrf})
    assert done.status_code == 200  # followed back to the list
    assert "Wiadomość do adres0@acme.example zostanie wysłana ponownie." in done.text
    with seeded.factory() as session:
        row = session.get(OutboundMail, ids["failed"])
        assert row is not None and row.state == "pending"
    again = admin.post(f"/outbox/{ids['failed']}/resend", data={"csrf_token": csrf})
    assert again.status_code == 400 and "only failed mail can be sent again" in again.text

    coordinator, _ = console_client(seeded.app, seeded.users["coordinator"])
    assert coordinator.get("/outbox").status_code == 403
    assert 'href="/outbox"' not in coordinator.get("/tickets").text
