"""The outbox for outgoing mail, from ``queue_mail`` to bytes arriving at a real SMTP server.

The first part pins the rules of ``core.mail.outbox`` inside a rolled-back transaction on SQLite
and PostgreSQL. The second runs the whole path on a fresh, migrated database per test: a unit of
work queues a mail, the after-commit dispatcher sends ``mail.send`` to a memory:// broker, a
real ``dramatiq.Worker`` renders and sends it over SMTP to an aiosmtpd sink on 127.0.0.1, and
the scheduler's sweep drives retries. Time is a ``FrozenClock`` shared by the queueing code, the
actor and the sweep, so back-off is tested by moving the clock, not by sleeping. The last part
covers the delivery backends themselves (log://, null://, AUTH, STARTTLS, smtps://).
"""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from dramatiq import Message
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.clock import FrozenClock
from core.contracts.models import Status
from core.db import unit_of_work
from core.directory.models import User
from core.mail.models import OutboundMail
from core.mail.outbox import (
    MAX_ATTEMPTS,
    claim,
    due_for_sweep,
    mark_failed,
    mark_retry,
    queue_mail,
    release_stale,
    retry_delay,
    sla_context,
)
from core.tickets.models import Ticket, TicketEvent
from mailgw.outbound import (
    PermanentDeliveryError,
    RelayConfigurationError,
    TemporaryDeliveryError,
    build_message,
    mail_domain,
    render,
    send,
)
from tests.conftest import migrated_database
from tests.smtp_sink import SmtpSink, smtp_sink_fixture  # noqa: F401
from workers import actors
from workers.actors import register_actors, send_outbound_mail
from workers.broker import install_dispatcher, make_broker, uninstall_dispatcher
from workers.runner import WorkerHandle, start_in_process_worker
from workers.scheduler import default_tasks, sweep_outbox

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
DOMAIN = "desk.example"
CLIENT = "anna@acme.example"
SUBJECT = "Drukarka nie drukuje – żółta kartka"


def make_ticket(session: Session, number: int = 1042, subject: str = SUBJECT) -> Ticket:
    """The least a ticket needs, built directly so these tests do not depend on the SLA code."""
    ticket = Ticket(
        number=number,
        subject=subject,
        status=Status(name=f"New {number}", category="new"),
        status_category="new",
        requester=User(email=f"requester{number}@acme.example", role="client"),
    )
    session.add(ticket)
    session.flush()
    return ticket


def warning_context(ticket: Ticket) -> dict[str, Any]:
    return sla_context(
        ticket,
        clock="reaction",
        due=T0 + timedelta(hours=1),
        used_percent=80,
        public_url=f"https://{DOMAIN}",
    )


def queue_warning(session: Session, ticket: Ticket, **overrides: Any) -> OutboundMail | None:
    kwargs: dict[str, Any] = dict(
        template="sla_warning",
        to=CLIENT,
        context=warning_context(ticket),
        ticket=ticket,
        mail_domain=DOMAIN,
        now=T0,
    )
    kwargs.update(overrides)
    return queue_mail(session, **kwargs)


# --- core.mail.outbox inside a rolled-back transaction --------------------------------------------


def test_a_queued_mail_is_one_pending_row_and_a_job_waiting_for_the_commit(
    session: Session,
) -> None:
    ticket = make_ticket(session)
    row = queue_warning(
        session,
        ticket,
        references=["<root@acme.example>", "client-1@acme.example"],
        reply_to="acme@support.example",
    )
    assert row is not None
    assert row.state == "pending" and row.attempts == 0 and row.next_attempt_at == T0
    assert row.message_id.startswith("<") and row.message_id.endswith(f"@{DOMAIN}>")
    assert row.ticket_id == ticket.id and row.to_addr == CLIENT and row.language == "pl"
    # In-Reply-To defaults to the last known id; References keeps the thread, oldest first.
    assert row.headers == {
        "Auto-Submitted": "auto-generated",
        "In-Reply-To": "<client-1@acme.example>",
        "References": "<root@acme.example> <client-1@acme.example>",
        "Reply-To": "acme@support.example",
    }
    assert row.context["ticket_number"] == 1042
    assert row.context["due"] == "2026-11-27T10:00:00+00:00"
    # Sent by name once the caller commits, never before (core.db's after-commit buffer).
    assert session.info["pending_jobs"] == [("mail.send", {"outbound_id": row.id})]


def test_the_parent_message_is_added_to_references(session: Session) -> None:
    ticket = make_ticket(session)
    row = queue_warning(
        session,
        ticket,
        auto_submitted="auto-replied",
        in_reply_to="<client-2@acme.example>",
        references=["<root@acme.example>"],
    )
    assert row is not None
    assert row.headers["In-Reply-To"] == "<client-2@acme.example>"
    assert row.headers["References"] == "<root@acme.example> <client-2@acme.example>"
    assert row.headers["Auto-Submitted"] == "auto-replied"


def test_a_dedupe_key_queues_a_notification_once(session: Session) -> None:
    ticket = make_ticket(session)
    key = f"sla:{ticket.number}:reaction:warning:2026-11-27T10:00Z:{CLIENT}"
    first = queue_warning(session, ticket, dedupe_key=key)
    second = queue_warning(session, ticket, dedupe_key=key)
    assert first is not None and second is None
    rows = session.scalars(select(OutboundMail).where(OutboundMail.dedupe_key == key)).all()
    assert [r.id for r in rows] == [first.id]
    assert session.info["pending_jobs"] == [("mail.send", {"outbound_id": first.id})]


def test_bad_input_is_refused_before_anything_is_stored(session: Session) -> None:
    ticket = make_ticket(session)
    with pytest.raises(ValueError, match="line break"):
        queue_warning(session, ticket, to="anna@acme.example\r\nBcc: all@acme.example")
    with pytest.raises(ValueError, match="not an e-mail address"):
        queue_warning(session, ticket, to="anna")
    with pytest.raises(TypeError, match="plain JSON"):
        queue_warning(session, ticket, context={"due": T0})
    with pytest.raises(ValueError, match="template name"):
        queue_warning(session, ticket, template="../secrets")
    assert session.scalars(select(OutboundMail)).all() == []


def test_claim_takes_a_due_pending_row_once(session: Session) -> None:
    row = queue_warning(session, make_ticket(session))
    assert row is not None
    assert claim(session, row.id, T0 - timedelta(seconds=1)) is None  # not due yet
    claimed = claim(session, row.id, T0)
    assert claimed is not None and claimed.state == "sending"
    assert claimed.attempts == 1 and claimed.claimed_at == T0
    assert claim(session, row.id, T0) is None  # already being sent
    assert claim(session, 999_999, T0) is None  # no such row


def test_retries_back_off_exponentially_up_to_an_hour_then_give_up(session: Session) -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4, 7, 9)] == [
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(minutes=8),
        timedelta(hours=1),
        timedelta(hours=1),
    ]
    ticket = make_ticket(session)
    row = queue_warning(session, ticket)
    assert row is not None
    now = T0
    for attempt in range(1, MAX_ATTEMPTS):
        assert claim(session, row.id, now) is not None
        assert mark_retry(row, "451 4.3.0 Try again later", now) is None
        assert row.state == "pending" and row.next_attempt_at == now + retry_delay(attempt)
        now = row.next_attempt_at
    assert claim(session, row.id, now) is not None
    assert mark_retry(row, "451 4.3.0 Try again later", now) is not None
    assert row.state == "failed" and f"after {MAX_ATTEMPTS} attempts" in (row.last_error or "")


def test_a_permanent_failure_leaves_an_internal_note_on_the_ticket(session: Session) -> None:
    ticket = make_ticket(session)
    row = queue_warning(session, ticket)
    assert row is not None
    failure = mark_failed(row, "550 5.1.1 No such mailbox here", now=T0, subject="Subject [#1042]")
    assert failure is not None and failure.row is row and failure.subject == "Subject [#1042]"
    assert mark_failed(row, "550 again", now=T0) is None  # already failed: no second note
    session.flush()
    events = session.scalars(
        select(TicketEvent).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.type == "email_out"
        )
    ).all()
    assert len(events) == 1
    event = events[0]
    assert event.public is False and event.message_id == row.message_id
    assert event.data["delivery_failed"] == "550 5.1.1 No such mailbox here"
    assert event.data["to"] == CLIENT and event.data["subject"] == "Subject [#1042]"


def test_a_mail_without_a_ticket_fails_without_a_note(session: Session) -> None:
    row = queue_mail(
        session, template="test_mail", to=CLIENT, context={"url": "x"}, mail_domain=DOMAIN, now=T0
    )
    assert row is not None
    mark_failed(row, "550 no", now=T0)
    assert row.state == "failed" and row.ticket_id is None


def test_the_sweep_finds_due_retries_and_stale_claims_but_leaves_fresh_jobs_alone(
    session: Session,
) -> None:
    ticket = make_ticket(session)
    fresh = queue_warning(session, ticket, dedupe_key="fresh")
    retry = queue_warning(session, ticket, dedupe_key="retry")
    stale = queue_warning(session, ticket, dedupe_key="stale")
    sent = queue_warning(session, ticket, dedupe_key="sent")
    assert fresh and retry and stale and sent
    for row in (retry, stale, sent):
        claim(session, row.id, T0)
    mark_retry(retry, "451", T0)  # due at T0 + 1 min
    sent.state = "sent"
    session.flush()

    # The job sent after the commit gets SWEEP_GRACE to arrive before a sweep doubles it.
    assert due_for_sweep(session, T0 + timedelta(seconds=10)) == []
    assert due_for_sweep(session, T0 + timedelta(seconds=31)) == [fresh.id]
    # At most one job per row per grace period; a doubled job costs mail.send one UPDATE.
    assert due_for_sweep(session, T0 + timedelta(seconds=45)) == []
    # The retry is due at T0 + 1 min; fresh is still pending, so it goes again too.
    assert due_for_sweep(session, T0 + timedelta(seconds=70)) == [fresh.id, retry.id]
    # A claim older than stale_after belongs to a dead worker: back to pending, sent again.
    later = T0 + timedelta(minutes=11)
    assert release_stale(session, later) == []
    assert sorted(due_for_sweep(session, later)) == sorted([fresh.id, retry.id, stale.id])
    session.refresh(stale)
    assert stale.state == "pending" and "stopped while sending" in (stale.last_error or "")
    session.refresh(sent)
    assert sent.state == "sent"


# --- The whole path: commit, broker, worker, SMTP --------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def factory(backend_name: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A fresh migrated database per test: the worker threads need committed data."""
    with migrated_database(backend_name, tmp_path) as factory:
        yield factory


class Desk:
    """One Pulpit instance for a test: settings, a memory:// broker, a worker, a clock."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, clock: FrozenClock):
        self.factory = factory
        self.settings = settings
        self.clock = clock
        self.worker: WorkerHandle | None = None
        self.broker = self._wire()

    def _wire(self) -> Any:
        broker = make_broker("memory://")
        register_actors(broker, self.factory, self.settings, clock=self.clock)
        install_dispatcher(broker)
        return broker

    def start_worker(self) -> Desk:
        self.worker = start_in_process_worker(self.broker, threads=2)
        return self

    def restart_broker(self) -> None:
        """What a restart of `pulpit serve` does to a memory:// queue: it is gone."""
        self.close()
        self.broker = self._wire()
        self.start_worker()

    def settle(self) -> None:
        assert self.worker is not None
        self.worker.join(timeout_seconds=20)

    def queue(self, **overrides: Any) -> int:
        with unit_of_work(self.factory) as session:
            ticket = session.scalar(select(Ticket).where(Ticket.number == 1042))
            if ticket is None:
                ticket = make_ticket(session)
            kwargs: dict[str, Any] = dict(
                template="sla_warning",
                to=CLIENT,
                context=warning_context(ticket),
                ticket=ticket,
                mail_domain=mail_domain(self.settings),
                now=self.clock(),
            )
            kwargs.update(overrides)
            row = queue_mail(session, **kwargs)
            assert row is not None
            return row.id

    def sweep(self) -> list[int]:
        ids = sweep_outbox(self.factory, self.clock())
        self.settle()
        return ids

    def row(self, outbound_id: int) -> OutboundMail:
        with self.factory() as session:
            row = session.get(OutboundMail, outbound_id)
            assert row is not None
            return row

    def failure_notes(self) -> list[TicketEvent]:
        with self.factory() as session:
            return list(
                session.scalars(select(TicketEvent).where(TicketEvent.type == "email_out")).all()
            )

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        uninstall_dispatcher()
        self.broker.close()


@pytest.fixture
def desk_factory(
    factory: sessionmaker[Session], smtp_sink: SmtpSink, tmp_path: Path
) -> Iterator[Any]:
    desks: list[Desk] = []

    def make(start_worker: bool = True) -> Desk:
        settings = Settings(
            outbound_smtp_url=smtp_sink.url, public_url=f"https://{DOMAIN}", data_dir=tmp_path
        )
        desk = Desk(factory, settings, FrozenClock(T0))
        desks.append(desk)
        return desk.start_worker() if start_worker else desk

    yield make
    for desk in desks:
        desk.close()


@pytest.fixture
def desk(desk_factory: Any) -> Desk:
    return desk_factory()  # type: ignore[no-any-return]


def test_a_queued_mail_is_sent_once_with_headers_that_thread_and_stop_auto_replies(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    outbound_id = desk.queue(
        in_reply_to="<client-1@acme.example>", references=["<root@acme.example>"]
    )
    desk.settle()
    [mail] = smtp_sink.wait_for(1)
    row = desk.row(outbound_id)
    msg = mail.message

    assert mail.mail_from == f"pulpit@{DOMAIN}" and mail.rcpt_tos == (CLIENT,)
    assert msg["Message-ID"] == row.message_id
    assert msg["From"] == f"Pulpit <pulpit@{DOMAIN}>" and msg["To"] == CLIENT
    assert parsedate_to_datetime(msg["Date"]) == T0
    assert msg["In-Reply-To"] == "<client-1@acme.example>"
    assert msg["References"] == "<root@acme.example> <client-1@acme.example>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Subject"] == f"Zbliża się termin reakcji: {SUBJECT} [#1042]"
    # Polish letters travel as RFC 2047 encoded-words and QP/base64 bodies: pure ASCII on the
    # wire, readable everywhere, no 8BITMIME needed.
    assert mail.data.isascii() and b"=?utf-8?" in mail.data.lower()

    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert f"Zgłoszenie #1042 „{SUBJECT}” wykorzystało 80% czasu na reakcję." in text.get_content()
    assert "piątek, 27 listopada 2026, 11:00 (Europe/Warsaw)" in text.get_content()
    assert f"https://{DOMAIN}/tickets/1042" in text.get_content()
    assert f'href="https://{DOMAIN}/tickets/1042"' in html.get_content()

    assert row.state == "sent" and row.sent_at == T0 and row.attempts == 1

    # The same job delivered again, and a sweep an hour later: nothing more is sent.
    desk.broker.get_actor("mail.send").send(outbound_id=outbound_id)
    desk.clock.advance(hours=1)
    assert desk.sweep() == []
    desk.settle()
    assert len(smtp_sink.messages) == 1


def test_a_rolled_back_transaction_sends_nothing(desk: Desk, smtp_sink: SmtpSink) -> None:
    with pytest.raises(RuntimeError), unit_of_work(desk.factory) as session:
        ticket = make_ticket(session)
        queue_warning(session, ticket)
        raise RuntimeError("the request failed after queueing the mail")
    desk.settle()
    desk.clock.advance(hours=1)
    assert desk.sweep() == []
    with desk.factory() as session:
        assert session.scalars(select(OutboundMail)).all() == []
    assert smtp_sink.messages == []


def test_a_relay_that_is_down_gets_the_mail_later_exactly_once(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    smtp_sink.stop()
    outbound_id = desk.queue()
    desk.settle()
    row = desk.row(outbound_id)
    assert row.state == "pending" and row.attempts == 1
    assert row.next_attempt_at == T0 + timedelta(minutes=1)
    assert "ConnectionRefusedError" in (row.last_error or "")

    smtp_sink.start()
    desk.clock.advance(seconds=30)
    assert desk.sweep() == []  # the back-off is not over
    desk.clock.advance(seconds=31)
    assert desk.sweep() == [outbound_id]
    smtp_sink.wait_for(1)
    row = desk.row(outbound_id)
    assert row.state == "sent" and row.attempts == 2

    desk.clock.advance(hours=2)
    assert desk.sweep() == []
    assert len(smtp_sink.messages) == 1


def test_a_451_is_retried(desk: Desk, smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse(451, times=1)
    outbound_id = desk.queue()
    desk.settle()
    row = desk.row(outbound_id)
    assert row.state == "pending" and (row.last_error or "").startswith(f"{CLIENT}: 451")
    desk.clock.advance(minutes=1, seconds=1)
    assert desk.sweep() == [outbound_id]
    smtp_sink.wait_for(1)
    assert desk.row(outbound_id).state == "sent"


def test_a_550_fails_for_good_and_shows_on_the_ticket_timeline(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    smtp_sink.refuse(550)
    outbound_id = desk.queue()
    desk.settle()
    row = desk.row(outbound_id)
    assert row.state == "failed" and row.attempts == 1
    [note] = desk.failure_notes()
    assert note.public is False and note.message_id == row.message_id
    assert "550" in note.data["delivery_failed"] and note.data["to"] == CLIENT
    assert note.data["subject"].endswith("[#1042]")
    desk.clock.advance(hours=5)
    assert desk.sweep() == []
    assert smtp_sink.messages == []


def test_a_relay_that_keeps_deferring_makes_the_mail_fail_after_the_last_attempt(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    smtp_sink.refuse(451)
    outbound_id = desk.queue()
    desk.settle()
    for _ in range(MAX_ATTEMPTS - 1):
        desk.clock.advance(hours=1)
        assert desk.sweep() == [outbound_id]
    row = desk.row(outbound_id)
    assert row.state == "failed" and row.attempts == MAX_ATTEMPTS
    [note] = desk.failure_notes()
    assert f"gave up after {MAX_ATTEMPTS} attempts" in note.data["delivery_failed"]
    assert smtp_sink.messages == []


def test_a_doubled_job_sends_one_mail(desk_factory: Any, smtp_sink: SmtpSink) -> None:
    desk = desk_factory(start_worker=False)
    outbound_id = desk.queue()
    for _ in range(3):  # as a redelivery or an eager sweep would
        desk.broker.get_actor("mail.send").send(outbound_id=outbound_id)
    desk.start_worker()
    desk.settle()
    smtp_sink.wait_for(1)
    assert len(smtp_sink.messages) == 1
    assert desk.row(outbound_id).attempts == 1


def _queue_many(desk: Desk, count: int) -> list[int]:
    return [desk.queue(to=f"klient{n}@acme.example") for n in range(count)]


def test_one_job_takes_the_due_rows_along_over_one_connection(
    desk_factory: Any, smtp_sink: SmtpSink
) -> None:
    desk = desk_factory(start_worker=False)
    ids = _queue_many(desk, 5)
    assert send_outbound_mail(desk.factory, desk.settings, ids[2], clock=desk.clock) == "sent"
    got = smtp_sink.wait_for(5)
    assert len(got) == 5 and len({m.peer for m in got}) == 1
    # Its own row first, then the others in the order they were queued.
    assert got[0].rcpt_tos == ("klient2@acme.example",)
    assert [m.rcpt_tos[0] for m in got[1:]] == [f"klient{n}@acme.example" for n in (0, 1, 3, 4)]
    for outbound_id in ids:
        row = desk.row(outbound_id)
        assert (row.state, row.attempts) == ("sent", 1)
    # The other rows' own jobs arrive later and find nothing to do: in this process, which
    # sent them, without a statement (core.db.DoneRecently); asked again, with one read.
    statements: list[str] = []
    engine = desk.factory.kw["bind"]
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        for outbound_id in ids:
            if outbound_id != ids[2]:
                assert send_outbound_mail(
                    desk.factory, desk.settings, outbound_id, clock=desk.clock
                ) == ("skipped")
        assert statements == []
        for outbound_id in ids:
            assert send_outbound_mail(
                desk.factory, desk.settings, outbound_id, clock=desk.clock
            ) == ("skipped")
        assert statements  # the read the memo saved
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(smtp_sink.messages) == 5


def _queue_together(desk: Desk, count: int) -> list[int]:
    """``count`` mails queued in one transaction, as a batch of inbound mail does."""
    with unit_of_work(desk.factory) as session:
        ticket = make_ticket(session)
        ids = []
        for n in range(count):
            row = queue_warning(session, ticket, to=f"klient{n}@acme.example")
            assert row is not None
            ids.append(row.id)
    return ids


def test_the_mails_of_one_commit_share_a_job_for_every_twenty(
    desk_factory: Any, smtp_sink: SmtpSink
) -> None:
    desk = desk_factory(start_worker=False)
    ids = _queue_together(desk, 45)
    [queue] = [q for name, q in desk.broker.queues.items() if name.endswith("mail")]
    jobs = [Message.decode(m).kwargs for m in list(queue.queue)]  # StubBroker's queue
    assert jobs == [
        {"outbound_id": ids[0], "also": ids[1:20]},
        {"outbound_id": ids[20], "also": ids[21:40]},
        {"outbound_id": ids[40], "also": ids[41:]},
    ]
    desk.start_worker()
    desk.settle()
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.wait_for(45)) == sorted(
        f"klient{n}@acme.example" for n in range(45)
    )
    assert {(desk.row(i).state, desk.row(i).attempts) for i in ids} == {("sent", 1)}


def test_a_shared_job_sends_what_others_left_of_its_rows_and_nothing_if_they_took_all(
    desk_factory: Any, smtp_sink: SmtpSink
) -> None:
    desk = desk_factory(start_worker=False)
    ids = _queue_together(desk, 40)
    first, second = (ids[0], ids[1:20]), (ids[20], ids[21:40])

    def run(job: tuple[int, list[int]]) -> str:
        return send_outbound_mail(
            desk.factory, desk.settings, job[0], also=job[1], clock=desk.clock
        )

    # A sweep's job for one row of the second job takes the 19 oldest due along: all but the
    # last of the first job's rows.
    assert send_outbound_mail(desk.factory, desk.settings, ids[25], clock=desk.clock) == "sent"
    assert len(smtp_sink.wait_for(20)) == 20
    # The first job's own row is gone, but one of its rows is left: it sends that one, and
    # fills its batch with the due rows of the second job.
    assert run(first) == "skipped"
    assert len(smtp_sink.wait_for(40)) == 40
    # Nothing of the second job is left, and it takes nothing else.
    assert run(second) == "skipped"
    assert {(desk.row(i).state, desk.row(i).attempts) for i in ids} == {("sent", 1)}
    # Delivered again, both find nothing to do.
    assert run(first) == run(second) == "skipped"
    assert len(smtp_sink.messages) == 40


def test_a_shared_job_whose_rows_this_process_sent_ends_without_a_statement(
    desk_factory: Any, smtp_sink: SmtpSink
) -> None:
    desk = desk_factory(start_worker=False)
    ids = _queue_together(desk, 40)
    first, second = ids[:20], ids[20:]
    # The first job takes the second job's rows along.
    assert (
        send_outbound_mail(
            desk.factory, desk.settings, first[0], also=first[1:], clock=desk.clock, batch=40
        )
        == "sent"
    )
    assert len(smtp_sink.wait_for(40)) == 40
    statements: list[str] = []
    engine = desk.factory.kw["bind"]
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert (
            send_outbound_mail(
                desk.factory, desk.settings, second[0], also=second[1:], clock=desk.clock
            )
            == "skipped"
        )
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert statements == []
    assert len(smtp_sink.messages) == 40


def test_a_shared_job_sends_all_its_rows_even_past_its_batch_size(
    desk_factory: Any, smtp_sink: SmtpSink
) -> None:
    # No other job will come for them: a smaller batch only stops it taking others along.
    desk = desk_factory(start_worker=False)
    ids = _queue_together(desk, 12)
    mine, other = ids[:10], ids[10:]
    assert (
        send_outbound_mail(
            desk.factory, desk.settings, mine[0], also=mine[1:], clock=desk.clock, batch=4
        )
        == "sent"
    )
    assert len(smtp_sink.wait_for(10)) == 10
    assert [desk.row(i).state for i in mine] == ["sent"] * 10
    assert [desk.row(i).state for i in other] == ["pending"] * 2


def test_a_row_backing_off_stays_behind(desk_factory: Any, smtp_sink: SmtpSink) -> None:
    desk = desk_factory(start_worker=False)
    waiting, now = _queue_many(desk, 2)
    with unit_of_work(desk.factory) as session:
        row = session.get(OutboundMail, waiting)
        assert row is not None
        row.next_attempt_at = T0 + timedelta(minutes=4)  # a retry not due yet
    assert send_outbound_mail(desk.factory, desk.settings, now, clock=desk.clock) == "sent"
    assert len(smtp_sink.wait_for(1)) == 1
    assert desk.row(waiting).state == "pending" and desk.row(waiting).attempts == 0
    # A job for a row that is not due sends nothing, not even the due rows.
    assert send_outbound_mail(desk.factory, desk.settings, waiting, clock=desk.clock) == "skipped"


def test_a_refused_recipient_does_not_stop_the_batch(
    desk_factory: Any, smtp_sink: SmtpSink
) -> None:
    desk = desk_factory(start_worker=False)
    ids = _queue_many(desk, 3)
    smtp_sink.refuse(550, times=1)
    assert send_outbound_mail(desk.factory, desk.settings, ids[0], clock=desk.clock) == "failed"
    assert [m.rcpt_tos[0] for m in smtp_sink.wait_for(2)] == [
        "klient1@acme.example",
        "klient2@acme.example",
    ]
    assert [desk.row(i).state for i in ids] == ["failed", "sent", "sent"]
    assert len(desk.failure_notes()) == 1


def test_a_relay_that_is_down_fails_the_batch_once_and_each_row_backs_off(
    desk_factory: Any, smtp_sink: SmtpSink
) -> None:
    desk = desk_factory(start_worker=False)
    ids = _queue_many(desk, 4)
    smtp_sink.stop()
    assert send_outbound_mail(desk.factory, desk.settings, ids[0], clock=desk.clock) == "retry"
    for outbound_id in ids:
        row = desk.row(outbound_id)
        assert (row.state, row.attempts) == ("pending", 1)
        assert row.next_attempt_at == T0 + timedelta(minutes=1)
        assert "ConnectionRefusedError" in (row.last_error or "")
    smtp_sink.start()
    desk.clock.advance(minutes=1, seconds=1)
    desk.start_worker()  # the rows' own jobs, still queued, or the sweep's: whichever comes first
    desk.sweep()
    smtp_sink.wait_for(4)
    desk.settle()
    assert [desk.row(i).state for i in ids] == ["sent"] * 4
    assert len(smtp_sink.messages) == 4


class _WorkerStopping(BaseException):
    """What Dramatiq raises in a worker thread it interrupts."""


def test_a_worker_stopped_mid_batch_gives_the_unsent_rows_back(
    desk_factory: Any, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = desk_factory(start_worker=False)
    ids = _queue_many(desk, 3)
    real_send = actors.send
    calls: list[str] = []

    def send_then_stop(settings: Any, message: Any) -> None:
        calls.append(",".join(message.recipients))
        if len(calls) == 2:
            raise _WorkerStopping()
        real_send(settings, message)

    monkeypatch.setattr(actors, "send", send_then_stop)
    with pytest.raises(_WorkerStopping):
        send_outbound_mail(desk.factory, desk.settings, ids[0], clock=desk.clock)
    assert [(desk.row(i).state, desk.row(i).attempts) for i in ids] == [
        ("sent", 1),
        ("pending", 0),
        ("pending", 0),
    ]
    monkeypatch.setattr(actors, "send", real_send)
    assert send_outbound_mail(desk.factory, desk.settings, ids[1], clock=desk.clock) == "sent"
    assert len(smtp_sink.wait_for(3)) == 3


def test_workers_sending_overlapping_batches_send_every_row_once(
    factory: sessionmaker[Session], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    settings = Settings(
        outbound_smtp_url=smtp_sink.url, public_url=f"https://{DOMAIN}", data_dir=tmp_path
    )
    with unit_of_work(factory) as session:
        ticket = make_ticket(session)
        ids = []
        for n in range(40):
            row = queue_warning(session, ticket, to=f"klient{n}@acme.example")
            assert row is not None
            ids.append(row.id)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(order: list[list[int]]) -> None:
        try:
            barrier.wait()
            for outbound_id, *also in order:
                send_outbound_mail(
                    factory, settings, outbound_id, also=also, clock=lambda: T0, batch=7
                )
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    # Jobs of one row each, in three orders, and the shared jobs of a commit (also doubled).
    shared = [ids[n : n + 7] for n in range(0, 40, 7)]
    orders = [[[i] for i in ids], [[i] for i in ids[::-1]], shared[::-1], shared + shared]
    threads = [threading.Thread(target=worker, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    got = smtp_sink.wait_for(40)
    assert sorted(m.rcpt_tos[0] for m in got) == sorted(
        f"klient{n}@acme.example" for n in range(40)
    )
    with factory() as session:
        rows = session.scalars(select(OutboundMail)).all()
    assert {(r.state, r.attempts) for r in rows} == {("sent", 1)}


def test_two_workers_claiming_the_same_row_one_wins(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        row = queue_warning(session, make_ticket(session))
        assert row is not None
        outbound_id = row.id
    barrier = threading.Barrier(2)
    won: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            with unit_of_work(factory) as session:
                claimed = claim(session, outbound_id, T0)
                won.append(claimed is not None)
                # Hold the claim open a moment: the other finds the row locked or taken.
                threading.Event().wait(0.2)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert sorted(won) == [False, True]


# SQLite's BEGIN IMMEDIATE serialises the two writers before the check, so no race there.
@pytest.mark.parametrize("backend_name", ["postgres"])
def test_the_unique_dedupe_key_settles_a_race_that_the_check_cannot_see(
    factory: sessionmaker[Session],
) -> None:
    with unit_of_work(factory) as session:
        make_ticket(session)
    key = "sla:1042:reaction:warning:2026-11-27T10:00Z:anna@acme.example"
    results: list[Any] = []

    with unit_of_work(factory) as first:
        ticket = first.scalar(select(Ticket).where(Ticket.number == 1042))
        assert ticket is not None
        assert queue_warning(first, ticket, dedupe_key=key) is not None  # not committed yet

        def second_writer() -> None:
            with unit_of_work(factory) as second:
                other = second.scalar(select(Ticket).where(Ticket.number == 1042))
                assert other is not None
                queue_warning(second, other, dedupe_key="another notification")
                # The check sees nothing yet; the INSERT waits for the first writer's commit
                # and then hits the unique constraint.
                results.append(queue_warning(second, other, dedupe_key=key))
                results.append(list(second.info.get("pending_jobs", [])))

        thread = threading.Thread(target=second_writer)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # blocked on the first writer's unique key
    thread.join(20)
    lost, jobs = results
    assert lost is None
    # The job of the mail it did queue survived the savepoint's rollback.
    assert [name for name, _ in jobs] == ["mail.send"]
    with factory() as session:
        keys = session.scalars(select(OutboundMail.dedupe_key)).all()
    assert sorted(k for k in keys if k) == sorted([key, "another notification"])


def test_the_sweep_resends_a_mail_whose_job_was_lost_with_the_broker(
    desk_factory: Any, smtp_sink: SmtpSink
) -> None:
    desk = desk_factory(start_worker=False)
    outbound_id = desk.queue()  # the job waits in a memory:// queue that nobody consumes
    desk.restart_broker()  # ... and is lost with it
    desk.clock.advance(seconds=10)
    assert desk.sweep() == []  # the job after the commit might still be on its way
    desk.clock.advance(seconds=25)
    assert desk.sweep() == [outbound_id]
    smtp_sink.wait_for(1)
    assert desk.row(outbound_id).state == "sent"


def test_the_sweep_reclaims_a_row_a_dead_worker_left_sending(
    desk: Desk, smtp_sink: SmtpSink
) -> None:
    with unit_of_work(desk.factory) as session:
        row = queue_warning(session, make_ticket(session))
        assert row is not None
        outbound_id = row.id
        # A worker claimed it, committed, and died before it could send or record anything.
        assert claim(session, outbound_id, T0) is not None
    desk.settle()
    assert smtp_sink.messages == [] and desk.row(outbound_id).state == "sending"

    desk.clock.advance(minutes=5)
    assert desk.sweep() == []  # it may still be talking to a slow relay
    desk.clock.advance(minutes=6)
    assert desk.sweep() == [outbound_id]
    smtp_sink.wait_for(1)
    row = desk.row(outbound_id)
    assert row.state == "sent" and row.attempts == 2


def test_the_scheduler_runs_the_outbox_sweep_every_15_seconds() -> None:
    [task] = [t for t in default_tasks(Settings()) if t.name == "mail.sweep"]
    assert task.interval_seconds == 15 and task.fn is sweep_outbox


# --- The delivery backends -------------------------------------------------------------------


def transient_row(**overrides: Any) -> OutboundMail:
    values: dict[str, Any] = dict(
        id=1,
        created_at=T0,
        message_id=f"<backend-test@{DOMAIN}>",
        template="test_mail",
        language="pl",
        to_addr=CLIENT,
        context={"url": f"https://{DOMAIN}"},
        headers={"Auto-Submitted": "auto-generated"},
    )
    values.update(overrides)
    return OutboundMail(**values)


def message_for(settings: Settings) -> Any:
    row = transient_row()
    return build_message(row, render(row.template, row.language, row.context), settings)


def test_log_backend_writes_the_mail_to_outbox_log_and_a_line_to_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(outbound_smtp_url="log://", data_dir=tmp_path / "var")
    caplog.set_level(logging.INFO, logger="mailgw.outbound")
    send(settings, message_for(settings))
    logged = (tmp_path / "var" / "outbox.log").read_text(encoding="utf-8")
    assert f"<backend-test@{DOMAIN}>" in logged
    assert "Subject: Wiadomość testowa z Pulpitu" in logged
    assert "Jeśli ją czytasz, wysyłka poczty działa." in logged
    # The process log gets one line naming the mail and where its text is, not the whole body.
    assert (
        f"<backend-test@{DOMAIN}>" in caplog.text and "Wiadomość testowa z Pulpitu" in caplog.text
    )
    assert "Jeśli ją czytasz" not in caplog.text


def test_null_backend_discards(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(outbound_smtp_url="null://", data_dir=tmp_path)
    caplog.set_level(logging.INFO, logger="mailgw.outbound")
    send(settings, message_for(settings))
    assert not (tmp_path / "outbox.log").exists()
    assert f"<backend-test@{DOMAIN}>" in caplog.text and "discarded" in caplog.text


def test_an_unreachable_relay_is_a_temporary_error() -> None:
    from tests.smtp_sink import free_port

    settings = Settings(outbound_smtp_url=f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(TemporaryDeliveryError, match="ConnectionRefused"):
        send(settings, message_for(settings))


def test_smtp_auth_uses_the_credentials_in_the_url() -> None:
    sink = SmtpSink(auth={"desk": "p@ss word"}).start()
    try:
        ok = Settings(outbound_smtp_url=f"smtp://desk:p%40ss%20word@127.0.0.1:{sink.port}")
        send(ok, message_for(ok))
        [mail] = sink.wait_for(1)
        assert mail.auth_user == "desk"
        wrong = Settings(outbound_smtp_url=f"smtp://desk:nope@127.0.0.1:{sink.port}")
        with pytest.raises(RelayConfigurationError, match="refused the login"):
            send(wrong, message_for(wrong))
    finally:
        sink.stop()


def test_a_550_is_permanent_and_a_451_temporary(smtp_sink: SmtpSink) -> None:
    settings = Settings(outbound_smtp_url=smtp_sink.url)
    smtp_sink.refuse(550, times=1)
    with pytest.raises(PermanentDeliveryError, match="550"):
        send(settings, message_for(settings))
    smtp_sink.refuse(451, times=1)
    with pytest.raises(TemporaryDeliveryError, match="451"):
        send(settings, message_for(settings))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls_contexts(certificate: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


def test_starttls_is_used_when_offered_and_login_happens_inside_it(
    certificate: tuple[Path, Path],
) -> None:
    server, client = tls_contexts(certificate)
    # auth_require_tls: the sink offers AUTH only after STARTTLS, as real relays do.
    sink = SmtpSink(auth={"desk": "secret"}, tls_context=server).start()
    try:
        settings = Settings(outbound_smtp_url=f"smtp://desk:secret@127.0.0.1:{sink.port}")
        send(settings, message_for(settings), ssl_context=client)
        [mail] = sink.wait_for(1)
        assert mail.auth_user == "desk"
        # The default context trusts only the system's CAs, so a self-signed relay is an
        # operator's problem to fix, not a reason to send in clear.
        with pytest.raises(RelayConfigurationError, match="not trusted"):
            send(settings, message_for(settings))
    finally:
        sink.stop()


def test_smtps_speaks_tls_from_the_first_byte(certificate: tuple[Path, Path]) -> None:
    server, client = tls_contexts(certificate)
    sink = SmtpSink(tls_context=server, implicit_tls=True).start()
    try:
        settings = Settings(outbound_smtp_url=sink.url)
        assert settings.outbound_smtp_url.startswith("smtps://")
        send(settings, message_for(settings), ssl_context=client)
        [mail] = sink.wait_for(1)
        assert mail.message["Message-ID"] == f"<backend-test@{DOMAIN}>"
    finally:
        sink.stop()
