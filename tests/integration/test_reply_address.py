"""Signed reply addresses (core.mail.reply_address, docs/mail.md "Signed reply addresses").

The address itself (sign, verify, find_signed), the Reply-To of notifications, a reply to it
through the real SMTP gateway, and the order of threading sources in
``mailgw.thread_match.find_thread`` (signed address, our own Message-IDs, tags, stored ids).
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import BlobStore, DirectoryBlobStore
from core.db import SECRET_KEY_INFO, unit_of_work
from core.mail.mailboxes import base_address, mailbox_for
from core.mail.models import InboundMessage, Mailbox, OutboundMail
from core.mail.reply_address import MAX_LOCAL_PART, SignedReply, find_signed, sign, verify
from core.notify import notifications
from core.tickets.models import Ticket
from core.tickets.services import NewTicket, add_comment, open_ticket
from mailgw.parsing import ParsedMail, parse_message
from mailgw.process import run_process
from mailgw.server import start
from mailgw.thread_match import SIGNED, find_thread
from tests.conftest import TEST_SECRET_KEY, migrated_database
from tests.factories import World, at, build_world
from tests.mail_builders import blobs_fixture, build, deliver, ticket_of  # noqa: F401
from tests.smtp_sink import free_port

DOMAIN = "support.example"
NOW = at("2026-03-02 09:00")
KEY = "k" * 48


# --- The address ----------------------------------------------------------------------------


def test_sign_and_verify_round_trip() -> None:
    address = sign(KEY, "Support@Support.Example", 1042, 17)
    local, domain = address.split("@")
    assert domain == "support.example"
    assert local.startswith("support+1042.17.") and len(local) <= MAX_LOCAL_PART
    mac = local.rsplit(".", 1)[1]
    assert len(mac) * 5 >= 80 and set(mac) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert verify(KEY, address) == SignedReply("support@support.example", 1042, 17)
    assert verify(KEY, f"Support Desk <{address}>") == SignedReply(
        "support@support.example", 1042, 17
    )
    # The same ticket and person always get the same address; another person another one.
    assert sign(KEY, "support@support.example", 1042, 17) == address
    assert sign(KEY, "support@support.example", 1042, 18) != address


def test_a_case_folded_address_still_verifies() -> None:
    address = sign(KEY, "support@support.example", 1042, 17)
    assert verify(KEY, address.upper()) == SignedReply("support@support.example", 1042, 17)


def test_a_tampered_token_does_not_verify() -> None:
    address = sign(KEY, "support@support.example", 1042, 17)
    local, domain = address.split("@")
    mac = local.rsplit(".", 1)[1]
    flipped = ("b" if mac[0] == "a" else "a") + mac[1:]
    assert verify(KEY, f"support+1042.17.{flipped}@{domain}") is None
    assert verify(KEY, f"support+1042.18.{mac}@{domain}") is None  # another person
    assert verify(KEY, f"support+1042.17.{mac[:-1]}@{domain}") is None  # truncated
    assert verify(KEY, f"support+01042.17.{mac}@{domain}") is None  # no second spelling
    assert verify(KEY, f"support+1042.17.{mac}x@{domain}") is None


def test_a_token_for_another_ticket_does_not_verify_for_this_one() -> None:
    other = sign(KEY, "support@support.example", 1031, 17)
    mac = other.split("@")[0].rsplit(".", 1)[1]
    assert verify(KEY, f"support+1042.17.{mac}@support.example") is None
    assert verify(KEY, other) == SignedReply("support@support.example", 1031, 17)


def test_another_secret_does_not_verify() -> None:
    address = sign(KEY, "support@support.example", 1042, 17)
    assert verify("another key", address) is None
    assert verify("", address) is None


@pytest.mark.parametrize(
    "address",
    [
        "support@support.example",
        "support+1042@support.example",  # the plain plus-address: not signed
        "support+1042.17@support.example",
        "+1042.17.aaaaaaaaaaaaaaaaaaaa@support.example",
        "not an address",
        "",
    ],
)
def test_anything_else_is_not_a_signed_address(address: str) -> None:
    assert verify(KEY, address) is None


def test_find_signed_takes_the_first_valid_one() -> None:
    first = sign(KEY, "acme@support.example", 1042, 17)
    second = sign(KEY, "support@support.example", 1031, 18)
    found = find_signed(KEY, ["support+1042@support.example", first.upper(), second])
    assert found == SignedReply("acme@support.example", 1042, 17)
    assert find_signed(KEY, ["support@support.example"]) is None


@pytest.mark.parametrize(
    ("secret", "mailbox", "number", "user"),
    [
        ("", "support@support.example", 1042, 17),
        (KEY, "support+x@support.example", 1042, 17),
        (KEY, "no-at-sign", 1042, 17),
        (KEY, "support@support.example", 0, 17),
        (KEY, f"{'a' * 40}@support.example", 1042, 17),  # over 64 characters signed
    ],
)
def test_sign_refuses_what_cannot_be_a_signed_address(
    secret: str, mailbox: str, number: int, user: int
) -> None:
    with pytest.raises(ValueError):
        sign(secret, mailbox, number, user)


def test_a_plus_address_reaches_its_mailbox(session: Session, world: World) -> None:
    address = sign(KEY, "Acme@Support.Example", 1042, 17).upper()
    assert base_address(f"<{address}>") == "acme@support.example"
    box = mailbox_for(session, address)
    assert box is not None and box.contract is world.acme_contract
    assert mailbox_for(session, "nobody+1@support.example") is None


# --- Notifications ----------------------------------------------------------------------------


@pytest.fixture(name="world")
def world_fixture(session: Session) -> World:
    w = build_world(session)
    session.add_all(
        [
            Mailbox(address="acme@support.example", contract=w.acme_contract),
            Mailbox(address="pomoc@support.example", contract=None),
        ]
    )
    session.flush()
    session.info["notify"] = notifications.NotifyConfig(DOMAIN, "https://desk.example")
    return w


def _ticket(session: Session, world: World, who: str = "client") -> Ticket:
    contract = world.beta_contract if who == "beta" else world.acme_contract
    return open_ticket(
        session,
        NewTicket(subject="Drukarka", requester=world.users[who], contract=contract, at=NOW),
    )


def _mail_to(
    session: Session, to: str, template: str, ticket: Ticket | None = None
) -> OutboundMail:
    query = select(OutboundMail).where(
        OutboundMail.to_addr == to, OutboundMail.template == template
    )
    if ticket is not None:
        query = query.where(OutboundMail.ticket_id == ticket.id)
    [row] = session.scalars(query)
    return row


def test_each_recipient_gets_a_reply_address_of_their_own(session: Session, world: World) -> None:
    ticket = _ticket(session, world)
    ack = _mail_to(session, "anna@acme.example", "ticket_ack")
    new = _mail_to(session, "coord@support.example", "ticket_new")
    client, coordinator = world.users["client"], world.users["coordinator"]
    assert verify(TEST_SECRET_KEY, ack.headers["Reply-To"]) == SignedReply(
        "acme@support.example", ticket.number, client.id
    )
    assert verify(TEST_SECRET_KEY, new.headers["Reply-To"]) == SignedReply(
        "acme@support.example", ticket.number, coordinator.id
    )
    assert ack.headers["Reply-To"] != new.headers["Reply-To"]
    # A later mail to the same person in the same thread: the same address, the same From.
    add_comment(session, ticket, author=world.users["coordinator"], body="Toner.", at=NOW)
    comment = _mail_to(session, "anna@acme.example", "ticket_comment")
    assert comment.headers["Reply-To"] == ack.headers["Reply-To"]


def test_a_new_mail_to_a_plus_address_routes_to_its_mailbox(
    session: Session, world: World, blobs: BlobStore
) -> None:
    # A token that does not verify (an old key, a typo) threads nothing: a new ticket, routed
    # by the mailbox the plus-address reaches, and acknowledged from that mailbox.
    to = "acme+9999.1.aaaaaaaaaaaaaaaaaaaa@support.example"
    row = deliver(session, blobs, build(to=to), envelope_to=[to])
    ticket = ticket_of(session, row)
    assert ticket.contract is world.acme_contract
    ack = _mail_to(session, "anna@acme.example", "ticket_ack")
    signed = verify(TEST_SECRET_KEY, ack.headers["Reply-To"])
    assert signed is not None and signed.mailbox == "acme@support.example"


# --- find_thread: the order of threading sources ---------------------------------------------


def _parsed(**kw: str) -> ParsedMail:
    return parse_message(build(**kw), mail_domain=DOMAIN)


def test_a_signed_address_threads_without_tag_or_headers(session: Session, world: World) -> None:
    ticket = _ticket(session, world)
    reply_to = _mail_to(session, "anna@acme.example", "ticket_ack").headers["Reply-To"]
    match = find_thread(session, _parsed(subject="Odp: drukarka", to=reply_to))
    assert (
        match is not None
        and match.ticket is ticket
        and match.how == SIGNED == "signed reply address"
    )
    assert match.signed == SignedReply(
        "acme@support.example", ticket.number, world.users["client"].id
    )
    # Only in the envelope (the To was rewritten): found among the recipients given.
    plain = _parsed(subject="Odp: drukarka", to="acme@support.example")
    assert find_thread(session, plain) is None
    match = find_thread(session, plain, recipients=[reply_to])
    assert match is not None and match.ticket is ticket and match.signed is not None


def test_a_signed_address_beats_tags_and_headers(session: Session, world: World) -> None:
    ticket, other = _ticket(session, world), _ticket(session, world)
    reply_to = _mail_to(session, "anna@acme.example", "ticket_ack", ticket).headers["Reply-To"]
    theirs = session.scalars(
        select(OutboundMail.message_id).where(OutboundMail.ticket_id == other.id)
    ).first()
    assert theirs is not None
    mail = _parsed(subject=f"Re: [#{other.number}]", to=reply_to, In_Reply_To=theirs)
    match = find_thread(session, mail)
    assert match is not None and match.ticket is ticket and match.how == SIGNED


def test_without_a_secret_a_signed_address_threads_nothing(session: Session, world: World) -> None:
    _ticket(session, world)
    reply_to = _mail_to(session, "anna@acme.example", "ticket_ack").headers["Reply-To"]
    mail = _parsed(subject="Odp: drukarka", to=reply_to)
    assert find_thread(session, mail, secret="another key") is None
    session.info.pop(SECRET_KEY_INFO)
    assert find_thread(session, mail) is None
    assert find_thread(session, mail, secret=TEST_SECRET_KEY) is not None


@pytest.mark.parametrize("order", ["own first", "other first"])
def test_of_two_tags_the_one_the_sender_may_write_into_wins(
    session: Session, world: World, order: str
) -> None:
    own, foreign = _ticket(session, world), _ticket(session, world, "beta")
    first, second = (own, foreign) if order == "own first" else (foreign, own)
    mail = _parsed(subject=f"Re: [#{first.number}] Drukarka [#{second.number}]")
    anna = world.users["client"]
    match = find_thread(session, mail, sender=anna)
    assert match is not None and match.ticket is own and match.how == "subject tag"
    # Without a sender, the first tag, as before.
    match = find_thread(session, mail)
    assert match is not None and match.ticket is first
    # A sender allowed on neither: the first tag (the caller says why it is refused).
    match = find_thread(session, mail, sender=world.users["subcontractor"])
    assert match is not None and match.ticket is first


@pytest.mark.parametrize("header", ["In_Reply_To", "References"])
def test_our_own_message_id_beats_the_subject_tag(
    session: Session, world: World, header: str
) -> None:
    ticket, tagged = _ticket(session, world), _ticket(session, world)
    ours = session.scalars(
        select(OutboundMail.message_id).where(OutboundMail.ticket_id == ticket.id)
    ).first()
    assert ours is not None
    mail = _parsed(subject=f"Re: [#{tagged.number}]", **{header: ours})
    match = find_thread(session, mail)
    how = header.replace("_", "-")
    assert (
        match is not None
        and match.ticket is ticket
        and (match.how, match.message_id)
        == (
            how,
            ours,
        )
    )


def test_a_stored_client_message_id_does_not_beat_the_tag(
    session: Session, world: World, blobs: BlobStore
) -> None:
    # The client's own earlier mail is on the timeline, not an outbound mail of ours: the tag
    # decides, and the stored id only threads a mail without one.
    first = ticket_of(session, deliver(session, blobs, build(message_id="<c1@acme.example>")))
    tagged = _ticket(session, world)
    match = find_thread(
        session, _parsed(subject=f"Re: [#{tagged.number}]", In_Reply_To="<c1@acme.example>")
    )
    assert match is not None and match.ticket is tagged and match.how == "subject tag"
    match = find_thread(session, _parsed(subject="Re: drukarka", In_Reply_To="<c1@acme.example>"))
    assert match is not None and match.ticket is first and match.how == "In-Reply-To"


# --- Through the real SMTP gateway ------------------------------------------------------------


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated SQLite database whose sessions carry the test secret key (conftest)."""
    with migrated_database("sqlite", tmp_path) as made:
        notifications.configure(made, notifications.NotifyConfig(DOMAIN, "https://desk.example"))
        yield made


def test_a_reply_to_the_signed_address_through_smtp_threads_into_the_ticket(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with unit_of_work(factory) as session:
        world = build_world(session)
        session.add(Mailbox(address="acme@support.example", contract=world.acme_contract))
        session.flush()
        ticket = _ticket(session, world)
        number = ticket.number
        reply_to = _mail_to(session, "anna@acme.example", "ticket_ack").headers["Reply-To"]
    settings = Settings(data_dir=tmp_path / "var", smtp_port=free_port())
    blobs = DirectoryBlobStore(settings.blob_dir)
    handle = start(settings, factory, blobs=blobs)
    try:
        # A mail program that dropped the subject tag and In-Reply-To: only the address is left.
        msg = EmailMessage()
        msg["From"] = "Anna <anna@acme.example>"
        msg["To"] = reply_to
        msg["Subject"] = "Odp: drukarka"
        msg["Message-ID"] = make_msgid(domain="acme.example")
        msg.set_content("Nadal nie drukuje.")
        with smtplib.SMTP("127.0.0.1", handle.port, timeout=10) as smtp:
            refused = smtp.sendmail("anna@acme.example", [reply_to.upper()], msg.as_bytes())
        assert refused == {}  # a plus-address of a mailbox: accepted at RCPT
    finally:
        handle.stop()
    with factory() as session:
        [row] = session.scalars(select(InboundMessage))
        inbound_id = row.id
        assert row.envelope_to == [reply_to.upper()]
    state = run_process(
        factory, inbound_id, blobs=blobs, mail_domain=DOMAIN, clock=lambda: NOW + timedelta(hours=1)
    )
    assert state == "processed"
    with factory() as session:
        row = session.get_one(InboundMessage, inbound_id)
        found = session.get_one(Ticket, row.ticket_id)
        assert found.number == number
        thread = [d for d in row.decisions if d["rule"] == "thread"][-1]
        assert thread["result"] == number and SIGNED in thread["why"]
