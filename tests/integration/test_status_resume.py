"""A client's reply ends a pause that waits for the client, so the SLA clock runs again
(docs/sla.md, "The client's reply"): by mail and in the portal, configurable per status."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.blobs import BlobStore
from core.configuration import apply_config_text, export_config
from core.contracts.models import Status
from core.tickets import services as svc
from core.tickets.models import Ticket, TicketEvent
from tests.e2e.conftest import build_seeded_app, console_client
from tests.factories import World, at
from tests.mail_builders import (  # noqa: F401
    NOW,
    blobs_fixture,
    build,
    deliver,
    event_of,
    opened,
    ticket_of,
    world_fixture,
)


def paused(session: Session, world: World, blobs: BlobStore, before: str = "In progress") -> Ticket:
    """A ticket of ACME-2026 opened by Anna's mail on Monday 10:00 Warsaw, moved to ``before``
    at 10:30 and to Waiting for client at 11:00."""
    ticket, _ = opened(session, blobs)
    assert ticket.contract is world.acme_contract
    coordinator = world.users["coordinator"]
    svc.change_status(session, ticket, before, actor=coordinator, at=NOW + timedelta(minutes=30))
    svc.change_status(
        session, ticket, "Waiting for client", actor=coordinator, at=NOW + timedelta(hours=1)
    )
    assert ticket.sla_paused and ticket.sla_next_check is None
    return ticket


def last_status_change(ticket: Ticket) -> TicketEvent:
    return [e for e in ticket.events if e.type == "status"][-1]


def test_a_clients_mail_reply_resumes_the_ticket_and_its_clock(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket = paused(session, world, blobs)
    reply_at = NOW + timedelta(hours=3)  # 13:00 Warsaw: paused for 2 business hours
    row = deliver(session, blobs, build(subject=f"Re: Drukarka [#{ticket.number}]"), now=reply_at)
    assert ticket_of(session, row) is ticket
    reply = event_of(session, row)
    assert ticket.status.name == "In progress" and ticket.status_category == "open"
    assert not ticket.sla_paused
    # 8h from Mon 10:00 on 08:00-16:00 is Tue 10:00 Warsaw; the 2h pause moves it to 12:00.
    assert ticket.resolution_due == at("2026-03-03 11:00")
    assert ticket.sla_next_check is not None  # the clock runs: the scheduler watches it again
    change = last_status_change(ticket)
    assert change.author is world.users["client"] and change.at == reply_at and change.public
    assert change.data["from"] == "Waiting for client" and change.data["to"] == "In progress"
    assert change.data["reason"] == "client_reply" and change.data["reply_event"] == reply.id
    assert [e.type for e in ticket.events][-2:] == ["email_in", "status"]


def test_it_goes_back_to_the_status_it_had_before_the_pause(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket = paused(session, world, blobs, before="Internal review")
    # A colleague of the requester answering in the portal is a client's reply too.
    svc.add_comment(
        session,
        ticket,
        author=world.users["manager"],
        body="Sprawdziliśmy, nadal nie działa.",
        at=NOW + timedelta(hours=2),
    )
    assert ticket.status.name == "Internal review" and not ticket.sla_paused
    assert last_status_change(ticket).author is world.users["manager"]


def test_without_a_valid_previous_status_it_takes_the_first_open_one(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    svc.change_status(
        session, ticket, "Waiting for client", actor=world.users["coordinator"], at=NOW
    )  # straight from New: going back to New would look unhandled
    svc.add_comment(session, ticket, author=world.users["client"], body="Już", at=NOW)
    assert ticket.status.name == "In progress"


def test_staff_replies_and_notes_do_not_resume(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket = paused(session, world, blobs)
    later = NOW + timedelta(hours=2)
    coordinator = world.users["coordinator"]
    svc.add_comment(session, ticket, author=coordinator, body="Czekamy na Państwa.", at=later)
    svc.add_comment(session, ticket, author=coordinator, body="notatka", public=False, at=later)
    svc.record_email(session, ticket, author=coordinator, body="Re", public=True, at=later)
    svc.assign(
        session, ticket, actor=coordinator, assignee=None, subcontractor=world.fixit, at=later
    )
    svc.add_comment(session, ticket, author=world.users["subcontractor"], body="Ok", at=later)
    # A client's mail kept as an internal note (an auto-reply, unverified mail) does not act.
    svc.record_email(
        session, ticket, author=world.users["client"], body="x", public=False, at=later
    )
    assert ticket.status.name == "Waiting for client" and ticket.sla_paused
    assert last_status_change(ticket).data["to"] == "Waiting for client"


def test_resume_on_client_reply_false_keeps_the_ticket_paused(
    session: Session, world: World, blobs: BlobStore
) -> None:
    text = """\
contracts:
  - code: ACME-2026
    statuses:
      - {name: Waiting for client, resume_on_client_reply: false}
"""
    assert "statuses: 1 updated" in str(apply_config_text(session, text, now=NOW))
    assert "resume_on_client_reply: false" in export_config(session)
    ticket = paused(session, world, blobs)
    deliver(session, blobs, build(subject=f"Re: [#{ticket.number}]"), now=NOW + timedelta(hours=3))
    assert ticket.status.name == "Waiting for client" and ticket.sla_paused


def test_a_pause_hidden_from_clients_does_not_resume_by_default(
    session: Session, world: World, blobs: BlobStore
) -> None:
    text = """\
contracts:
  - code: ACME-2026
    statuses:
      - {name: Waiting for client}
      - {name: Waiting for parts, category: paused, visible_to_client: false}
"""
    apply_config_text(session, text, now=NOW)
    parts = session.scalar(select(Status).where(Status.name == "Waiting for parts"))
    assert parts is not None and parts.resume_on_client_reply is None
    assert not parts.resumes_on_client_reply
    ticket, _ = opened(session, blobs)
    svc.change_status(
        session, ticket, "Waiting for parts", actor=world.users["coordinator"], at=NOW
    )
    svc.add_comment(session, ticket, author=world.users["client"], body="Kiedy?", at=NOW)
    assert ticket.status.name == "Waiting for parts" and ticket.sla_paused


def test_a_clients_portal_reply_resumes_the_ticket(tmp_path: Path) -> None:
    instance = build_seeded_app(tmp_path)
    number = instance.numbers["beta_waiting"]  # Ewa's ticket, Waiting for client
    client, csrf = console_client(instance.app, instance.users["beta"])
    form: dict[str, Any] = {
        "files": [("csrf_token", (None, csrf)), ("body", (None, "Laptop dla p. Nowickiej."))]
    }
    r = client.post(f"/tickets/{number}/comment", **form, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    with instance.factory() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        assert ticket.status.name == "In progress" and not ticket.sla_paused
        change = [e for e in ticket.events if e.type == "status"][-1]
        assert change.author is not None and change.author.email == instance.users["beta"]
        assert change.data["reason"] == "client_reply"
