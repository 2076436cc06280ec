"""Ticket notifications (core.notify.notifications): who is mailed, in which language, with which headers.

Mostly asserted on the outbox rows the ticket services queue; one test goes end to end through
the ``mail.send`` body to the aiosmtpd sink. The session carries a ``NotifyConfig`` as the entry
points' sessions do.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import BlobStore, DirectoryBlobStore
from core.db import SECRET_KEY_INFO
from core.mail.models import Mailbox, OutboundMail
from core.mail.reply_address import SignedReply, verify
from core.notify import notifications
from core.tickets.models import Ticket
from core.tickets.services import NewTicket, add_comment, assign, change_status, open_ticket
from mailgw.outbound import render
from tests.conftest import TEST_SECRET_KEY
from tests.factories import World, at, build_world
from tests.mail_builders import build, deliver
from tests.smtp_sink import SmtpSink, smtp_sink_fixture  # noqa: F401
from workers.actors import send_outbound_mail

DOMAIN = "support.example"
NOW = at("2026-03-02 09:00")


@pytest.fixture
def world(session: Session) -> World:
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


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return DirectoryBlobStore(tmp_path / "blobs")


def mails(session: Session, template: str | None = None) -> list[OutboundMail]:
    stmt = select(OutboundMail).order_by(OutboundMail.id)
    if template:
        stmt = stmt.where(OutboundMail.template == template)
    return list(session.scalars(stmt))


def web_ticket(session: Session, world: World) -> Ticket:
    return open_ticket(
        session,
        NewTicket(
            subject="Drukarka nie drukuje",
            requester=world.users["client"],
            contract=world.acme_contract,
            at=NOW,
        ),
    )


def test_a_ticket_by_mail_is_acknowledged_in_the_clients_thread(
    session: Session, world: World, blobs: BlobStore
) -> None:
    raw = build(message_id="<orig-1@client.example>", to="acme@support.example")
    deliver(session, blobs, raw, envelope_to=["acme@support.example"])
    [ack] = mails(session, "ticket_ack")
    assert ack.to_addr == "anna@acme.example" and ack.language == "pl"
    assert ack.headers["Auto-Submitted"] == "auto-replied"
    assert ack.headers["In-Reply-To"] == "<orig-1@client.example>"
    assert ack.headers["References"] == "<orig-1@client.example>"
    # The mailbox it came in on, signed for this ticket and this client (docs/mail.md).
    client = world.users["client"]
    assert verify(TEST_SECRET_KEY, ack.headers["Reply-To"]) == SignedReply(
        "acme@support.example", ack.context["ticket_number"], client.id
    )
    assert ack.context["url"].startswith("https://desk.example/tickets/")
    assert ack.context["reaction_due"] and ack.context["timezone"] == "Europe/Warsaw"
    # The coordinator hears of the new ticket; nobody mails the client twice.
    assert [m.to_addr for m in mails(session, "ticket_new")] == ["coord@support.example"]


@pytest.mark.parametrize(
    "headers",
    [{"Precedence": "list", "List_Id": "<x.lists.example>"}, {"Auto_Submitted": "auto-replied"}],
)
def test_list_mail_and_auto_replies_get_no_acknowledgement(
    session: Session, world: World, blobs: BlobStore, headers: dict[str, str]
) -> None:
    deliver(session, blobs, build(**headers))
    assert mails(session, "ticket_ack") == []


def test_a_bouncing_requester_is_not_mailed(session: Session, world: World) -> None:
    world.users["client"].mail_bouncing_since = NOW
    web_ticket(session, world)
    assert mails(session, "ticket_ack") == []


def test_a_public_staff_comment_mails_the_requester_and_a_note_does_not(
    session: Session, world: World
) -> None:
    ticket = web_ticket(session, world)
    tech = world.users["technician"]
    assign(session, ticket, actor=world.users["coordinator"], assignee=tech, subcontractor=None)
    add_comment(session, ticket, author=tech, body="Internal only", public=False, at=NOW)
    assert mails(session, "ticket_comment") == []
    add_comment(session, ticket, author=tech, body="Wymieniłem toner.", at=NOW)
    [comment] = mails(session, "ticket_comment")
    assert comment.to_addr == "anna@acme.example"
    assert "Auto-Submitted" not in comment.headers  # a person wrote it: the client may answer
    [ack] = mails(session, "ticket_ack")
    # Threaded under our earlier mail to the same person.
    assert comment.headers["In-Reply-To"] == ack.message_id
    assert comment.context["body"] == "Wymieniłem toner."


def test_a_visible_status_change_mails_the_requester_and_a_hidden_one_does_not(
    session: Session, world: World
) -> None:
    ticket = web_ticket(session, world)
    coord = world.users["coordinator"]
    change_status(session, ticket, "Internal review", actor=coord, at=NOW)
    assert mails(session, "ticket_status") == []
    change_status(session, ticket, "In progress", actor=coord, at=NOW)
    [status] = mails(session, "ticket_status")
    assert status.to_addr == "anna@acme.example"
    assert status.context["new_status"] == "In progress"
    assert status.headers["Auto-Submitted"] == "auto-generated"


def test_assignment_mails_the_assignee_but_not_someone_assigning_themselves(
    session: Session, world: World
) -> None:
    ticket = web_ticket(session, world)
    tech2 = world.users["technician2"]
    tech2.language = "en"
    coord = world.users["coordinator"]
    assign(session, ticket, actor=coord, assignee=coord, subcontractor=None)
    assert mails(session, "ticket_assigned") == []
    assign(session, ticket, actor=coord, assignee=tech2, subcontractor=None)
    [mail] = mails(session, "ticket_assigned")
    assert mail.to_addr == "tech2@support.example" and mail.language == "en"


def test_assignment_to_a_subcontractor_mails_its_users(session: Session, world: World) -> None:
    ticket = web_ticket(session, world)
    assign(
        session, ticket, actor=world.users["coordinator"], assignee=None, subcontractor=world.fixit
    )
    assert [m.to_addr for m in mails(session, "ticket_assigned")] == ["sub@fixit.example"]


def test_a_clients_reply_by_mail_mails_the_assignee(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = deliver(session, blobs, build())
    ticket = session.get(Ticket, row.ticket_id)
    assert ticket is not None
    assign(
        session,
        ticket,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=None,
    )
    later = NOW + timedelta(minutes=5)
    deliver(
        session,
        blobs,
        build(subject=f"Re: Drukarka [#{ticket.number}]", body="Nadal nic."),
        now=later,
    )
    [reply] = mails(session, "ticket_reply")
    assert reply.to_addr == "tech@support.example"
    assert "Nadal nic." in reply.context["body"]


def test_loop_protection_caps_automatic_mails_at_five_per_ten_minutes(
    session: Session, world: World
) -> None:
    for n in range(7):
        open_ticket(
            session,
            NewTicket(
                subject=f"Awaria {n}",
                requester=world.users["client"],
                contract=world.acme_contract,
                at=NOW + timedelta(seconds=n),
            ),
        )
    assert len(mails(session, "ticket_ack")) == notifications.LOOP_LIMIT
    # After the window, mail flows again.
    open_ticket(
        session,
        NewTicket(
            subject="Awaria later",
            requester=world.users["client"],
            contract=world.acme_contract,
            at=NOW + notifications.LOOP_WINDOW + timedelta(minutes=1),
        ),
    )
    assert len(mails(session, "ticket_ack")) == notifications.LOOP_LIMIT + 1


def test_loop_protection_counts_only_automatic_mails_and_only_the_window(
    session: Session, world: World
) -> None:
    """Mail a person wrote to the client (no Auto-Submitted) never counts, however much; and
    automatic mails count only inside the window, however many came before it."""
    from core.mail.outbox import queue_mail

    client = world.users["client"]
    long_ago = NOW - notifications.LOOP_WINDOW - timedelta(minutes=5)
    for n in range(notifications.LOOP_LIMIT + 3):
        for auto_submitted, at_ in [
            ("auto-generated", long_ago + timedelta(seconds=n)),  # automatic, before the window
            (None, NOW - timedelta(minutes=1, seconds=n)),  # in the window, by a person
        ]:
            queue_mail(
                session,
                template="test_mail",
                to=client.email,
                context={"url": "x"},
                mail_domain="support.example",
                auto_submitted=auto_submitted,
                now=at_,
            )
    open_ticket(
        session,
        NewTicket(subject="Awaria", requester=client, contract=world.acme_contract, at=NOW),
    )
    assert len(mails(session, "ticket_ack")) == 1


def test_staff_are_not_capped_by_loop_protection(session: Session, world: World) -> None:
    """Under make run a burst of SLA warnings used up the coordinator's five, and the
    next new-ticket mail was dropped; the cap is for outside autoresponders."""
    for n in range(7):
        open_ticket(
            session,
            NewTicket(
                subject=f"Awaria {n}",
                requester=world.users["client"],
                contract=world.acme_contract,
                at=NOW + timedelta(seconds=n),
            ),
        )
    to_coordinator = [
        m for m in mails(session, "ticket_new") if m.to_addr == "coord@support.example"
    ]
    assert len(to_coordinator) == 7


def test_without_a_secret_key_the_reply_to_is_the_plain_mailbox(
    session: Session, world: World
) -> None:
    session.info.pop(SECRET_KEY_INFO)
    web_ticket(session, world)
    [ack] = mails(session, "ticket_ack")
    assert ack.headers["Reply-To"] == "acme@support.example"


def test_no_config_on_the_session_means_no_notifications(session: Session, world: World) -> None:
    session.info.pop("notify")
    web_ticket(session, world)
    assert mails(session) == []


@pytest.mark.parametrize("language", ["pl", "en"])
def test_every_queued_notification_renders(session: Session, world: World, language: str) -> None:
    world.users["client"].language = language
    ticket = web_ticket(session, world)
    tech = world.users["technician"]
    assign(session, ticket, actor=world.users["coordinator"], assignee=tech, subcontractor=None)
    add_comment(session, ticket, author=tech, body="Toner.", at=NOW)
    add_comment(session, ticket, author=world.users["client"], body="Dzięki", at=NOW)
    change_status(session, ticket, "Resolved", actor=tech, at=NOW)
    rows = mails(session)
    assert {r.template for r in rows} >= {
        "ticket_ack",
        "ticket_new",
        "ticket_assigned",
        "ticket_comment",
        "ticket_reply",
        "ticket_status",
    }
    for row in rows:
        mail = render(row.template, row.language, row.context)
        assert mail.subject.endswith(f"[#{ticket.number}]") and row.context["url"] in mail.text


def test_the_acknowledgement_reaches_the_smtp_sink_threaded(
    session: Session, world: World, blobs: BlobStore, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    deliver(session, blobs, build(message_id="<orig-9@client.example>"))
    [ack] = mails(session, "ticket_ack")
    session.commit()
    factory = sessionmaker(bind=session.connection(), join_transaction_mode="create_savepoint")
    settings = Settings(
        outbound_smtp_url=smtp_sink.url, public_url="https://desk.example", data_dir=tmp_path
    )
    assert send_outbound_mail(factory, settings, ack.id, clock=lambda: NOW, batch=1) == "sent"
    [received] = smtp_sink.wait_for(1)
    msg = received.message
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Auto-Response-Suppress"] == "All"
    assert msg["In-Reply-To"] == "<orig-9@client.example>"
    assert msg["Message-ID"] == ack.message_id
    assert msg["Subject"].endswith(f"[#{ack.context['ticket_number']}]")
    signed = verify(TEST_SECRET_KEY, msg["Reply-To"])
    assert signed is not None and signed.mailbox == "pomoc@support.example"
    assert msg["Reply-To"].startswith(f"pomoc+{ack.context['ticket_number']}.")
