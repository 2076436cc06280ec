"""Merging tickets and splitting a mail out (core.tickets.merge), on SQLite and PostgreSQL:
what moves, what stays, who may, what is refused, and where later mail lands."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import create_api_token
from core.blobs import BlobStore
from core.errors import Conflict, Forbidden, InputError, NotFound
from core.mail.models import InboundMessage, OutboundMail
from core.mail.reply_address import sign
from core.tickets import services as svc
from core.tickets.contacts import add_contact
from core.tickets.merge import (
    final_ticket,
    merge_tickets,
    merged_from,
    split_event,
    split_subject,
)
from core.tickets.models import Attachment, Ticket, TicketEvent
from core.tickets.timeline import NewAttachment
from core.worklog.models import WorkLogEntry
from mailgw.trust import TrustSettings
from tests.factories import World
from tests.mail_builders import (  # noqa: F401
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
from web.app import create_app

LATER = NOW + timedelta(hours=1)


def _two(session: Session, blobs: BlobStore) -> tuple[Ticket, Ticket]:
    """The client wrote twice: the target (first mail) and the source (second, with a file)."""
    target, _ = opened(
        session, blobs, subject="Drukarka nie drukuje", message_id="<t1@acme.example>"
    )
    raw = build(subject="Drukarka dalej nie drukuje", message_id="<s1@acme.example>")
    source = ticket_of(session, deliver(session, blobs, raw, now=NOW + timedelta(minutes=5)))
    assert source.id != target.id
    svc.add_comment(
        session,
        source,
        author=source.requester,
        body="Zdjęcie błędu w załączniku.",
        attachments=[NewAttachment("blad.png", "image/png", b"\x89PNG...")],
        blobs=blobs,
        at=NOW + timedelta(minutes=6),
    )
    return target, source


def test_merge_moves_the_conversation_and_closes_the_source(
    session: Session, world: World, blobs: BlobStore
) -> None:
    target, source = _two(session, blobs)
    coordinator = world.users["coordinator"]
    piotr = world.users["client2"]
    add_contact(session, source, piotr, actor=coordinator, at=NOW + timedelta(minutes=7))
    svc.log_work(session, source, actor=coordinator, minutes=20, at=NOW + timedelta(minutes=8))
    assert source.worked_minutes == 20
    source_msgs = [e.id for e in source.events if e.type in ("email_in", "comment")]

    result = merge_tickets(session, source, target.number, actor=coordinator, at=LATER)

    assert result is target
    assert source.merged_into is target and source.status_category == "closed"
    assert source.status.name == "Resolved" and source.resolved_at == LATER
    moved = session.scalars(select(TicketEvent).where(TicketEvent.id.in_(source_msgs))).all()
    assert {e.ticket_id for e in moved} == {target.id}
    assert all(e.data["merged_from"] == source.number for e in moved)
    # Events keep their time; the file hangs off the moved comment.
    files = session.scalars(select(Attachment).join(TicketEvent)).all()
    assert [(a.filename, a.event.ticket_id) for a in files] == [("blad.png", target.id)]
    # Work log: entries move, sums recounted on both.
    assert {e.ticket_id for e in session.scalars(select(WorkLogEntry))} == {target.id}
    assert (source.worked_minutes, target.worked_minutes) == (0, 20)
    # Contacts: the copied colleague joins (the requester is the same person: not twice).
    assert [p.email for p in target.cc] == [piotr.email]
    # The source keeps its own history: status changes and the merge line.
    kinds = [e.type for e in sorted(source.events, key=lambda e: (e.at, e.id))]
    assert "status" in kinds and kinds[-1] == "merge" and "email_in" not in kinds
    status = next(e for e in source.events if e.type == "status")
    assert status.data["reason"] == "merged" and status.data["merged_into"] == target.number
    line = next(e for e in target.events if e.type == "merge")
    assert line.data["merged_from"] == source.number and line.author is coordinator
    assert line.public
    assert merged_from(session, target) == [source.number]
    # The original mail (.eml) follows its event.
    raw = session.scalar(select(InboundMessage).where(InboundMessage.event_id.in_(source_msgs)))
    assert raw is not None and raw.ticket_id == target.id


def test_no_mail_to_the_client_about_the_merge(
    session: Session, world: World, blobs: BlobStore
) -> None:
    target, source = _two(session, blobs)
    before = session.scalars(select(OutboundMail.id)).all()
    merge_tickets(session, source, target.number, actor=world.users["coordinator"], at=LATER)
    session.flush()
    assert session.scalars(select(OutboundMail.id)).all() == before


def test_fields_fill_only_the_target_s_empty_ones(
    session: Session, world: World, blobs: BlobStore
) -> None:
    from core.contracts.models import CustomField

    session.add_all(
        [
            CustomField(name="serial", label="Serial"),
            CustomField(name="room", label="Room"),
        ]
    )
    session.flush()
    target, source = _two(session, blobs)
    coordinator = world.users["coordinator"]
    svc.set_fields(session, target, actor=coordinator, custom_fields={"room": "A1"})
    svc.set_fields(session, source, actor=coordinator, custom_fields={"room": "B2", "serial": "X9"})
    merge_tickets(session, source, target.number, actor=coordinator, at=LATER)
    assert target.custom_fields == {"room": "A1", "serial": "X9"}


def test_a_later_reply_to_the_source_lands_in_the_target(
    session: Session, world: World, blobs: BlobStore
) -> None:
    target, source = _two(session, blobs)
    merge_tickets(session, source, target.number, actor=world.users["coordinator"], at=LATER)
    # By the subject tag of the source.
    row = deliver(
        session, blobs, build(subject=f"Re: [#{source.number}] dalej"), now=LATER + timedelta(1)
    )
    assert ticket_of(session, row) is target
    assert f"#{source.number}, merged into #{target.number}" in decision(row, "thread")["why"]
    assert source.status_category == "closed"  # the closed source is not reopened
    # By References to the source's own first mail (the event moved).
    row = deliver(session, blobs, build(subject="Re: x", References="<s1@acme.example>"))
    assert ticket_of(session, row) is target
    # By In-Reply-To a mail we sent about the source.
    session.add(
        OutboundMail(
            message_id="<ack-src@support.example>",
            ticket_id=source.id,
            template="ack",
            to_addr="anna@acme.example",
        )
    )
    session.flush()
    row = deliver(session, blobs, build(subject="Re: ok", In_Reply_To="<ack-src@support.example>"))
    assert ticket_of(session, row) is target
    assert ticket_count(session) == 2


def test_a_reply_to_the_source_s_signed_address_lands_in_the_target(
    session: Session, world: World, blobs: BlobStore
) -> None:
    target, source = _two(session, blobs)
    merge_tickets(session, source, target.number, actor=world.users["coordinator"], at=LATER)
    anna = world.users["client"]
    address = sign("t", "pomoc@support.example", source.number, anna.id)
    row = deliver(
        session,
        blobs,
        build(subject="odpowiedź bez tagu"),
        envelope_to=[address],
        trust=TrustSettings(secret="t"),
    )
    assert ticket_of(session, row) is target


def test_merging_into_a_merged_ticket_follows_the_chain(
    session: Session, world: World, blobs: BlobStore
) -> None:
    target, source = _two(session, blobs)
    third, _ = opened(session, blobs, subject="Trzeci raz")
    coordinator = world.users["coordinator"]
    merge_tickets(session, source, target.number, actor=coordinator, at=LATER)
    assert merge_tickets(session, third, source.number, actor=coordinator, at=LATER) is target
    assert third.merged_into is target and final_ticket(session, third) is target
    # Merging the target back into one merged into it is a loop; a merged ticket stays merged.
    with pytest.raises(Conflict, match="loop"):
        merge_tickets(session, target, source.number, actor=coordinator)
    with pytest.raises(Conflict, match="already merged"):
        merge_tickets(session, source, third.number, actor=coordinator)


def test_refusals(session: Session, world: World, blobs: BlobStore) -> None:
    target, source = _two(session, blobs)
    coordinator = world.users["coordinator"]
    with pytest.raises(InputError, match="into itself"):
        merge_tickets(session, source, source.number, actor=coordinator)
    with pytest.raises(NotFound):
        merge_tickets(session, source, 999999, actor=coordinator)
    other = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Beta", requester=world.users["beta"], contract=world.beta_contract, at=NOW
        ),
    )
    with pytest.raises(InputError, match="different clients"):
        merge_tickets(session, source, other.number, actor=coordinator)
    # A client never merges, nor a subcontractor; a technician only tickets he may change.
    with pytest.raises(Forbidden):
        merge_tickets(session, source, target.number, actor=world.users["client"])
    tech = world.users["technician"]
    with pytest.raises(NotFound):
        merge_tickets(session, source, target.number, actor=tech)
    svc.assign(session, source, actor=coordinator, assignee=tech, subcontractor=None)
    with pytest.raises(NotFound):  # the target is not his
        merge_tickets(session, source, target.number, actor=tech)
    svc.assign(session, target, actor=coordinator, assignee=tech, subcontractor=None)
    assert merge_tickets(session, source, target.number, actor=tech) is target


def test_a_source_under_another_contract_is_refused(
    session: Session, world: World, blobs: BlobStore
) -> None:
    from core.contracts.models import Contract, TicketType

    extra = Contract(
        code="ACME-EXTRA",
        client=world.acme,
        calendar=world.acme_contract.calendar,
        ticket_types=[TicketType(name="x", default=True, reaction="1h", resolution="4h")],
    )
    session.add(extra)
    session.flush()
    target, source = _two(session, blobs)
    coordinator = world.users["coordinator"]
    svc.change_contract(session, source, extra, actor=coordinator)
    with pytest.raises(InputError, match="other's contract first"):
        merge_tickets(session, source, target.number, actor=coordinator)


def test_split_makes_a_mail_the_first_event_of_a_new_ticket(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs, subject="Drukarka", message_id="<o1@acme.example>")
    piotr = world.users["client2"]
    raw = build(
        frm=f"Piotr <{piotr.email}>",
        subject=f"Re: [#{ticket.number}] A skaner też nie działa",
        message_id="<other@acme.example>",
    )
    row = deliver(session, blobs, raw, now=NOW + timedelta(minutes=10))
    mail = event_of(session, row)
    assert mail.ticket_id == ticket.id
    coordinator = world.users["coordinator"]
    with pytest.raises(InputError, match="opened"):
        split_event(session, ticket, ticket.events[0].id, actor=coordinator)
    with pytest.raises(Forbidden):
        split_event(session, ticket, mail.id, actor=world.users["client"])

    new = split_event(session, ticket, mail.id, actor=coordinator, at=LATER)

    assert new.number != ticket.number and new.subject == "A skaner też nie działa"
    assert new.requester is piotr and new.contract is ticket.contract
    assert new.created_at == mail.at and new.status_category == "new"
    assert mail.ticket_id == new.id and mail.data["split_from"] == ticket.number
    assert [e.type for e in new.events] == ["email_in", "split"]
    assert next(e for e in ticket.events if e.type == "split").data["split_into"] == new.number
    assert session.get(InboundMessage, row.id).ticket_id == new.id  # type: ignore[union-attr]
    # A reply to that mail threads to the new ticket.
    later = deliver(session, blobs, build(subject="Re: skaner", In_Reply_To="<other@acme.example>"))
    assert ticket_of(session, later) is new


def test_split_subject() -> None:
    assert split_subject("Re: AW: [#1042] Drukarka") == "Drukarka"
    assert split_subject("Odp: [ACME#7] x [#8]") == "x"


# --- The API -----------------------------------------------------------------------------------


@pytest.fixture
def client(session: Session, tmp_path: Path) -> Iterator[TestClient[Any]]:
    conn = session.connection()

    def factory() -> Session:
        return Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)

    app = create_app(Settings(data_dir=tmp_path, secret_key="test"), session_factory=factory)
    with TestClient(app) as c:
        yield c


def _auth(session: Session, user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(session, user)}"}


def test_api_merge_and_split(
    client: TestClient[Any], session: Session, world: World, blobs: BlobStore
) -> None:
    target, source = _two(session, blobs)
    session.flush()
    h = _auth(session, world.users["coordinator"])
    r = client.post(f"/api/v1/tickets/{source.number}/merge", json={"into": 0}, headers=h)
    assert r.status_code == 400, r.text
    r = client.post(
        f"/api/v1/tickets/{source.number}/merge", json={"into": source.number}, headers=h
    )
    assert r.status_code == 400 and "itself" in r.json()["detail"]
    r = client.post(
        f"/api/v1/tickets/{source.number}/merge",
        json={"into": target.number},
        headers=_auth(session, world.users["client"]),
    )
    assert r.status_code == 403, r.text
    r = client.post(
        f"/api/v1/tickets/{source.number}/merge", json={"into": target.number}, headers=h
    )
    assert r.status_code == 200, r.text
    assert r.json()["number"] == target.number and r.json()["merged_into"] is None
    shown = client.get(f"/api/v1/tickets/{source.number}", headers=h).json()
    assert shown["merged_into"] == target.number and shown["status_category"] == "closed"
    r = client.post(
        f"/api/v1/tickets/{source.number}/merge", json={"into": target.number}, headers=h
    )
    assert r.status_code == 409 and "already merged" in r.json()["detail"]
    # Split the source's second mail (now on the target) back out.
    events = client.get(f"/api/v1/tickets/{target.number}", headers=h).json()["events"]
    second = next(e for e in events if e["message_id"] == "<s1@acme.example>")
    r = client.post(
        f"/api/v1/tickets/{target.number}/split", json={"event": second["id"]}, headers=h
    )
    assert r.status_code == 201, r.text
    assert r.json()["subject"] == "Drukarka dalej nie drukuje"
    r = client.post(f"/api/v1/tickets/{target.number}/split", json={"event": 1}, headers=h)
    assert r.status_code in (400, 404)


# --- The console's forms -----------------------------------------------------------------------


def test_console_merge_asks_first_and_refusals_keep_the_number(tmp_path: Path) -> None:
    from tests.e2e.conftest import build_seeded_app, console_client

    instance = build_seeded_app(tmp_path)
    client, csrf = console_client(instance.app, instance.users["coordinator"])
    source, target = instance.numbers["key_new"], instance.numbers["client_web"]
    other = instance.numbers["beta_open"]

    def post(into: str, **extra: str) -> Any:
        data = {"csrf_token": csrf, "into": into, **extra}
        return client.post(f"/tickets/{source}/merge", data=data, follow_redirects=False)

    r = post("abc")
    assert r.status_code == 400 and "Podaj numer zgłoszenia" in r.text
    r = post(str(other))
    assert r.status_code == 400 and "różnych klientów" in r.text
    assert f'value="{other}"' in r.text  # what was typed stays
    r = post(f"#{target}")
    assert r.status_code == 200 and 'data-testid="merge-question"' in r.text
    assert "Skaner nie wysyła na e-mail" in r.text
    with instance.factory() as s:
        assert s.scalar(select(Ticket.merged_into_id).where(Ticket.number == source)) is None
    r = post(str(target), confirm="1")
    assert r.status_code == 303 and r.headers["location"].startswith(f"/tickets/{target}")
    page = client.get(f"/tickets/{source}")
    assert 'data-testid="merged-banner"' in page.text and f"#{target}" in page.text
    assert 'data-testid="merge-card"' not in page.text
    # A client sees the banner, and no merge or split action.
    anna, _ = console_client(instance.app, instance.users["client"])
    page = anna.get(f"/tickets/{source}")
    assert 'data-testid="merged-banner"' in page.text
    assert 'data-testid="merge-card"' not in page.text
    assert 'data-testid="split-form"' not in anna.get(f"/tickets/{target}").text
