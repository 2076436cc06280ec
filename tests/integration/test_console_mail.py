"""Mail on the ticket page: the whole message one click away, the original downloadable by
staff only (issue 4, "Bodies")."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from core.blobs import DirectoryBlobStore
from core.clock import utcnow
from core.db import unit_of_work
from core.mail.inbound import store_inbound
from core.mail.models import InboundMessage
from core.tickets.models import Ticket
from mailgw.process import process_inbound
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client


@pytest.fixture(scope="module")
def mailed(tmp_path_factory: pytest.TempPathFactory) -> tuple[SeededApp, int, int, bytes]:
    instance = build_seeded_app(tmp_path_factory.mktemp("console-mail"))
    msg = EmailMessage()
    msg["From"] = instance.users["client"]
    msg["To"] = "support@support.example"
    msg["Subject"] = "Skaner nie działa"
    msg["Message-ID"] = "<console-mail@client.example>"
    msg.set_content(
        "Skaner znowu nie działa.\n\nW dniu 26.11.2026 o 10:00, Serwis pisze:\n> Naprawione.\n"
    )
    raw = msg.as_bytes()
    blobs = DirectoryBlobStore(instance.settings.blob_dir)
    with unit_of_work(instance.factory) as session:
        row = store_inbound(session, raw, source="smtp", blobs=blobs, envelope_to=["x"])
        process_inbound(session, row.id, blobs=blobs, mail_domain="desk.example", now=utcnow())
        assert row.state == "processed", row.decisions
        number = session.scalar(select(Ticket.number).where(Ticket.id == row.ticket_id))
        event_id = row.event_id
    assert number is not None and event_id is not None
    return instance, number, event_id, raw


def test_the_whole_message_is_one_click_away(mailed: tuple[SeededApp, int, int, bytes]) -> None:
    instance, number, _, _ = mailed
    client: Any
    client, _ = console_client(instance.app, instance.users["coordinator"])
    html = client.get(f"/tickets/{number}").text
    assert 'data-testid="full-text"' in html and "Naprawione." in html
    assert 'data-testid="raw-mail"' in html


def test_staff_download_the_original(mailed: tuple[SeededApp, int, int, bytes]) -> None:
    instance, _, event_id, raw = mailed
    client: Any
    client, _ = console_client(instance.app, instance.users["coordinator"])
    r = client.get(f"/events/{event_id}/raw")
    assert r.status_code == 200
    assert r.content == raw
    assert r.headers["content-type"].startswith("message/rfc822")


def test_clients_do_not_get_the_original(mailed: tuple[SeededApp, int, int, bytes]) -> None:
    instance, number, event_id, _ = mailed
    client: Any
    client, _ = console_client(instance.app, instance.users["client"])
    assert client.get(f"/tickets/{number}").status_code == 200
    assert client.get(f"/events/{event_id}/raw").status_code == 404
    assert 'data-testid="raw-mail"' not in client.get(f"/tickets/{number}").text
    with instance.factory() as session:
        assert session.scalar(select(InboundMessage.id).where(InboundMessage.event_id == event_id))
