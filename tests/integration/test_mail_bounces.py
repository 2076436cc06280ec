"""Delivery reports mark a bouncing address; mail from it clears the mark (mailgw.process).

RFC 3464: a report with Action ``failed`` and a permanent 5.x.x Status about one of our
``OutboundMail`` sets ``User.mail_bouncing_since``; a ``delayed`` 4.x.x report does not.
Also: winmail.dat (MS-OXTNEF) arriving by mail becomes the files inside it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.blobs import BlobStore
from core.directory.models import User
from core.mail.models import InboundMessage, OutboundMail
from core.tickets.models import Attachment, Ticket
from tests.factories import World
from tests.mail_builders import (  # noqa: F401
    CORPUS,
    NOW,
    blobs_fixture,
    build,
    decision,
    deliver,
    event_of,
    opened,
    ticket_count,
    ticket_of,
    world_fixture,
)

FAILED = "nobody@acme.example"


def dsn(
    action: str = "failed", status: str = "5.1.1", original: str = "<OURS-ID@support.example>"
) -> bytes:
    """The corpus DSN with another Action / Status / original Message-ID."""
    raw = (CORPUS / "dsn_bounce.eml").read_bytes()
    raw = raw.replace(b"Action: failed", f"Action: {action}".encode())
    raw = raw.replace(b"Status: 5.1.1", f"Status: {status}".encode())
    raw = raw.replace(b"<OURS-ID@support.example>", original.encode())
    if action != "failed":
        raw = raw.replace(b"<dsn-11@mx.acme.example>", f"<dsn-{action}@mx.acme.example>".encode())
    return raw


def sent(session: Session, ticket: Ticket, message_id: str = "<OURS-ID@support.example>") -> None:
    session.add(
        OutboundMail(message_id=message_id, ticket_id=ticket.id, template="ack", to_addr=FAILED)
    )
    session.flush()


def bouncing_user(session: Session) -> User:
    user = User(email=FAILED, role="client")
    session.add(user)
    session.flush()
    return user


def test_permanent_failure_marks_the_user_and_notes_the_report(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    sent(session, ticket)
    user = bouncing_user(session)
    row = deliver(session, blobs, dsn(), envelope_from="")
    event = event_of(session, row)
    assert event.ticket is ticket and not event.public
    assert event.data["bounce"] is True and event.data["failed_recipient"] == FAILED
    assert user.mail_bouncing_since == NOW
    hit = decision(row, "bouncing")
    assert hit["result"] == FAILED and hit["set"] is True and "5.1.1" in hit["why"]


def test_mail_from_the_address_clears_the_mark(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    sent(session, ticket)
    user = bouncing_user(session)
    deliver(session, blobs, dsn(), envelope_from="")
    assert user.mail_bouncing_since is not None
    later = NOW + timedelta(days=1)
    row = deliver(session, blobs, build(frm=f"Nikt <{FAILED}>"), now=later, envelope_from=FAILED)
    assert row.state == "processed"
    assert user.mail_bouncing_since is None
    hit = decision(row, "bouncing")
    assert hit["result"] == FAILED and hit["set"] is False


def test_delayed_report_does_not_mark(session: Session, world: World, blobs: BlobStore) -> None:
    ticket, _ = opened(session, blobs)
    sent(session, ticket)
    user = bouncing_user(session)
    row = deliver(session, blobs, dsn(action="delayed", status="4.4.7"), envelope_from="")
    assert event_of(session, row).ticket is ticket  # still noted on the ticket
    assert user.mail_bouncing_since is None
    hit = decision(row, "bouncing")
    assert hit["result"] is None and "not a permanent failure" in hit["why"]


def test_report_about_mail_we_never_sent_does_not_mark(
    session: Session, world: World, blobs: BlobStore
) -> None:
    user = bouncing_user(session)
    row = deliver(session, blobs, dsn(original="<forged@support.example>"), envelope_from="")
    assert row.state == "ignored" and user.mail_bouncing_since is None
    assert "no outbound mail of ours" in decision(row, "bouncing")["why"]


def test_report_for_an_address_of_no_user_marks_nobody(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    sent(session, ticket)
    row = deliver(session, blobs, dsn(), envelope_from="")
    assert "no user with the address" in decision(row, "bouncing")["why"]
    assert event_of(session, row).ticket is ticket


def test_winmail_dat_becomes_its_files_on_the_ticket(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row: InboundMessage = deliver(session, blobs, (CORPUS / "winmail.eml").read_bytes())
    ticket = ticket_of(session, row)
    names = session.scalars(
        select(Attachment.filename)
        .where(Attachment.event_id == row.event_id)
        .order_by(Attachment.id)
    ).all()
    assert names == ["Protokół naprawy.pdf", "zdjęcie.png"]
    assert ticket.events[0].body_text == "Drukarka nie działa, w załączeniu protokół."
    assert any("TNEF decoded" in n for n in decision(row, "parse")["notes"])
    assert ticket_count(session) == 1
