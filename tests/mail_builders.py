"""Mail built in code and delivered as the gateway does, for the tests of inbound mail.

``build`` makes a message with the stdlib (Zulip's style); ``deliver`` stores it with
``core.mail.inbound.store_inbound`` and runs ``mailgw.process.process_inbound`` on it; the rest
read the outcome. ``CORPUS`` holds real-world messages in ``tests/fixtures/mail``.

The ``world`` and ``blobs`` fixtures are imported explicitly (as ``world_fixture`` and
``blobs_fixture``) by the modules that want them.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.blobs import BlobStore, DirectoryBlobStore
from core.mail.inbound import store_inbound
from core.mail.models import InboundMessage, Mailbox
from core.tickets.models import Ticket, TicketEvent
from mailgw.process import process_inbound
from tests.factories import World, at, build_world

DOMAIN = "support.example"
NOW = at("2026-03-02 09:00")  # a Monday, 10:00 in Warsaw: inside business hours
CORPUS = Path(__file__).parent / "fixtures" / "mail"


@pytest.fixture(name="world")
def world_fixture(session: Session) -> World:
    """The factories' world plus two mailboxes: one of ACME's contract, one for triage."""
    w = build_world(session)
    session.add_all(
        [
            Mailbox(address="acme@support.example", contract=w.acme_contract),
            Mailbox(address="pomoc@support.example", contract=None),
        ]
    )
    session.flush()
    return w


@pytest.fixture(name="blobs")
def blobs_fixture(tmp_path: Path) -> BlobStore:
    return DirectoryBlobStore(tmp_path / "blobs")


def build(
    frm: str = "Anna <anna@acme.example>",
    subject: str = "Drukarka nie drukuje",
    body: str = "Dzień dobry, drukarka nie drukuje.",
    to: str = "pomoc@support.example",
    **headers: str,
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = frm, to, subject
    msg["Message-ID"] = headers.pop("message_id", make_msgid(domain="client.example"))
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def deliver(
    session: Session,
    blobs: BlobStore,
    raw: bytes,
    *,
    now: datetime = NOW,
    envelope_to: list[str] | None = None,
    envelope_from: str = "sender@client.example",
    **kwargs: Any,
) -> InboundMessage:
    row = store_inbound(
        session,
        raw,
        source="smtp",
        blobs=blobs,
        envelope_from=envelope_from,
        envelope_to=envelope_to or ["pomoc@support.example"],
        now=now,
    )
    return process_inbound(session, row.id, blobs=blobs, mail_domain=DOMAIN, now=now, **kwargs)


def ticket_of(session: Session, row: InboundMessage) -> Ticket:
    assert row.state == "processed", (row.reason, row.decisions)
    ticket = session.get(Ticket, row.ticket_id)
    assert ticket is not None
    return ticket


def event_of(session: Session, row: InboundMessage) -> TicketEvent:
    event = session.get(TicketEvent, row.event_id)
    assert event is not None
    return event


def opened(session: Session, blobs: BlobStore, **kw: Any) -> tuple[Ticket, InboundMessage]:
    """A new ticket from a mail built with ``build(**kw)``, and its stored row."""
    row = deliver(session, blobs, build(**kw))
    return ticket_of(session, row), row


def decision(row: InboundMessage, rule: str) -> dict[str, Any]:
    return [d for d in row.decisions if d["rule"] == rule][-1]


def ticket_count(session: Session) -> int:
    return int(session.scalar(select(func.count(Ticket.id))) or 0)
