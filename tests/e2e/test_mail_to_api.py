"""SMTP in, API out: a client's mail becomes a ticket with deadlines, a reply lands on it, a
stranger quoting its tag gets a ticket of their own, an out-of-office changes nothing.

Everything is real and in one process, as under ``pulpit serve``: the aiosmtpd gateway on a
free port, the in-process Dramatiq worker, the Litestar app, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import migrated_database
from tests.e2e.conftest import running_desk, ticket_for


@pytest.fixture(params=["sqlite", "postgres"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with migrated_database(request.param, tmp_path) as factory:
        yield factory


@pytest.fixture
def desk(factory: sessionmaker[Session], tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield from running_desk(factory, tmp_path)


def send(port: int, frm: str, subject: str, body: str, message_id: str, **headers: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = (
        frm,
        "pomoc@support.example",
        subject,
        message_id,
    )
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg)


def test_mail_becomes_tickets_and_replies(desk: dict[str, Any]) -> None:
    port = desk["port"]
    send(
        port,
        "Anna <anna@acme.example>",
        "Awaria drukarki w księgowości",
        "Nie drukuje.",
        "<a1@acme.example>",
    )
    ticket = ticket_for(desk, "<a1@acme.example>")
    assert ticket["contract"] == "ACME-2026" and ticket["ticket_type"] == "failure"
    assert ticket["requester"] == "anna@acme.example"
    assert ticket["sla"]["reaction_due"] and ticket["sla"]["resolution_due"]
    number = ticket["number"]

    send(
        port,
        "Anna <anna@acme.example>",
        f"Re: Awaria drukarki [#{number}]",
        "Dalej nie drukuje.\n\nW dniu 27.11.2026 o 10:00, Serwis pisze:\n> stary tekst\n",
        "<a2@acme.example>",
    )
    reply = ticket_for(desk, "<a2@acme.example>")
    assert reply["number"] == number
    assert reply["events"][-1]["body_text"] == "Dalej nie drukuje."

    send(
        port,
        "Obcy <obcy@elsewhere.example>",
        f"Re: [#{number}]",
        "Podszywam się.",
        "<x1@elsewhere.example>",
    )
    assert ticket_for(desk, "<x1@elsewhere.example>")["number"] != number

    send(
        port,
        "Anna <anna@acme.example>",
        f"Odpowiedź automatyczna: [#{number}]",
        "Jestem na urlopie.",
        "<ooo@acme.example>",
        Auto_Submitted="auto-replied",
    )
    ooo = ticket_for(desk, "<ooo@acme.example>")
    assert ooo["number"] == number and ooo["status"] == "New"
    assert [e for e in ooo["events"] if e["message_id"] and "ooo@" in e["message_id"]][0][
        "public"
    ] is False
