"""A mail about a ticket that fails for good is mailed to staff (core.notify.delivery_failures).

A fresh migrated SQLite database per test, so the worker's units of work commit for real; the
``mail.send`` body (``send_outbound_mail``) talks to the aiosmtpd sink, which refuses the
client's address with 550. No dispatcher is installed: each test sends the rows itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.db import make_engine, make_session_factory, unit_of_work, upgrade
from core.directory.models import User
from core.mail.models import Mailbox, OutboundMail
from core.mail.outbox import mark_retry, queue_mail
from core.notify import notifications
from core.notify.delivery_failures import tell_staff
from core.notify.preferences import set_preferences
from core.tickets.models import Ticket
from core.tickets.services import NewTicket, assign, open_ticket
from tests.factories import at, build_world
from tests.smtp_sink import SmtpSink, smtp_sink_fixture  # noqa: F401
from workers.actors import send_outbound_mail

DOMAIN = "support.example"
NOW = at("2026-03-02 09:00")


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'failures.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    assert notifications.configure(
        factory, notifications.NotifyConfig(DOMAIN, "https://desk.example")
    )
    with unit_of_work(factory) as session:
        world = build_world(session)
        session.add(Mailbox(address="acme@support.example", contract=world.acme_contract))
        world.users["coordinator"].language = "en"
        open_ticket(
            session,
            NewTicket(
                subject="Drukarka nie drukuje",
                requester=world.users["client"],
                contract=world.acme_contract,
                at=NOW,
            ),
        )
    try:
        yield factory
    finally:
        engine.dispose()


@pytest.fixture
def settings(smtp_sink: SmtpSink, tmp_path: Path) -> Settings:
    return Settings(
        outbound_smtp_url=smtp_sink.url, public_url="https://desk.example", data_dir=tmp_path
    )


def rows(factory: sessionmaker[Session], template: str) -> list[OutboundMail]:
    with factory() as session:
        return list(
            session.scalars(
                select(OutboundMail)
                .where(OutboundMail.template == template)
                .order_by(OutboundMail.id)
            )
        )


def send(factory: sessionmaker[Session], settings: Settings, row: OutboundMail) -> str:
    return send_outbound_mail(factory, settings, row.id, clock=lambda: NOW, batch=1)


def test_a_refused_acknowledgement_is_mailed_to_the_coordinator_in_their_language(
    factory: sessionmaker[Session], settings: Settings, smtp_sink: SmtpSink
) -> None:
    [ack] = rows(factory, "ticket_ack")
    smtp_sink.refuse(550, times=1)
    assert send(factory, settings, ack) == "failed"
    assert smtp_sink.messages == []

    # Queued in the same unit of work that marked the row failed.
    [notice] = rows(factory, "delivery_failed")
    assert notice.to_addr == "coord@support.example" and notice.language == "en"
    assert notice.ticket_id == ack.ticket_id and notice.state == "pending"
    assert notice.context["failed_to"] == "anna@acme.example"
    assert "550" in notice.context["error"]
    assert notice.context["failed_subject"].startswith("Otrzymali")  # the ack, in Polish

    assert send(factory, settings, notice) == "sent"
    [received] = smtp_sink.wait_for(1)
    msg = received.message
    number = ack.context["ticket_number"]
    assert received.rcpt_tos == ("coord@support.example",)
    assert msg["Auto-Submitted"] == "auto-generated" and msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Content-Language"] == "en"
    assert msg["Subject"] == f"Undelivered mail to anna@acme.example [#{number}]"
    text = msg.get_body(("plain",)).get_content()
    assert "could not be delivered to anna@acme.example" in text
    assert "550 5.1.1" in text and f"https://desk.example/tickets/{number}" in text
    assert msg.get_body(("html",)) is not None


def test_a_polish_assignee_is_told_and_the_coordinator_is_not(
    factory: sessionmaker[Session], settings: Settings, smtp_sink: SmtpSink
) -> None:
    with unit_of_work(factory) as session:
        ticket = session.scalars(select(Ticket)).one()
        users = {u.email: u for u in session.scalars(select(User))}
        assign(
            session,
            ticket,
            actor=users["coord@support.example"],
            assignee=users["tech@support.example"],
            subcontractor=None,
        )
    [ack] = rows(factory, "ticket_ack")
    smtp_sink.refuse(550, times=1)
    assert send(factory, settings, ack) == "failed"
    [notice] = rows(factory, "delivery_failed")
    assert notice.to_addr == "tech@support.example" and notice.language == "pl"
    assert send(factory, settings, notice) == "sent"
    msg = smtp_sink.wait_for(1)[0].message
    assert msg["Subject"].startswith("Niedoręczony mail do anna@acme.example [#")
    assert "Nie udało się doręczyć" in msg.get_body(("plain",)).get_content()


def test_a_failing_notice_creates_no_further_notice(
    factory: sessionmaker[Session], settings: Settings, smtp_sink: SmtpSink
) -> None:
    [ack] = rows(factory, "ticket_ack")
    smtp_sink.refuse(550)
    assert send(factory, settings, ack) == "failed"
    [notice] = rows(factory, "delivery_failed")
    assert send(factory, settings, notice) == "failed"
    assert [r.state for r in rows(factory, "delivery_failed")] == ["failed"]
    # Nor does the coordinator's own ticket_new failing tell the coordinator (the address
    # that failed) or anybody else on a contract with one coordinator.
    [new] = rows(factory, "ticket_new")
    assert send(factory, settings, new) == "failed"
    assert len(rows(factory, "delivery_failed")) == 1
    assert smtp_sink.messages == []


def test_giving_up_after_the_retries_tells_staff_too(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        ack = session.scalars(
            select(OutboundMail).where(OutboundMail.template == "ticket_ack")
        ).one()
        ack.attempts = 10
        gave_up = mark_retry(ack, "451 4.3.0 Try again later", NOW)
        assert gave_up is not None and ack.state == "failed"
        tell_staff(session, gave_up)
    [notice] = rows(factory, "delivery_failed")
    assert "gave up after 10 attempts" in notice.context["error"]
    assert notice.context["failed_subject"] is None


def test_preferences_and_mails_without_a_ticket(
    factory: sessionmaker[Session], settings: Settings, smtp_sink: SmtpSink
) -> None:
    with unit_of_work(factory) as session:
        coordinator = session.scalars(select(User).where(User.role == "coordinator")).one()
        set_preferences(session, coordinator, events={"delivery_failed": False})
        # A login alert is about no ticket: its failure stays on the row and in the log.
        queue_mail(
            session,
            template="test_mail",
            to="anna@acme.example",
            context={"url": "https://desk.example"},
            mail_domain=DOMAIN,
            now=NOW,
        )
    smtp_sink.refuse(550)
    for row in [*rows(factory, "ticket_ack"), *rows(factory, "test_mail")]:
        assert send(factory, settings, row) == "failed"
    assert rows(factory, "delivery_failed") == []
