"""``mail.process`` in batches (``mailgw.process.run_batch``, ``PULPIT_MAIL_BATCH``).

One job takes its own stored mail and the others waiting, processes them in one unit of work
and commits once; a batch that fails is redone mail by mail, so only the bad mail counts an
attempt; a mail another worker holds is skipped, not waited for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from config.settings import SettingsError, load_settings
from core.blobs import BlobStore, DirectoryBlobStore
from core.db import take_pending_jobs, unit_of_work
from core.mail.inbound import Arrival, store_inbound, store_many
from core.mail.models import InboundMessage
from core.sla.clocks import timeline
from core.tickets import search
from core.tickets.models import Attachment, Ticket, TicketEvent
from core.tickets.services import NewTicket, open_ticket
from core.tickets.timeline import append_event
from mailgw.process import run_batch
from tests.factories import World, build_world
from tests.mail_builders import (  # noqa: F401
    DOMAIN,
    NOW,
    blobs_fixture,
    build,
    decision,
    ticket_count,
    world_fixture,
)


class Counting:
    """A session factory that counts the units of work opened with it."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory, self.opened = factory, 0

    def __call__(self) -> Session:
        self.opened += 1
        return self.factory()


def factory_for(session: Session) -> sessionmaker[Session]:
    return sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )


def store(session: Session, blobs: BlobStore, raws: list[bytes]) -> list[InboundMessage]:
    rows = [
        store_inbound(
            session, raw, source="smtp", blobs=blobs, envelope_to=["pomoc@support.example"], now=NOW
        )
        for raw in raws
    ]
    session.commit()
    return rows


def stored(factory: sessionmaker[Session], blobs: BlobStore, raws: list[bytes]) -> list[int]:
    """These mails stored in one committed unit of work, as the gateway does; their ids."""
    with unit_of_work(factory) as session:
        return [
            store_inbound(session, raw, source="smtp", blobs=blobs, envelope_to=[]).id
            for raw in raws
        ]


@contextmanager
def statements_sent(engine: Any) -> Iterator[list[tuple[str, Any]]]:
    """The statements sent through ``engine`` inside the block, each on one line, with their
    parameters."""
    sent: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((" ".join(statement.split()), parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def batch(factory: Any, inbound_id: int, blobs: BlobStore, size: int = 32) -> str:
    return run_batch(
        factory, inbound_id, blobs=blobs, mail_domain=DOMAIN, clock=lambda: NOW, batch=size
    )


def test_one_job_processes_the_waiting_mails_in_one_unit_of_work(
    session: Session, world: World, blobs: BlobStore
) -> None:
    raws = [build(subject=f"Awaria {i}", message_id=f"<b{i}@client.example>") for i in range(5)]
    # A second copy of the first mail (sent to two of our mailboxes) in the same batch.
    rows = store(session, blobs, [*raws, raws[0]])
    counting = Counting(factory_for(session))

    assert batch(counting, rows[0].id, blobs) == "processed"
    assert counting.opened == 1
    for row in rows:
        session.refresh(row)
    assert [r.state for r in rows] == ["processed"] * 5 + ["ignored"]
    assert decision(rows[5], "duplicate")["result"] is True
    assert ticket_count(session) == 5
    # Every decision of every mail is on its row, as when processed one by one.
    assert [d["rule"] for d in rows[1].decisions][:2] == ["parse", "our_own"]
    # The other mails' jobs, in the process whose batch took them, end without a statement.
    assert batch(counting, rows[3].id, blobs) == "processed"
    assert counting.opened == 1
    assert ticket_count(session) == 5
    # Elsewhere (another worker process), or asked again: one read, nothing changes.
    assert batch(counting, rows[3].id, blobs) == "processed"
    assert counting.opened == 2
    assert ticket_count(session) == 5


def test_the_mails_keep_their_order_within_a_batch(
    session: Session, world: World, blobs: BlobStore
) -> None:
    first = build(subject="Skaner nie skanuje", message_id="<first@client.example>")
    reply = build(
        subject="Re: Skaner nie skanuje",
        message_id="<reply@client.example>",
        in_reply_to="<first@client.example>",
        references="<first@client.example>",
    )
    rows = store(session, blobs, [first, reply])
    batch(factory_for(session), rows[1].id, blobs)
    for row in rows:
        session.refresh(row)
    # The reply's own job ran first, yet the mail that opened the ticket was processed first.
    assert rows[0].ticket_id is not None and rows[1].ticket_id == rows[0].ticket_id
    assert ticket_count(session) == 1


def test_a_failing_mail_is_retried_alone_and_the_others_commit(
    session: Session, world: World, blobs: BlobStore
) -> None:
    rows = store(
        session, blobs, [build(subject=f"Awaria {i}", body=f"Mail {i}.") for i in range(3)]
    )
    assert isinstance(blobs, DirectoryBlobStore)
    blobs.path(rows[1].sha256).unlink()  # the operator's fault: its raw mail is gone

    assert batch(factory_for(session), rows[0].id, blobs) == "processed"
    for row in rows:
        session.refresh(row)
    assert [r.state for r in rows] == ["processed", "received", "processed"]
    assert rows[1].attempts == 1 and "BlobMissing" in (rows[1].reason or "")
    assert [r.attempts for r in (rows[0], rows[2])] == [0, 0]
    assert ticket_count(session) == 2


def test_a_mail_that_failed_before_waits_for_its_own_job(
    session: Session, world: World, blobs: BlobStore
) -> None:
    rows = store(session, blobs, [build(subject="Pierwsza"), build(subject="Druga")])
    rows[1].attempts = 1  # failed once; the sweep sends its job again
    session.commit()
    batch(factory_for(session), rows[0].id, blobs)
    for row in rows:
        session.refresh(row)
    assert [r.state for r in rows] == ["processed", "received"]
    assert batch(factory_for(session), rows[1].id, blobs) == "processed"


def test_batch_of_one_is_the_old_path(session: Session, world: World, blobs: BlobStore) -> None:
    rows = store(session, blobs, [build(subject="Pierwsza"), build(subject="Druga")])
    assert batch(factory_for(session), rows[0].id, blobs, size=1) == "processed"
    session.refresh(rows[1])
    assert rows[1].state == "received"


@pytest.mark.postgres
def test_a_process_runs_one_batch_at_a_time_and_the_waiting_jobs_find_theirs_done(
    pg_factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailgw.process as process

    blobs = DirectoryBlobStore(tmp_path / "blobs")
    with unit_of_work(pg_factory) as session:
        build_world(session)
        first = store_inbound(session, build(subject="Awaria 0"), source="smtp", blobs=blobs).id
    running, most, batches = 0, 0, 0
    lock = threading.Lock()
    inside = threading.Event()
    later: list[int] = []
    real = process._parse_ahead

    def parse_ahead(*args: Any, **kwargs: Any) -> None:
        nonlocal running, most, batches
        with lock:
            running += 1
            batches += 1
            most = max(most, running)
        inside.set()
        if not later:
            # While the first batch runs, four more mails arrive and their jobs start.
            with unit_of_work(pg_factory) as session:
                later.extend(
                    store_inbound(
                        session, build(subject=f"Awaria {i}"), source="smtp", blobs=blobs
                    ).id
                    for i in range(1, 5)
                )
            for one in later:
                threading.Thread(target=lambda one=one: results.append(job(one))).start()
            threading.Event().wait(0.3)  # time for them to reach the gate
        try:
            real(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(process, "_parse_ahead", parse_ahead)
    results: list[str] = []

    def job(inbound_id: int) -> str:
        return batch(pg_factory, inbound_id, blobs)

    assert job(first) == "processed"
    deadline = threading.Event()
    for _ in range(300):
        if len(results) == 4:
            break
        deadline.wait(0.1)
    assert sorted(results) == ["processed"] * 4
    assert most == 1
    # The four jobs that waited made one batch together (its own job's, the others' taken
    # along), not four.
    assert batches == 2
    with pg_factory() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 5


@pytest.mark.postgres
def test_a_mail_held_by_another_worker_is_skipped_not_waited_for(
    pg_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    with unit_of_work(pg_factory) as session:
        build_world(session)
        ids = [
            store_inbound(session, build(subject=f"Awaria {i}"), source="smtp", blobs=blobs).id
            for i in range(3)
        ]
    held = pg_factory()
    try:
        # Another worker's batch holds the second mail.
        held.execute(
            text("SELECT id FROM inbound_messages WHERE id = :id FOR UPDATE"), {"id": ids[1]}
        )
        done = threading.Event()
        result: list[str] = []

        def work() -> None:
            result.append(batch(pg_factory, ids[0], blobs))
            result.append(batch(pg_factory, ids[1], blobs))
            done.set()

        worker = threading.Thread(target=work)
        worker.start()
        assert done.wait(30), "the batch waited for the held row"
        worker.join()
        assert result == ["processed", "taken"]
    finally:
        held.rollback()
        held.close()
    with pg_factory() as session:
        states = dict(session.execute(select(InboundMessage.id, InboundMessage.state)).all())
        assert [states[i] for i in ids] == ["processed", "received", "processed"]
    assert batch(pg_factory, ids[1], blobs) == "processed"
    with pg_factory() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 3


@pytest.mark.parametrize("value", ["0", "1001", "dużo"])
def test_mail_batch_setting_is_checked(value: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings({"PULPIT_MAIL_BATCH": value})
    assert "mail_batch must be" in str(exc.value)


def _three_tickets(
    factory: sessionmaker[Session], blobs: BlobStore, tag: str
) -> dict[str | None, Ticket]:
    """The demo world and three tickets opened by mail (``<{tag}0@client.example>``, ...),
    each in a batch of its own; the tickets by the Message-ID of the mail that opened them."""
    with unit_of_work(factory) as session:
        build_world(session)
        ids = [
            store_inbound(
                session,
                build(subject=f"Awaria {i}", message_id=f"<{tag}{i}@client.example>"),
                source="smtp",
                blobs=blobs,
            ).id
            for i in range(3)
        ]
    for inbound_id in ids:
        batch(factory, inbound_id, blobs, size=1)
    with factory() as session:
        opened: dict[str | None, Ticket] = {}
        for row in session.scalars(select(InboundMessage)):
            ticket = session.get(Ticket, row.ticket_id) if row.ticket_id else None
            assert ticket is not None
            opened[row.message_id] = ticket
        return opened


@pytest.mark.postgres
def test_a_batch_locks_the_tickets_it_answers_up_front_in_one_order(
    pg_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Two workers' batches answering tickets A and B in opposite orders deadlocked (seen in
    bench/run_ingest.sh); the tickets a batch's mails name are locked first, by id."""
    from mailgw.parsing import parse_message
    from mailgw.thread_match import lock_threads

    blobs = DirectoryBlobStore(tmp_path / "blobs")
    numbers = {mid: t.number for mid, t in _three_tickets(pg_factory, blobs, "t").items()}
    answers = [
        parse_message(
            build(subject="Re: Awaria 0", in_reply_to="<t0@client.example>"), mail_domain=DOMAIN
        ),
        parse_message(
            build(subject=f"Re: [#{numbers['<t2@client.example>']}] Awaria 2"), mail_domain=DOMAIN
        ),
    ]
    holder = pg_factory()
    other = pg_factory()
    try:
        lock_threads(holder, answers)
        locked = "SELECT id FROM tickets WHERE number = :n FOR UPDATE NOWAIT"
        for mid in ("<t0@client.example>", "<t2@client.example>"):
            with pytest.raises(Exception, match="could not obtain lock"):
                other.execute(text(locked), {"n": numbers[mid]})
            other.rollback()
        # The ticket no mail of the batch names stays free.
        other.execute(text(locked), {"n": numbers["<t1@client.example>"]})
    finally:
        other.rollback()
        other.close()
        holder.rollback()
        holder.close()


@pytest.mark.postgres
def test_a_ticket_another_batch_holds_is_answered_last_not_waited_for_first(
    pg_factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting up front for a ticket the other worker's batch holds made the second worker
    wait for the first's whole batch (bench/run_ingest.sh: one of the two workers waited
    most of the time). The mails naming it, and a reply to one of them, are processed after
    the rest; only then does the batch wait for the ticket, and it reads it afresh."""
    import mailgw.process as process

    blobs = DirectoryBlobStore(tmp_path / "blobs")
    opened = _three_tickets(pg_factory, blobs, "h")
    busy, free = opened["<h0@client.example>"], opened["<h1@client.example>"]
    rows = stored(
        pg_factory,
        blobs,
        [
            build(subject="Re: Awaria 0", in_reply_to="<h0@client.example>",
                  message_id="<a@client.example>"),
            build(subject="Nowa sprawa", message_id="<b@client.example>"),
            build(subject="Re: Re: Awaria 0", in_reply_to="<a@client.example>",
                  message_id="<c@client.example>"),
            build(subject=f"Re: [#{free.number}] Awaria 1", message_id="<d@client.example>"),
        ],
    )  # fmt: skip
    order: list[int] = []
    processing = process._process_row

    def noted(session: Session, row: InboundMessage, **kwargs: Any) -> Any:
        order.append(row.id)
        return processing(session, row, **kwargs)

    monkeypatch.setattr(process, "_process_row", noted)
    holder = pg_factory()
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(batch(pg_factory, rows[0], blobs)))
    try:
        # Another transaction holds the first ticket and changes it.
        holder.execute(
            text("UPDATE tickets SET subject = 'Awaria 0 (drukarka)' WHERE id = :id"),
            {"id": busy.id},
        )
        worker.start()
        with pg_factory() as watcher:
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            for _ in range(300):
                if watcher.scalar(text(waiting)):
                    break
                watcher.rollback()
                worker.join(0.05)
            else:
                pytest.fail("the batch never waited for the held ticket")
        # Waiting now, with the mails that name other tickets done.
        assert order == [rows[1], rows[3]]
        holder.commit()
        worker.join(30)
        assert not worker.is_alive()
    finally:
        holder.rollback()
        holder.close()
        worker.join(30)
    assert result == ["processed"]
    assert order == [rows[1], rows[3], rows[0], rows[2]]
    with pg_factory() as session:
        done = {r.id: r for r in session.scalars(select(InboundMessage))}
        assert all(done[one].state == "processed" for one in rows)
        assert done[rows[0]].ticket_id == busy.id and done[rows[2]].ticket_id == busy.id
        assert done[rows[3]].ticket_id == free.id
        ticket = session.get(Ticket, busy.id)
        assert ticket is not None and ticket.subject == "Awaria 0 (drukarka)"
        # On the timeline in the order they arrived, after what the other transaction did.
        assert [e.id for e in ticket.events][-2:] == [
            done[rows[0]].event_id,
            done[rows[2]].event_id,
        ]


@pytest.mark.postgres
def test_a_held_ticket_read_afresh_keeps_what_the_batch_changed_in_it_already(
    pg_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """A mail of the batch may reach a held ticket another way (a signed reply address) and
    change it before lock_held reads it afresh: the change is written first, not undone."""
    from mailgw.parsing import parse_message
    from mailgw.thread_match import lock_held, lock_threads

    blobs = DirectoryBlobStore(tmp_path / "blobs")
    busy = _three_tickets(pg_factory, blobs, "k")["<k0@client.example>"]
    reply = parse_message(
        build(subject="Re: Awaria 0", in_reply_to="<k0@client.example>"), mail_domain=DOMAIN
    )
    holder = pg_factory()
    session = pg_factory()
    try:
        holder.execute(text("UPDATE tickets SET ref = 'ZL/7' WHERE id = :id"), {"id": busy.id})
        assert lock_threads(session, [reply]) == {busy.id}
        ticket = session.get(Ticket, busy.id)
        assert ticket is not None
        ticket.subject = "Awaria 0 (sekretariat)"  # not flushed yet
        holder.commit()
        lock_held(session)
        assert (ticket.subject, ticket.ref) == ("Awaria 0 (sekretariat)", "ZL/7")
    finally:
        holder.rollback()
        holder.close()
        session.rollback()
        session.close()


def _with_file(raw: bytes, data: bytes, name: str) -> bytes:
    msg = message_from_bytes(raw, _class=EmailMessage, policy=email_policy.default)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg.as_bytes()


def test_a_batch_inserts_its_new_tickets_in_one_statement_per_table(
    session: Session, world: World, blobs: BlobStore
) -> None:
    """open_ticket leaves a batch's rows to one flush at its end (DEFER_FLUSH): reads that do
    not depend on them (the ticket number, statuses, a blob row) do not flush them early."""
    scan = b"%PDF-1.4 the same scan, sent by two people"
    raws = [build(subject=f"Awaria {i}", message_id=f"<n{i}@client.example>") for i in range(4)]
    raws[1] = _with_file(raws[1], scan, "skan.pdf")
    raws[3] = _with_file(raws[3], scan, "skan-kopia.pdf")
    rows = store(session, blobs, raws)
    inserts: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO"):
            inserts.append(statement.split()[2])

    flushes: list[int] = []

    def flushed(flushing: Session, _context: Any, _instances: Any) -> None:
        if new_tickets := sum(isinstance(o, Ticket) for o in flushing.new):
            flushes.append(new_tickets)

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", seen)
    event.listen(Session, "before_flush", flushed)
    try:
        assert batch(factory_for(session), rows[0].id, blobs) == "processed"
    finally:
        event.remove(bind, "before_cursor_execute", seen)
        event.remove(Session, "before_flush", flushed)
    for row in rows:
        session.refresh(row)
    assert [r.state for r in rows] == ["processed"] * 4
    assert all(r.ticket_id is not None and r.event_id is not None for r in rows)
    assert flushes == [4]  # the four tickets in one flush
    if bind.dialect.name == "postgresql":
        # One INSERT per table (SQLAlchemy's insertmanyvalues; SQLite inserts row by row).
        for table in ("tickets", "ticket_events", "attachments", "blobs"):
            assert inserts.count(table) == 1, (table, inserts)
    # The same content twice in one flush: one blob row, two attachments naming it.
    names = session.execute(
        select(Attachment.filename, Attachment.sha256).order_by(Attachment.id)
    ).all()
    assert [n for n, _ in names] == ["skan.pdf", "skan-kopia.pdf"]
    assert len({sha for _, sha in names}) == 1
    # Each row names its own ticket and first event, read after the flush.
    for row in rows:
        opened = session.get(TicketEvent, row.event_id)
        assert opened is not None and opened.ticket_id == row.ticket_id


def test_a_timeline_read_mid_batch_has_the_unflushed_event_last(
    session: Session, world: World
) -> None:
    """The SLA clocks read a ticket's timeline without flushing it (a batch's events wait for
    one INSERT); an event added and not yet flushed is in it, after those stored."""
    client = world.users["client"]
    ticket = open_ticket(
        session, NewTicket(subject="Drukarka", requester=client, contract=world.acme_contract)
    )
    session.commit()
    session.expire(ticket, ["events"])
    new = append_event(session, ticket, "comment", author=client, at=ticket.created_at)
    events = timeline(ticket)
    assert new.id is None  # not flushed to read the timeline
    assert events[-1] is new
    assert "events" not in inspect(ticket).dict  # nor the whole timeline loaded


@pytest.mark.postgres
def test_a_batch_threads_its_replies_from_what_it_locked_up_front(
    pg_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """lock_threads loads the tickets a batch answers and remembers what named them: each reply is threaded with no lookup of its own, onto the same ticket
    as alone, and its event waits for the batch's one flush."""
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    opened = _three_tickets(pg_factory, blobs, "r")
    numbers = {mid: t.number for mid, t in opened.items()}
    ticket_ids = {mid: t.id for mid, t in opened.items()}
    replies = [
        build(subject="Re: Awaria 0", in_reply_to="<r0@client.example>"),
        build(subject=f"Re: [#{numbers['<r1@client.example>']}] Awaria 1"),
        build(subject="Nowa sprawa", message_id="<r3@client.example>"),
        build(subject="Re: Awaria 2", references="<x@elsewhere.example> <r2@client.example>"),
    ]
    rows = stored(pg_factory, blobs, replies)
    with statements_sent(pg_factory.kw["bind"]) as sent:
        assert batch(pg_factory, rows[0], blobs) == "processed"
    lookups = [flat for flat, _ in sent if "message_id IN" in flat or "tickets.number IN" in flat]
    with pg_factory() as session:
        done = [session.get(InboundMessage, one) for one in rows]
        assert [r.state for r in done if r is not None] == ["processed"] * 4
        assert [r.ticket_id for r in done if r is not None][:2] == [
            ticket_ids["<r0@client.example>"],
            ticket_ids["<r1@client.example>"],
        ]
        assert done[3] is not None and done[3].ticket_id == ticket_ids["<r2@client.example>"]
        assert done[2] is not None and done[2].ticket_id not in ticket_ids.values()
        # Each reply is on its ticket's timeline, after the mail that opened it.
        for one in (0, 1, 3):
            row = done[one]
            assert row is not None and row.event_id is not None
            ticket = session.get(Ticket, row.ticket_id)
            assert ticket is not None and ticket.events[-1].id == row.event_id
    # Outbound Message-IDs, stored ones and subject numbers: one statement for the batch.
    assert len(lookups) == 1 and "UNION ALL" in lookups[0], lookups


@pytest.mark.postgres
def test_a_batch_takes_the_numbers_of_its_new_tickets_in_one_statement(
    pg_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """The numbers of the tickets a batch will open are reserved together (one ``nextval``
    statement, not one per ticket), handed out in the order the mails arrived, and estimated
    from what the batch's mails name: a reply takes none, nor a mail answering another mail
    of the same batch. A mail expected to follow a ticket up that opens one anyway (another
    client's tag) takes its number alone."""
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    opened = _three_tickets(pg_factory, blobs, "s")
    numbers = {mid: t.number for mid, t in opened.items()}
    mails = [
        build(subject="Nowa 1", message_id="<s-new1@client.example>"),
        build(subject="Re: Awaria 0", in_reply_to="<s0@client.example>"),
        build(subject="Nowa 2", message_id="<s-new2@client.example>"),
        build(subject="Re: Nowa 2", in_reply_to="<s-new2@client.example>"),
        build(
            frm="Ewa <ewa@beta.example>",
            subject=f"Re: [#{numbers['<s1@client.example>']}] Awaria 1",
            message_id="<s-beta@beta.example>",
        ),
        build(subject="Nowa 3", message_id="<s-new3@client.example>"),
        # An out-of-office answer naming nothing: the loop rules set it aside, no number.
        build(subject="Nieobecność", auto_submitted="auto-replied"),
    ]
    rows = stored(pg_factory, blobs, mails)
    engine = pg_factory.kw["bind"]
    with statements_sent(engine) as sent:
        assert batch(pg_factory, rows[0], blobs) == "processed"
    taken = [(flat, params) for flat, params in sent if "nextval('ticket_number_seq')" in flat]
    with pg_factory() as session:
        done = [session.get(InboundMessage, one) for one in rows]
        tickets = [session.get(Ticket, r.ticket_id) if r and r.ticket_id else None for r in done]
        assert all(t is not None for t in tickets[:6])
        assert done[6] is not None and (done[6].state, done[6].ticket_id) == ("ignored", None)
        by_subject = {t.subject: t.number for t in tickets if t is not None}
    assert tickets[1] is not None and tickets[1].number == numbers["<s0@client.example>"]
    assert tickets[3] is not None and tickets[3].number == by_subject["Nowa 2"]
    # Three numbers reserved in one statement for the three new mails; the other client's
    # tagged mail opened a ticket too and asked for one more. In the order the mails arrived,
    # with no gap.
    assert len(taken) == 2 and "generate_series" in taken[0][0], taken
    assert 3 in (taken[0][1].values() if isinstance(taken[0][1], dict) else taken[0][1])
    beta = tickets[4]
    assert beta is not None and beta.number not in numbers.values()
    first = by_subject["Nowa 1"]
    assert [by_subject["Nowa 2"], beta.number, by_subject["Nowa 3"]] == [
        first + 1,
        first + 2,
        first + 3,
    ]
    # A lone new mail reserves nothing: it takes its number when it opens its ticket.
    with unit_of_work(pg_factory) as session:
        lone = store_inbound(
            session, build(subject="Nowa 4"), source="smtp", blobs=blobs, envelope_to=[]
        ).id
    with statements_sent(engine) as sent:
        assert batch(pg_factory, lone, blobs) == "processed"
    taken = [(flat, params) for flat, params in sent if "nextval('ticket_number_seq')" in flat]
    assert len(taken) == 1 and "generate_series" not in taken[0][0], taken


@pytest.mark.postgres
def test_a_reply_to_a_long_ticket_reads_a_few_of_its_events(
    pg_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """A reply's cost does not grow with its ticket's timeline: the clocks read the status
    changes and the first replies, the notifications the mail that opened it, the search
    adds the reply's text to the document; none of them loads the 60 comments. What the clocks
    read of the tickets a batch answers is one statement for them all."""
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    opened = _three_tickets(pg_factory, blobs, "l")
    long_id = opened["<l0@client.example>"].id
    with unit_of_work(pg_factory) as session:
        ticket = session.get(Ticket, long_id)
        assert ticket is not None
        for i in range(60):
            append_event(
                session,
                ticket,
                "comment",
                author=ticket.requester,
                at=NOW - timedelta(hours=1) + timedelta(seconds=i),
                public=True,
                body_text=f"komentarz numer {i}",
            )
    with unit_of_work(pg_factory) as session:
        row, *others = [
            store_inbound(
                session,
                build(subject=f"Re: Awaria {i}", in_reply_to=f"<l{i}@client.example>", body=body),
                source="smtp",
                blobs=blobs,
                envelope_to=[],
            ).id
            for i, body in enumerate(("toner pusty", "nadal nie działa", "dziękuję"))
        ]
    loaded: list[TicketEvent] = []
    reads: list[str] = []

    def counted(target: TicketEvent, _context: Any) -> None:
        loaded.append(target)

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "row_number()" in statement.lower():
            reads.append(statement)

    engine = pg_factory.kw["bind"]
    event.listen(TicketEvent, "load", counted)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert batch(pg_factory, row, blobs) == "processed"
    finally:
        event.remove(TicketEvent, "load", counted)
        event.remove(engine, "before_cursor_execute", seen)
    assert len(loaded) <= 6, [(e.type, e.body_text) for e in loaded]
    assert len(reads) == 1  # what the clocks read of the three tickets: one statement
    with pg_factory() as session:
        assert search.build_documents(session, [long_id])[0].row() == dict(
            session.execute(
                select(search.TicketSearch.__table__).where(
                    search.TicketSearch.ticket_id == long_id
                )
            )
            .one()
            ._mapping
        )
        inbound = session.get(InboundMessage, row)
        assert inbound is not None and inbound.ticket_id == long_id


@pytest.mark.parametrize(("jobs_per", "jobs"), [(1, 5), (2, 3), (32, 1)])
def test_mails_stored_together_get_one_job_per_batch(
    session: Session, world: World, blobs: BlobStore, jobs_per: int, jobs: int
) -> None:
    """The gateway stores the mails that arrive together in one transaction and sends one
    mail.process job per PULPIT_MAIL_BATCH of them: each job takes the others along."""
    arrivals = [
        Arrival(
            build(subject=f"Awaria {i}", message_id=f"<g{i}@client.example>"),
            envelope_to=["pomoc@support.example"],
        )
        for i in range(5)
    ]
    ids = store_many(session, arrivals, source="smtp", blobs=blobs, jobs_per=jobs_per)
    sent = take_pending_jobs(session)
    session.commit()
    assert [job[1]["inbound_id"] for job in sent] == ids[::jobs_per]
    assert len(sent) == jobs
    for job in sent:
        batch(factory_for(session), job[1]["inbound_id"], blobs)
    states = session.scalars(select(InboundMessage.state).where(InboundMessage.id.in_(ids)))
    assert list(states) == ["processed"] * 5


def test_mails_stored_together_keep_what_each_arrived_with_in_order(
    session: Session, world: World, blobs: BlobStore
) -> None:
    """One statement per table for the gateway's batch: each id names the row of the mail it
    was returned for, with that mail's envelope, size and content; the same content twice is
    one blob row; every row waits for processing."""
    from core.blobs import Blob

    raws = [build(subject=f"Awaria {i}", message_id=f"<o{i}@client.example>") for i in range(6)]
    raws[4] = raws[1]  # sent twice
    arrivals = [
        Arrival(
            raw,
            envelope_from=f"s{i}@client.example" if i % 2 else None,
            envelope_to=[f"r{i}@support.example", "kopia@support.example"][: 1 + i % 2],
            mailbox="INBOX" if i == 3 else None,
        )
        for i, raw in enumerate(raws)
    ]
    ids = store_many(session, arrivals, source="lmtp", blobs=blobs, now=NOW)
    session.commit()
    assert ids == sorted(ids) and len(set(ids)) == 6
    shas = set()
    for inbound_id, arrival, raw in zip(ids, arrivals, raws, strict=True):
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        assert (row.envelope_from, row.envelope_to, row.mailbox) == (
            arrival.envelope_from,
            arrival.envelope_to,
            arrival.mailbox,
        )
        assert (row.size, row.source, row.state, row.attempts, row.decisions) == (
            len(raw),
            "lmtp",
            "received",
            0,
            [],
        )
        assert row.received_at == NOW
        assert blobs.read(row.sha256) == raw
        assert row.message_id == message_from_bytes(raw)["Message-ID"]
        shas.add(row.sha256)
    assert session.scalar(select(func.count()).select_from(Blob).where(Blob.sha256.in_(shas))) == 5


def test_content_the_gateway_wrote_already_is_not_hashed_or_written_again(
    session: Session, world: World, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SMTP gateway writes each mail's blob in its thread pool before the group commit
    and passes the digest and Message-ID along; the commit takes them as they are."""
    raw = build(subject="Awaria", message_id="<w1@client.example>")
    digest = blobs.write(raw)

    def not_again(self: BlobStore, data: bytes) -> str:
        raise AssertionError("written twice")

    monkeypatch.setattr(type(blobs), "write", not_again)
    [inbound_id] = store_many(
        session,
        [Arrival(raw, sha256=digest, message_id="<w1@client.example>")],
        source="smtp",
        blobs=blobs,
    )
    row = session.get(InboundMessage, inbound_id)
    assert row is not None and row.sha256 == digest
    assert row.message_id == "<w1@client.example>"


def test_a_reply_to_a_mail_of_its_own_batch_threads_after_a_flush_in_between(
    session: Session, world: World, blobs: BlobStore
) -> None:
    """A new sender between the two mails flushes the batch's rows (their contact is stored
    at once): the reply still finds the ticket its parent opened, though what the batch looked
    up at its start could not know it."""
    first = build(subject="Serwer nie odpowiada", message_id="<parent@client.example>")
    stranger = build(
        frm="Nowy <nowy.kontakt@acme.example>",
        subject="Inna sprawa",
        message_id="<other@client.example>",
    )
    reply = build(
        frm="Piotr <piotr@acme.example>",
        subject="Re: Serwer nie odpowiada",
        message_id="<child@client.example>",
        in_reply_to="<parent@client.example>",
        references="<parent@client.example>",
    )
    rows = store(session, blobs, [first, stranger, reply])
    assert batch(factory_for(session), rows[0].id, blobs) == "processed"
    for row in rows:
        session.refresh(row)
    assert [r.state for r in rows] == ["processed"] * 3
    assert rows[2].ticket_id == rows[0].ticket_id
    assert rows[1].ticket_id != rows[0].ticket_id


def test_the_batch_lookup_of_earlier_copies_answers_as_the_lookup_of_each_mail(
    session: Session, world: World, blobs: BlobStore
) -> None:
    """``rules.seen_many`` (one statement for the batch: PostgreSQL's arrays, SQLite's
    UNION) finds what ``rules.seen`` finds for each mail alone: our own mail by its
    Message-ID, a processed copy by Message-ID or by its bytes, an event by Message-ID."""
    from core.mail.models import OutboundMail
    from mailgw import rules
    from mailgw.parsing import parse_message
    from tests.mail_builders import deliver

    first = build(subject="Awaria", message_id="<seen-a@client.example>")
    row = deliver(session, blobs, first)
    assert row.state == "processed"
    ours = "<ack-seen@support.example>"
    session.add(
        OutboundMail(message_id=ours, ticket_id=row.ticket_id, template="ack", to_addr="x@y.pl")
    )
    ticket = session.get(Ticket, row.ticket_id)
    assert ticket is not None
    append_event(
        session,
        ticket,
        "comment",
        author=world.users["technician"],
        at=NOW,
        message_id="<typed@support.example>",
    )
    session.flush()
    raws = [
        first,  # the same bytes again
        build(subject="Re: Awaria", message_id="<seen-a@client.example>"),  # other bytes
        build(subject="Odbite", message_id=ours),
        build(subject="Z konsoli", message_id="<typed@support.example>"),
        build(subject="Nowa", message_id="<seen-new@client.example>"),
    ]
    rows = [
        store_inbound(session, raw, source="smtp", blobs=blobs, envelope_to=[], now=NOW)
        for raw in raws
    ]
    mails = [(r, parse_message(raw, mail_domain=DOMAIN)) for r, raw in zip(rows, raws, strict=True)]
    together = rules.seen_many(session, mails)
    alone = {r.id: rules.seen(session, r, mail) for r, mail in mails}
    assert together == alone
    assert alone[rows[0].id].inbound_id == row.id and alone[rows[1].id].inbound_id == row.id
    assert alone[rows[2].id].outbound_id is not None
    assert alone[rows[3].id].event_id is not None
    assert alone[rows[4].id] == rules.Seen(None, None, None)
