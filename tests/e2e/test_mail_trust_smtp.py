"""Forged and unreadable senders over real SMTP: the gateway, the in-process worker, the API.

Raw messages built in code go through ``smtplib`` to the aiosmtpd gateway, are processed by
the Dramatiq worker with the trust settings of ``pulpit serve`` (``PULPIT_TRUSTED_AUTHSERV_ID``)
and read back through ``/api/v1``: a forged identity is never used, and a mail whose From
cannot be read still becomes a ticket.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.directory.services import UNKNOWN_SENDER
from tests.conftest import migrated_database
from tests.e2e.conftest import running_desk, ticket_for

MX = "mx.support.example"


@pytest.fixture(params=["sqlite", "postgres"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with migrated_database(request.param, tmp_path) as factory:
        yield factory


@pytest.fixture
def desk(factory: sessionmaker[Session], tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield from running_desk(factory, tmp_path, trusted_authserv_id=MX)


def send_raw(desk: dict[str, Any], frm: str, subject: str, *, top: str = "") -> str:
    """A mail as raw bytes (the stdlib would repair what real mail gets wrong); its id."""
    message_id = make_msgid(domain="client.example")
    raw = (
        f"{top}From: {frm}\r\nTo: pomoc@support.example\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nTreść zgłoszenia.\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", desk["port"], timeout=10) as smtp:
        smtp.sendmail("sender@client.example", ["pomoc@support.example"], raw)
    return message_id


def event_for(ticket: dict[str, Any], message_id: str) -> dict[str, Any]:
    return next(e for e in ticket["events"] if e["message_id"] == message_id)


def test_forged_senders_never_borrow_an_identity(desk: dict[str, Any]) -> None:
    opened = send_raw(desk, "Anna <anna@acme.example>", "Drukarka nie drukuje")
    number = ticket_for(desk, opened)["number"]

    # The coordinator's address in an encoded display name: the sender is the attacker.
    mid = send_raw(
        desk, "=?utf-8?q?coord=40support.example?= <attacker@evil.example>", f"Re: [#{number}]"
    )
    forged = ticket_for(desk, mid)
    assert forged["number"] != number and forged["requester"] == "attacker@evil.example"

    # The coordinator's own address without proof: kept, but as an unverified internal note.
    mid = send_raw(desk, "Ola <coord@support.example>", f"Re: [#{number}]")
    event = event_for(ticket_for(desk, mid), mid)
    assert (event["public"], event["author"], event["data"]["unverified"]) == (False, None, True)

    # A header claiming our MTA's id, written upstream of it (below the second Received).
    upstream = (
        "Received: from mx.evil.example by mx.support.example; Mon, 2 Mar 2026 10:00 +0100\r\n"
        "Received: from evil.example by mx.evil.example; Mon, 2 Mar 2026 09:59 +0100\r\n"
        f"Authentication-Results: {MX}; dmarc=pass header.from=support.example\r\n"
    )
    mid = send_raw(desk, "Ola <coord@support.example>", f"Re: [#{number}]", top=upstream)
    event = event_for(ticket_for(desk, mid), mid)
    assert (event["public"], event["author"]) == (False, None)

    # The client's reply failing DMARC for a domain publishing p=reject.
    ours = f"Authentication-Results: {MX}; dmarc=fail (p=reject) header.from=acme.example\r\n"
    mid = send_raw(desk, "Anna <anna@acme.example>", f"Re: [#{number}]", top=ours)
    event = event_for(ticket_for(desk, mid), mid)
    assert (event["public"], event["data"]["unverified"]) == (False, True)

    # Proven by our MTA: the coordinator answers as the coordinator.
    ours = f"Authentication-Results: {MX}; dmarc=pass header.from=support.example\r\n"
    mid = send_raw(desk, "Ola <coord@support.example>", f"Re: [#{number}]", top=ours)
    event = event_for(ticket_for(desk, mid), mid)
    assert (event["public"], event["author"]) == (True, "coord@support.example")


def test_outlook_style_encoded_name_with_a_comma_is_the_real_sender(desk: dict[str, Any]) -> None:
    name = "=?utf-8?B?" + __import__("base64").b64encode("Wiśniewska, Maria".encode()).decode()
    mid = send_raw(desk, f"{name}?= <maria.wisniewska@acme.example>", "Skaner nie skanuje")
    ticket = ticket_for(desk, mid)
    assert ticket["requester"] == "maria.wisniewska@acme.example"
    assert ticket["client"] == "Acme"


def test_an_unreadable_from_opens_a_ticket_a_coordinator_completes(desk: dict[str, Any]) -> None:
    mid = send_raw(desk, "Jan Kowalski jan.kowalski@acme.example", "Nie działa poczta")
    ticket = ticket_for(desk, mid)
    assert ticket["requester"] == UNKNOWN_SENDER and ticket["contract"] is None
    assert "jan.kowalski@acme.example" in event_for(ticket, mid)["data"]["raw_from"]

    r = desk["api"].post(
        f"/api/v1/tickets/{ticket['number']}/requester",
        json={"requester": "jan.kowalski@acme.example", "name": "Jan Kowalski"},
        headers=desk["headers"],
    )
    assert r.status_code == 200, r.text
    assert (r.json()["requester"], r.json()["client"]) == ("jan.kowalski@acme.example", "Acme")


def test_a_clients_mail_to_a_ticket_waiting_for_them_starts_the_clock_again(
    desk: dict[str, Any],
) -> None:
    opened = send_raw(desk, "Anna <anna@acme.example>", "Skaner nie skanuje")
    number = ticket_for(desk, opened)["number"]
    r = desk["api"].post(
        f"/api/v1/tickets/{number}/status",
        json={"status": "Waiting for client"},
        headers=desk["headers"],
    )
    assert r.status_code == 200 and r.json()["sla"]["paused"] is True

    mid = send_raw(desk, "Anna <anna@acme.example>", f"Re: [#{number}] Skaner nie skanuje")
    ticket = ticket_for(desk, mid)
    assert ticket["status_category"] == "open" and ticket["sla"]["paused"] is False
    resumed = [e for e in ticket["events"] if e["type"] == "status"][-1]
    assert (resumed["author"], resumed["data"]["reason"]) == ("anna@acme.example", "client_reply")
