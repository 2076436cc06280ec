"""The long tail of real mail through the real SMTP gateway, and out of the outbox again.

Raw messages that the stdlib's builder could never make (forged and unbracketed From headers,
header blocks with lost continuation lines, undeclared 8-bit headers, two thousand nested
multiparts...) are sent with ``smtplib`` to ``mailgw.server.start`` over a fresh, migrated
database holding the factories' world; each stored message is then processed as the
``mail.process`` actor does (``run_process``), and the tickets, events and attachment names
are checked. The last tests queue the coordinators' "new ticket" mail for a ticket whose
subject holds what an old parser stored from a bad encoded word, and see it delivered to a
real SMTP sink by a real worker.
"""

from __future__ import annotations

import base64
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import BlobStore, DirectoryBlobStore
from core.clock import FrozenClock
from core.contracts.models import Status
from core.db import unit_of_work
from core.directory.models import User
from core.mail.models import InboundMessage, Mailbox, OutboundMail
from core.mail.outbox import clean_context, queue_mail, ticket_context
from core.tickets.models import Attachment, Ticket, TicketEvent
from mailgw.mail_policy import DEFAULT
from mailgw.outbound import RenderedMail, build_message, mail_domain, render
from mailgw.process import run_process
from mailgw.server import GatewayHandle, start
from tests.conftest import migrated_database
from tests.factories import build_world
from tests.smtp_sink import SmtpSink, free_port, smtp_sink_fixture  # noqa: F401
from workers.actors import register_actors
from workers.broker import install_dispatcher, make_broker, uninstall_dispatcher
from workers.runner import start_in_process_worker

DOMAIN = "support.example"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, inside business hours
CRLF = b"\r\n"


@dataclass
class Desk:
    """A gateway over a database holding the factories' world and two mailboxes."""

    handle: GatewayHandle
    factory: sessionmaker[Session]
    blobs: BlobStore

    def send(self, raw: bytes, to: str = "pomoc@support.example") -> InboundMessage:
        """Send ``raw`` over SMTP, process what was stored, and return its row."""
        with smtplib.SMTP("127.0.0.1", self.handle.port, timeout=10) as client:
            client.sendmail("sender@client.example", [to], raw)
        with self.factory() as session:
            row_id = session.scalar(select(InboundMessage.id).order_by(InboundMessage.id.desc()))
        assert row_id is not None
        state = run_process(
            self.factory, row_id, blobs=self.blobs, mail_domain=DOMAIN, clock=lambda: NOW
        )
        assert state == "processed", state
        with self.factory() as session:
            row = session.get(InboundMessage, row_id)
            assert row is not None
            session.expunge(row)
            return row

    def ticket(self, row: InboundMessage) -> tuple[Ticket, User | None]:
        with self.factory() as session:
            ticket = session.get(Ticket, row.ticket_id)
            assert ticket is not None
            requester = ticket.requester
            session.expunge_all()
            return ticket, requester

    def event(self, row: InboundMessage) -> tuple[TicketEvent, User | None, list[str]]:
        with self.factory() as session:
            event = session.get(TicketEvent, row.event_id)
            assert event is not None
            names = list(
                session.scalars(
                    select(Attachment.filename)
                    .where(Attachment.event_id == event.id)
                    .order_by(Attachment.id)
                )
            )
            author = event.author
            session.expunge_all()
            return event, author, names


@pytest.fixture(params=["sqlite", "postgres"])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    with migrated_database(request.param, tmp_path) as factory:
        with unit_of_work(factory) as session:
            world = build_world(session)
            session.add_all(
                [
                    Mailbox(address="acme@support.example", contract=world.acme_contract),
                    Mailbox(address="pomoc@support.example", contract=None),
                ]
            )
        settings = replace(
            Settings(data_dir=tmp_path / "var", smtp_port=free_port()),
            max_message_bytes=2_000_000,
            mail_domain=DOMAIN,
        )
        blobs = DirectoryBlobStore(settings.blob_dir)
        handle = start(settings, factory, blobs=blobs)
        try:
            yield Desk(handle, factory, blobs)
        finally:
            handle.stop()


def raw_mail(*headers: str | bytes, body: str | bytes = "Drukarka nie drukuje.\r\n") -> bytes:
    lines = [h.encode() if isinstance(h, str) else h for h in headers]
    data = body.encode() if isinstance(body, str) else body
    return CRLF.join(lines) + CRLF + CRLF + data


def b64word(text: str) -> str:
    return f"=?utf-8?B?{base64.b64encode(text.encode()).decode()}?="


def test_an_encoded_name_with_a_comma_opens_a_ticket_for_its_address(desk: Desk) -> None:
    raw = raw_mail(
        f"From: {b64word('Wiśniewska, Maria')} <maria.wisniewska@example.com>",
        "To: pomoc@support.example",
        "Subject: Awaria drukarki",
        "Message-ID: <wisniewska-1@example.com>",
    )
    ticket, requester = desk.ticket(desk.send(raw))
    assert requester is not None
    assert requester.email == "maria.wisniewska@example.com"
    assert requester.name == "Wiśniewska, Maria"
    assert ticket.subject == "Awaria drukarki"


def test_an_address_in_an_encoded_word_is_not_the_coordinators_mail(desk: Desk) -> None:
    raw = raw_mail(
        "From: =?utf-8?q?coord=40support.example?= <attacker@evil.example>",
        "To: pomoc@support.example",
        "Subject: Zmiana konta do przelewu",
        "Message-ID: <forged-1@evil.example>",
    )
    row = desk.send(raw)
    ticket, requester = desk.ticket(row)
    _, author, _ = desk.event(row)
    assert requester is not None and requester.email == "attacker@evil.example"
    assert author is None or author.email == "attacker@evil.example"
    assert "coord@support.example" not in (requester.name or "")


@pytest.mark.parametrize(
    "header_block",
    [
        # A continuation line that lost its leading space, before the From.
        [
            "Subject: Awaria drukarki w",
            "biurze nr 5",
            "From: Anna <anna@acme.example>",
        ],
        # An mbox separator line first.
        [
            "From anna@acme.example Mon Mar  2 09:58:00 2026",
            "From: Anna <anna@acme.example>",
            "Subject: Awaria drukarki w biurze nr 5",
        ],
        # A stray line that is no header before the first header.
        [
            "This is a multi-part message in MIME format.",
            "From: Anna <anna@acme.example>",
            "Subject: Awaria drukarki w biurze nr 5",
        ],
    ],
)
def test_broken_header_blocks_keep_their_from(desk: Desk, header_block: list[str]) -> None:
    raw = raw_mail(*header_block, "To: acme@support.example", "Message-ID: <hb@acme.example>")
    row = desk.send(raw, to="acme@support.example")
    ticket, requester = desk.ticket(row)
    assert requester is not None and requester.email == "anna@acme.example"
    assert ticket.subject == "Awaria drukarki w biurze nr 5"
    parse = [d for d in row.decisions if d["rule"] == "parse"][-1]
    assert parse.get("data", parse).get("notes")  # the repair is recorded


def test_undeclared_8bit_headers_and_file_names(desk: Desk) -> None:
    raw = raw_mail(
        b"From: " + "Łukasz Żółw".encode("iso-8859-2") + b" <lukasz@acme.example>",
        b"To: acme@support.example",
        b"Subject: " + "Zażółć gęślą jaźń".encode("iso-8859-2"),
        b"Message-ID: <8bit-1@acme.example>",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="b"',
        body=(
            b"--b\r\nContent-Type: text/plain; charset=iso-8859-2\r\n\r\n"
            + "Przegląd drukarki.\r\n".encode("iso-8859-2")
            + b"--b\r\nContent-Type: application/pdf\r\n"
            + b'Content-Disposition: attachment; filename="'
            + "Protokół źródłowy.pdf".encode("iso-8859-2")
            + b'"\r\n\r\n%PDF\r\n--b--\r\n'
        ),
    )
    row = desk.send(raw, to="acme@support.example")
    ticket, requester = desk.ticket(row)
    _, _, names = desk.event(row)
    assert ticket.subject == "Zażółć gęślą jaźń"
    assert requester is not None and requester.name == "Łukasz Żółw"
    assert names == ["Protokół źródłowy.pdf"]


def test_a_bare_forward_is_readable_on_the_timeline(desk: Desk) -> None:
    inner = raw_mail(
        "From: Jan Kowalski <jan@dostawca.example>",
        "Date: Fri, 27 Feb 2026 16:00:00 +0100",
        "Subject: =?utf-8?q?Re=3A_Faktura_12/2026?=",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        body="Faktura zostanie skorygowana.\r\n",
    )
    raw = raw_mail(
        "From: Anna <anna@acme.example>",
        "To: acme@support.example",
        "Subject: Fwd: Re: Faktura 12/2026",
        "Message-ID: <fwd-1@acme.example>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        body=b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--b--\r\n",
    )
    row = desk.send(raw, to="acme@support.example")
    event, _, names = desk.event(row)
    assert names == ["Re: Faktura 12 2026.eml"]
    assert "Faktura zostanie skorygowana." in (event.body_text or "")
    full = event.data["full_text"]
    assert "---------- Forwarded message ----------" in full
    assert "From: Jan Kowalski <jan@dostawca.example>" in full
    assert "Subject: Re: Faktura 12/2026" in full


def test_unnamed_parts_and_hidden_extensions(desk: Desk) -> None:
    raw = raw_mail(
        "From: Anna <anna@acme.example>",
        "To: acme@support.example",
        "Subject: Zrzuty",
        "Message-ID: <parts-1@acme.example>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\nW załączeniu.\r\n"
            "--b\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            "/9j/4AAQ\r\n"
            "--b\r\nContent-Type: text/html\r\nContent-Disposition: attachment\r\n\r\n<p>x</p>\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename*=utf-8''faktura%E2%80%AEfdp.exe\r\n"
            "\r\nMZ\r\n--b--\r\n"
        ),
    )
    _, _, names = desk.event(desk.send(raw, to="acme@support.example"))
    assert names == ["image-1.jpg", "part-2.html", "fakturafdp.exe"]


def test_two_thousand_nested_parts_are_processed_not_quarantined(desk: Desk) -> None:
    parts = [
        b"From: Anna <anna@acme.example>\r\nTo: acme@support.example\r\n"
        b"Subject: Matrioszka\r\nMessage-ID: <deep-1@acme.example>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="top"\r\n\r\n--top\r\n'
        b"Content-Type: text/plain\r\n\r\nNa wierzchu.\r\n--top\r\n"
    ]
    for i in range(2000):
        parts.append(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i))
    parts.append(b"Content-Type: text/plain\r\n\r\nW srodku.\r\n")
    parts.extend(b"--b%d--\r\n" % i for i in reversed(range(2000)))
    parts.append(b"--top--\r\n")
    row = desk.send(b"".join(parts), to="acme@support.example")
    event, _, names = desk.event(row)
    assert (event.body_text or "").strip() == "Na wierzchu."
    assert names == ["nested-parts.eml"]


def test_a_bad_encoded_word_in_a_subject_makes_a_clean_ticket_subject(desk: Desk) -> None:
    raw = raw_mail(
        "From: Anna <anna@acme.example>",
        "To: acme@support.example",
        "Subject: Awaria =?utf-8?q?drukarki_=FF=FE?= =?utf-8?q?pilne?=",
        "Message-ID: <badword-1@acme.example>",
    )
    ticket, _ = desk.ticket(desk.send(raw, to="acme@support.example"))
    assert ticket.subject.startswith("Awaria drukarki")
    assert "=?" not in ticket.subject
    ticket.subject.encode("utf-8")


# --- The outbox: a subject an older parser stored never blocks the coordinators' mail ----------

# What the parser before this change stored for "=?utf-8?q?=FF=FE?=": the encoded word itself,
# which an outgoing header decodes again into bytes it cannot encode. With a control character
# and a line break for good measure.
BAD_SUBJECT = "Awaria =?utf-8?q?=FF=FE?= drukarki \x07w łączności\r\nBcc: x@evil.example"


def new_ticket_context(ticket: Ticket) -> dict[str, Any]:
    context = ticket_context(ticket, public_url=f"https://{DOMAIN}")
    context.update(reaction_due=None, resolution_due=None, timezone="Europe/Warsaw")
    return context


def test_without_cleaning_such_a_subject_cannot_be_built() -> None:
    # Why the outbox cleans: the stdlib decodes the encoded word in the header and then cannot
    # serialise the result next to non-ASCII text (UnicodeEncodeError on every attempt).
    msg = EmailMessage(policy=DEFAULT)
    msg["Subject"] = "Nowe zgłoszenie: Awaria =?utf-8?q?=FF=FE?= [#1]"
    msg.set_content("x")
    with pytest.raises(UnicodeEncodeError):
        msg.as_bytes()


@pytest.fixture
def outbox_factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with migrated_database("sqlite", tmp_path) as factory:
        yield factory


def test_the_new_ticket_mail_for_such_a_subject_is_delivered(
    outbox_factory: sessionmaker[Session], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    settings = Settings(
        outbound_smtp_url=smtp_sink.url, public_url=f"https://{DOMAIN}", data_dir=tmp_path
    )
    clock = FrozenClock(NOW)
    broker = make_broker("memory://")
    register_actors(broker, outbox_factory, settings, clock=clock)
    install_dispatcher(broker)
    worker = start_in_process_worker(broker, threads=1)
    try:
        with unit_of_work(outbox_factory) as session:
            ticket = Ticket(
                number=1042,
                subject=BAD_SUBJECT,
                status=Status(name="New", category="new"),
                status_category="new",
                requester=User(email="anna@acme.example", role="client"),
            )
            session.add(ticket)
            session.flush()
            row = queue_mail(
                session,
                template="ticket_new",
                to="coord@support.example",
                context=new_ticket_context(ticket),
                ticket=ticket,
                mail_domain=mail_domain(settings),
                now=clock(),
            )
            assert row is not None
            outbound_id = row.id
        worker.join(timeout_seconds=20)
        [mail] = smtp_sink.wait_for(1)
    finally:
        worker.stop()
        uninstall_dispatcher()
        broker.close()
    with outbox_factory() as session:
        sent = session.get(OutboundMail, outbound_id)
        assert sent is not None and sent.state == "sent", sent.last_error if sent else None
    subject = str(mail.message["Subject"])
    assert subject.startswith("Nowe zgłoszenie: Awaria") and subject.endswith("[#1042]")
    assert "drukarki w łączności" in subject
    assert "\n" not in subject and "\x07" not in subject
    assert mail.message["Bcc"] is None
    assert mail.rcpt_tos == ("coord@support.example",)


def test_a_rendered_clean_context_always_serialises() -> None:
    context = clean_context(
        {
            "ticket_number": 7,
            "ticket_subject": "Zgłoszenie \udcff =?utf-8?q?=FF?= \x00\x1b koniec",
            "client": None,
            "contract": None,
            "url": "https://support.example/tickets/7",
            "reaction_due": None,
            "resolution_due": None,
            "timezone": "Europe/Warsaw",
        }
    )
    rendered = render("ticket_new", "pl", context)
    row = OutboundMail(
        message_id="<x@support.example>",
        to_addr="coord@support.example",
        headers={},
        language="pl",
        created_at=NOW,
    )
    settings = Settings(public_url=f"https://{DOMAIN}", mail_domain=DOMAIN)
    message = build_message(
        row, RenderedMail(rendered.subject, rendered.text, rendered.html), settings
    )
    assert message.as_bytes()  # no UnicodeEncodeError
    assert str(message["Subject"]).startswith("Nowe zgłoszenie: Zgłoszenie")
    assert str(message["Subject"]).endswith("koniec [#7]")
