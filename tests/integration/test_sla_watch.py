"""The SLA watcher on a real database: claims, warnings, breaches, no doubles, no skips."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.mail.models import Mailbox, OutboundMail
from core.mail.reply_address import verify
from core.sla import watch as sla_watch
from core.tickets import services as svc
from core.tickets.models import Ticket, TicketEvent
from tests.conftest import TEST_SECRET_KEY
from tests.factories import World, at, build_world

MON_0900 = at("2026-11-23 08:00")  # Mon 09:00 Warsaw; failure: reaction 2h, resolution 8h


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


@pytest.fixture
def ticket(session: Session, world: World) -> Ticket:
    t = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Awaria",
            requester=world.users["client"],
            contract=world.acme_contract,
            at=MON_0900,
        ),
    )
    svc.assign(
        session,
        t,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=None,
        at=MON_0900,
    )
    session.flush()
    return t


def check(session: Session, ticket: Ticket, when: str) -> list[TicketEvent]:
    return sla_watch.check_ticket(
        session, ticket.id, at(when), mail_domain="desk.example", public_url="https://desk.example"
    )


def sla_events(ticket: Ticket) -> list[tuple[str, str]]:
    return [(e.data["clock"], e.data["kind"]) for e in ticket.events if e.type == "sla"]


def test_nothing_is_due_before_the_warning(session: Session, ticket: Ticket) -> None:
    assert sla_watch.claim_due(session, at("2026-11-23 09:30")) == []
    assert check(session, ticket, "2026-11-23 09:30") == []


def test_claim_takes_due_tickets_and_leases_them(session: Session, ticket: Ticket) -> None:
    now = at("2026-11-23 09:40")
    assert sla_watch.claim_due(session, now) == [ticket.id]
    session.refresh(ticket)
    assert ticket.sla_next_check == now + sla_watch.LEASE
    assert sla_watch.claim_due(session, now) == []  # leased: a second scheduler gets nothing


def test_warning_at_80_percent_then_breach(session: Session, ticket: Ticket, world: World) -> None:
    events = check(session, ticket, "2026-11-23 09:40")  # 1h40m of 2h used
    assert [(e.data["clock"], e.data["kind"]) for e in events] == [("reaction", "warning")]
    assert events[0].at == at("2026-11-23 09:36")
    assert ticket.sla_next_check == at("2026-11-23 10:00")
    events = check(session, ticket, "2026-11-23 10:00")
    assert [(e.data["clock"], e.data["kind"]) for e in events] == [("reaction", "breach")]
    assert ticket.ever_breached
    mails = session.scalars(select(OutboundMail).order_by(OutboundMail.id)).all()
    recipients = {(m.template, m.to_addr) for m in mails}
    assert ("sla_warning", "tech@support.example") in recipients
    assert ("sla_breach", "coord@support.example") in recipients
    assert all(m.ticket_id == ticket.id for m in mails)


def test_checking_twice_records_and_mails_once(session: Session, ticket: Ticket) -> None:
    check(session, ticket, "2026-11-23 10:05")
    first = session.scalars(select(OutboundMail.id)).all()
    assert check(session, ticket, "2026-11-23 10:05") == []
    assert session.scalars(select(OutboundMail.id)).all() == first
    assert sla_events(ticket) == [("reaction", "breach")]


def test_a_late_scheduler_sends_the_breach_not_a_stale_warning(
    session: Session, ticket: Ticket
) -> None:
    events = check(session, ticket, "2026-11-23 12:00")
    assert [(e.data["clock"], e.data["kind"]) for e in events] == [("reaction", "breach")]
    assert events[0].at == at("2026-11-23 10:00")  # dated when it was reached


def test_paused_tickets_are_not_warned(session: Session, ticket: Ticket, world: World) -> None:
    svc.add_comment(
        session, ticket, author=world.users["technician"], body="Jadę", at=at("2026-11-23 08:30")
    )
    svc.change_status(
        session,
        ticket,
        "Waiting for client",
        actor=world.users["technician"],
        at=at("2026-11-23 09:00"),
    )
    assert ticket.sla_next_check is None
    assert check(session, ticket, "2026-11-30 09:00") == []


def test_a_met_reaction_moves_the_next_check_to_resolution(
    session: Session, ticket: Ticket, world: World
) -> None:
    svc.add_comment(
        session, ticket, author=world.users["technician"], body="Jadę", at=at("2026-11-23 08:30")
    )
    # 80% of 8h resolution = 6h24m business from Mon 09:00 Warsaw = Mon 15:24 Warsaw.
    assert ticket.sla_next_check == at("2026-11-23 14:24")


def test_a_new_deadline_after_retyping_is_warned_again(
    session: Session, ticket: Ticket, world: World
) -> None:
    check(session, ticket, "2026-11-23 09:40")
    svc.change_type(
        session, ticket, "inspection", actor=world.users["coordinator"], at=at("2026-11-23 09:45")
    )
    # inspection: reaction 1d = 8h; 80% = 6h24m from Mon 09:00 Warsaw = Mon 15:24.
    assert ticket.sla_next_check == at("2026-11-23 14:24")
    events = check(session, ticket, "2026-11-23 14:30")
    assert [(e.data["clock"], e.data["kind"]) for e in events] == [("reaction", "warning")]


def test_a_breach_noticed_without_a_warning_is_not_claimed_again(
    session: Session, ticket: Ticket
) -> None:
    """A late scheduler records only the breach; the skipped warning must not leave the
    ticket due forever (it was re-claimed on every tick under make run)."""
    check(session, ticket, "2026-11-23 12:00")
    assert ticket.sla_next_check == at("2026-11-23 14:24")  # the resolution warning
    assert sla_watch.claim_due(session, at("2026-11-23 12:05")) == []


def test_sla_mail_carries_a_reply_address_signed_for_its_recipient(
    session: Session, ticket: Ticket, world: World
) -> None:
    """A technician answering a breach notice is proven by its Reply-To (docs/mail.md)."""
    session.add(Mailbox(address="pomoc@support.example"))
    session.flush()
    check(session, ticket, "2026-11-23 10:00")
    mails = session.scalars(select(OutboundMail)).all()
    assert mails
    ids = {u.email: u.id for u in world.users.values()}
    for mail in mails:
        signed = verify(TEST_SECRET_KEY, mail.headers["Reply-To"])
        assert signed is not None and signed.user_id == ids[mail.to_addr]
        assert signed.ticket_number == ticket.number
