"""Outbox batches (core.mail.outbox.batch): the notifications of one unit of work stored together.

A batch must change how many statements the mails cost, never which mails go out: the same
recipients, templates, contexts and headers (threads, Reply-To, Auto-Submitted) as queuing them
one by one, the same loop protection, and nothing for what a rollback undid.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from core.blobs import BlobStore, DirectoryBlobStore
from core.db import transaction_memo
from core.mail import outbox
from core.mail.models import Mailbox, OutboundMail
from core.mail.reply_address import verify
from core.notify import notifications
from core.tickets.models import Ticket
from core.tickets.services import (
    NewTicket,
    add_comment,
    assign,
    bulk_change_status,
    change_status,
    open_ticket,
)
from tests.conftest import TEST_SECRET_KEY
from tests.factories import World, at, build_world
from tests.mail_builders import build, deliver

DOMAIN = "support.example"
NOW = at("2026-03-02 09:00")


class Boom(Exception):
    """An error in the middle of a unit of work."""


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


def mails(session: Session, template: str | None = None) -> list[OutboundMail]:
    stmt = select(OutboundMail).order_by(OutboundMail.id)
    if template:
        stmt = stmt.where(OutboundMail.template == template)
    return list(session.scalars(stmt))


def ticket(session: Session, world: World, requester: str = "client", **kw: Any) -> Ticket:
    return open_ticket(
        session,
        NewTicket(
            subject=kw.pop("subject", "Drukarka nie drukuje"),
            requester=world.users[requester],
            contract=world.acme_contract,
            at=kw.pop("at", NOW),
            **kw,
        ),
    )


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def scenario(session: Session, world: World) -> None:
    """A morning at the desk: three tickets of one client (acknowledged), a staff comment, status
    changes one by one and in bulk (loop protection stops the sixth automatic mail to Anna),
    an assignment, and a ticket of another client."""
    coord, tech = world.users["coordinator"], world.users["technician"]
    first, second, third = (
        ticket(session, world, subject=f"Awaria {n}", at=NOW + timedelta(seconds=n))
        for n in range(3)
    )
    other = ticket(session, world, requester="client2")
    assign(session, first, actor=coord, assignee=tech, subcontractor=None, at=NOW)
    add_comment(session, first, author=tech, body="Wymieniłem toner.", at=NOW)
    change_status(session, first, "In progress", actor=coord, at=NOW)
    assign(session, second, actor=coord, assignee=tech, subcontractor=None, at=NOW)
    bulk_change_status(
        session, [second.number, third.number, other.number], "In progress", actor=coord, at=NOW
    )
    change_status(session, first, "Waiting for client", actor=coord, at=NOW)


def outcome(rows: list[OutboundMail]) -> list[tuple[Any, ...]]:
    """The rows as their readers see them, with our own Message-IDs replaced by the row they
    name and ticket numbers by the order they first appear (PostgreSQL's counter does not
    roll back)."""
    ours = {row.message_id: f"row {n}" for n, row in enumerate(rows)}
    numbers: dict[int, str] = {}
    for row in rows:
        if row.ticket is not None:
            numbers.setdefault(row.ticket.number, f"ticket {len(numbers)}")

    def named(key: str, value: str) -> Any:
        if key == "Reply-To":
            signed = verify(TEST_SECRET_KEY, value)
            assert signed is not None
            return (signed.mailbox, numbers[signed.ticket_number], signed.user_id)
        return " ".join(ours.get(part, part) for part in value.split())

    shown = []
    for row in rows:
        context = dict(row.context)
        if "ticket_number" in context:
            number = context["ticket_number"]
            context["ticket_number"] = numbers[number]
            context["url"] = context["url"].replace(f"/{number}", f"/{numbers[number]}")
        shown.append(
            (
                numbers[row.ticket.number] if row.ticket else None,
                row.to_addr,
                row.template,
                row.language,
                row.created_at.replace(tzinfo=None),
                {k: named(k, v) for k, v in row.headers.items()},
                context,
                row.state,
            )
        )
    return shown


def test_a_batch_queues_what_one_by_one_queues(session: Session, world: World) -> None:
    savepoint = session.begin_nested()
    scenario(session, world)
    alone = outcome(mails(session))
    savepoint.rollback()
    transaction_memo(session).clear()  # what the rolled back work remembered (its ticket ids)
    assert mails(session) == []
    with outbox.batch(session):
        scenario(session, world)
    together = outcome(mails(session))
    assert together == alone
    # Loop protection did stop Anna's sixth automatic mail (three acks, three status mails).
    to_anna = [m for m in alone if m[1] == "anna@acme.example" and "Auto-Submitted" in m[5]]
    assert len(to_anna) == notifications.LOOP_LIMIT
    # The threads: the comment answers the ack, the status mails follow both.
    comment = next(m for m in together if m[2] == "ticket_comment")
    assert comment[5]["In-Reply-To"] == "row 0"


def test_a_bulk_change_asks_once_and_stores_its_mails_with_one_insert(
    session: Session, world: World, engine: Engine, backend: str
) -> None:
    earlier = NOW - timedelta(hours=1)  # their acknowledgements are outside the loop window
    annas = [ticket(session, world, at=earlier) for _ in range(7)]
    piotrs = [ticket(session, world, requester="client2", at=earlier) for _ in range(3)]
    # Answered ones: the SLA recompute then changes other columns of them than of the rest.
    tech = world.users["technician"]
    for answered in piotrs:
        assign(
            session,
            answered,
            actor=world.users["coordinator"],
            assignee=tech,
            subcontractor=None,
            at=earlier,
        )
        add_comment(session, answered, author=tech, body="Sprawdzam.", at=earlier)
    session.commit()
    jobs_before = len(session.info.get("pending_jobs", []))
    with statements(engine) as seen:
        bulk_change_status(
            session,
            [t.number for t in annas + piotrs],
            "In progress",
            actor=world.users["coordinator"],
            at=NOW,
        )
    status = mails(session, "ticket_status")
    # Loop protection counts the batch's own mails: Anna gets five of her seven.
    assert (
        sorted(m.to_addr for m in status) == ["anna@acme.example"] * 5 + ["piotr@acme.example"] * 3
    )
    assert [m.ticket_id for m in status if m.to_addr == "anna@acme.example"] == [
        t.id for t in annas[:5]
    ]
    outbox_reads = [s for s in seen if s.startswith("SELECT") and "FROM outbound_mail" in s]
    inserts = [s for s in seen if s.startswith("INSERT INTO outbound_mail")]
    assert len(outbox_reads) == 2  # loop protection and the threads, for all ten tickets
    # One multi-row INSERT on PostgreSQL; SQLite (in process, no round trips) gets a statement
    # a row from SQLAlchemy, which cannot match its RETURNING rows to theirs otherwise.
    assert len(inserts) == (1 if backend == "postgres" else len(status))
    # The tickets' changes go in one UPDATE too, though the SLA changed other columns of some.
    assert len([s for s in seen if s.startswith("UPDATE tickets")]) == 1
    jobs = session.info.get("pending_jobs", [])[jobs_before:]
    assert jobs == [("mail.send", {"outbound_id": m.id}) for m in status]
    # Each thread continues under the last mail the same person got about the ticket (the
    # acknowledgement, or the answer to Piotr).
    earlier_mails = [m for m in mails(session) if m.template != "ticket_status"]
    for mail in status:
        [*_, last] = [
            m for m in earlier_mails if (m.ticket_id, m.to_addr) == (mail.ticket_id, mail.to_addr)
        ]
        assert mail.headers["In-Reply-To"] == last.message_id
    assert {m.template for m in earlier_mails if m.to_addr == "piotr@acme.example"} == {
        "ticket_ack",
        "ticket_comment",
    }


def test_tickets_that_came_by_mail_find_their_mailbox_with_one_query(
    session: Session, world: World, engine: Engine, tmp_path: Path
) -> None:
    blobs: BlobStore = DirectoryBlobStore(tmp_path / "blobs")
    earlier = NOW - timedelta(hours=1)  # their acknowledgements are outside the loop window
    for n in range(3):
        raw = build(subject=f"Awaria {n}", to="acme@support.example")
        deliver(session, blobs, raw, envelope_to=["acme@support.example"], now=earlier)
    session.commit()  # a new transaction: nothing remembered about these tickets
    numbers = list(session.scalars(select(Ticket.number).order_by(Ticket.number)))
    with statements(engine) as seen:
        bulk_change_status(
            session, numbers, "In progress", actor=world.users["coordinator"], at=NOW
        )
    assert len([s for s in seen if "FROM inbound_messages" in s]) == 1
    status = mails(session, "ticket_status")
    assert len(status) == 3
    for mail in status:
        signed = verify(TEST_SECRET_KEY, mail.headers["Reply-To"])
        assert signed is not None and signed.mailbox == "acme@support.example"


def test_mails_of_a_rolled_back_savepoint_are_dropped(session: Session, world: World) -> None:
    coord = world.users["coordinator"]
    kept, undone, later = (
        ticket(session, world, requester=r) for r in ("client", "client2", "manager")
    )
    before = len(mails(session))
    with outbox.batch(session):
        change_status(session, kept, "In progress", actor=coord, at=NOW)
        with suppress(Boom), session.begin_nested():
            change_status(session, undone, "In progress", actor=coord, at=NOW)
            raise Boom
        change_status(session, later, "In progress", actor=coord, at=NOW)
    assert [m.ticket_id for m in mails(session)[before:]] == [kept.id, later.id]


def test_an_error_leaves_the_mails_to_the_commit_or_the_rollback(
    session: Session, world: World
) -> None:
    coord = world.users["coordinator"]
    first = ticket(session, world)
    with pytest.raises(Boom), outbox.batch(session):
        change_status(session, first, "In progress", actor=coord, at=NOW)
        raise Boom
    assert mails(session, "ticket_status") == []  # not written yet
    session.commit()  # the caller handled the error and keeps the change: its mail goes too
    assert [m.ticket_id for m in mails(session, "ticket_status")] == [first.id]
    assert outbox.open_batch(session) is None
    with pytest.raises(Boom), outbox.batch(session):
        change_status(session, first, "Waiting for client", actor=coord, at=NOW)
        raise Boom
    session.rollback()
    assert outbox.open_batch(session) is None


def test_queue_mail_in_a_batch_keeps_the_order_and_returns_a_stored_row(
    session: Session, world: World
) -> None:
    common: dict[str, Any] = {"context": {"n": 1}, "mail_domain": DOMAIN, "now": NOW}
    with outbox.batch(session) as batch:
        waiting = batch.queue(template="ticket_status", to="a@acme.example", **common)
        assert waiting.id is None and batch.waiting == 1
        direct = outbox.queue_mail(session, template="ticket_status", to="b@acme.example", **common)
        assert direct is not None and direct.id is not None
        assert waiting.id is not None and waiting.id < direct.id
        last = batch.queue(template="ticket_status", to="c@acme.example", **common)
    assert last.id is not None
    assert [m.to_addr for m in mails(session)] == [
        "a@acme.example",
        "b@acme.example",
        "c@acme.example",
    ]
    jobs = [kw["outbound_id"] for actor, kw in session.info["pending_jobs"] if actor == "mail.send"]
    assert jobs == [waiting.id, direct.id, last.id]


def test_a_single_notification_is_stored_at_once(session: Session, world: World) -> None:
    first = ticket(session, world)
    [ack] = mails(session, "ticket_ack")  # no batch around open_ticket: written by its hook
    change_status(session, first, "In progress", actor=world.users["coordinator"], at=NOW)
    [status] = mails(session, "ticket_status")
    assert status.headers["In-Reply-To"] == ack.message_id
    assert outbox.open_batch(session) is None
