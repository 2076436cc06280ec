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
