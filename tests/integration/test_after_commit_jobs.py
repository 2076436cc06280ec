"""Jobs buffered on a session leave only after the outermost commit; a savepoint rolled back
drops only its own jobs (a bug the outbox's dedupe race once hit)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from core.db import enqueue, set_dispatcher


@pytest.fixture
def sent() -> Any:
    jobs: list[tuple[str, dict[str, Any]]] = []
    set_dispatcher(lambda actor, kwargs: jobs.append((actor, kwargs)))
    yield jobs
    set_dispatcher(None)


def test_savepoint_rollback_keeps_earlier_jobs(engine: Engine, sent: list[Any]) -> None:
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        enqueue(session, "a.before", n=1)
        nested = session.begin_nested()
        enqueue(session, "b.inside", n=2)
        nested.rollback()
        enqueue(session, "c.after", n=3)
        assert sent == []
        session.commit()
    assert [name for name, _ in sent] == ["a.before", "c.after"]


def test_rollback_sends_nothing(engine: Engine, sent: list[Any]) -> None:
    with Session(engine) as session:
        session.execute(text("SELECT 1"))  # jobs belong to a transaction; this begins it
        enqueue(session, "a.job")
        session.rollback()
        session.commit()
    assert sent == []


def test_a_commits_mail_send_jobs_leave_as_one_job_for_every_twenty_mails(
    engine: Engine, sent: list[Any]
) -> None:
    # core.mail.outbox merges them (core.db.merge_jobs_of); other actors keep their place.
    import core.mail.outbox  # noqa: F401  registers the merger, as every process that sends does

    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        enqueue(session, "mail.process", inbound_id=7)
        for outbound_id in range(1, 46):
            enqueue(session, "mail.send", outbound_id=outbound_id)
            if outbound_id == 3:
                enqueue(session, "sla.check_ticket", ticket_id=9)
        session.commit()
    assert sent == [
        ("mail.process", {"inbound_id": 7}),
        ("mail.send", {"outbound_id": 1, "also": list(range(2, 21))}),
        ("mail.send", {"outbound_id": 21, "also": list(range(22, 41))}),
        ("mail.send", {"outbound_id": 41, "also": [42, 43, 44, 45]}),
        ("sla.check_ticket", {"ticket_id": 9}),
    ]


def test_a_single_mail_send_job_leaves_as_it_was(engine: Engine, sent: list[Any]) -> None:
    import core.mail.outbox  # noqa: F401

    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        enqueue(session, "mail.send", outbound_id=5)
        enqueue(session, "mail.process", inbound_id=7)
        session.commit()
    assert sent == [("mail.send", {"outbound_id": 5}), ("mail.process", {"inbound_id": 7})]
