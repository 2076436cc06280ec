"""``mail.process`` in batches (``mailgw.process.run_batch``, ``PULPIT_MAIL_BATCH``).

One job takes its own stored mail and the others waiting, processes them in one unit of work
and commits once; a batch that fails is redone mail by mail, so only the bad mail counts an
attempt; a mail another worker holds is skipped, not waited for.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from config.settings import SettingsError, load_settings
from core.blobs import BlobStore, DirectoryBlobStore
from core.db import unit_of_work
from core.mail.inbound import store_inbound
from core.mail.models import InboundMessage
from core.tickets.models import Ticket
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
    # The other mails' jobs find them done: one read each, nothing changes.
    assert batch(counting, rows[3].id, blobs) == "processed"
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


@pytest.mark.postgres
def test_a_batch_locks_the_tickets_it_answers_up_front_in_one_order(
    pg_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Two workers' batches answering tickets A and B in opposite orders deadlocked (seen in
    bench/run_ingest.sh); the tickets a batch's mails name are locked first, by id."""
    from mailgw.parsing import parse_message
    from mailgw.thread_match import lock_threads

    blobs = DirectoryBlobStore(tmp_path / "blobs")
    with unit_of_work(pg_factory) as session:
        build_world(session)
        ids = [
            store_inbound(
                session,
                build(subject=f"Awaria {i}", message_id=f"<t{i}@client.example>"),
                source="smtp",
                blobs=blobs,
            ).id
            for i in range(3)
        ]
    for inbound_id in ids:
        batch(pg_factory, inbound_id, blobs, size=1)
    with pg_factory() as session:
        numbers = {
            row.message_id: session.get(Ticket, row.ticket_id).number  # type: ignore[union-attr]
            for row in session.scalars(select(InboundMessage))
        }
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
