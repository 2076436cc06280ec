"""Jobs go from a committed unit of work, through each broker, to a worker and the database.

The same round trip runs on ``memory://`` (the in-process broker of ``pulpit serve``), on a
real Redis and on a real RabbitMQ: ``core.db.enqueue`` inside a unit of work, the dispatcher
sends by actor name after the commit, a ``dramatiq.Worker`` runs ``system.ping``, and a
``JobRun`` row appears. A message delivered twice leaves one row (actors are idempotent), and
a rolled-back unit of work sends nothing.

Each test gets a fresh SQLite database migrated by Alembic, its own Redis namespace or
RabbitMQ queue names, and removes them afterwards, so reruns start clean. The scheduler, which
drives the periodic side of the same package, is tested at the end with an injected clock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.access.models import WebSession
from core.audit import JobRun
from core.clock import FrozenClock
from core.db import enqueue, make_engine, make_session_factory, unit_of_work, upgrade
from core.directory.models import User
from workers.actors import record_ping, register_actors
from workers.broker import (
    BrokerUrlError,
    install_dispatcher,
    is_memory_broker,
    make_broker,
    uninstall_dispatcher,
)
from workers.runner import start_in_process_worker
from workers.scheduler import PeriodicTask, Scheduler, default_tasks

DEADLINE_SECONDS = 20.0


@pytest.fixture
def session_factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def ping_rows(factory: sessionmaker[Session], key: str) -> int:
    with factory() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(JobRun)
                .where(JobRun.actor == "system.ping", JobRun.key == key)
            )
            or 0
        )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {DEADLINE_SECONDS:.0f} s")


def round_trip(
    broker: dramatiq.Broker,
    factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    *,
    queue_prefix: str = "",
) -> None:
    """The whole path, twice for the same key, and once rolled back."""
    caplog.set_level(logging.INFO, logger="workers.actors")
    register_actors(broker, factory, Settings(), queue_prefix=queue_prefix)
    install_dispatcher(broker)
    worker = start_in_process_worker(broker, threads=2)
    try:
        key = f"ping-{uuid.uuid4().hex}"
        # The same job sent twice, as a retried request or a sweep would.
        for _ in range(2):
            with unit_of_work(factory) as session:
                enqueue(session, "system.ping", key=key)

        rolled_back = f"never-{uuid.uuid4().hex}"
        with pytest.raises(RuntimeError), unit_of_work(factory) as session:
            enqueue(session, "system.ping", key=rolled_back)
            raise RuntimeError("the request failed after enqueueing")

        wait_for(lambda: ping_rows(factory, key) >= 1, "the system.ping row")
        # Wait for the second delivery to be handled, not merely for time to pass.
        wait_for(
            lambda: sum(key in r.getMessage() for r in caplog.records) >= 2,
            "the second system.ping delivery",
        )
        worker.join(timeout_seconds=DEADLINE_SECONDS)
        assert ping_rows(factory, key) == 1
        assert ping_rows(factory, rolled_back) == 0
    finally:
        worker.stop()
        uninstall_dispatcher()
        broker.close()


# --- The brokers -----------------------------------------------------------------------------


def test_memory_broker_runs_jobs_in_process(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker("memory://")
    assert is_memory_broker("memory://")
    round_trip(broker, session_factory, caplog)


@pytest.mark.redis
def test_redis_broker_round_trip(
    redis_url: str, session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    namespace = f"pulpit-test-{uuid.uuid4().hex[:12]}"
    broker = make_broker(redis_url, namespace=namespace)
    try:
        round_trip(broker, session_factory, caplog)
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.rabbitmq
def test_rabbitmq_broker_round_trip(
    amqp_url: str, session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    import pika

    prefix = f"t{uuid.uuid4().hex[:12]}_"
    broker = make_broker(amqp_url)
    try:
        round_trip(broker, session_factory, caplog, queue_prefix=prefix)
    finally:
        # Dramatiq declares each queue with a delay (.DQ) and a dead-letter (.XQ) companion.
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            channel = connection.channel()
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(f"{prefix}system{suffix}")
        finally:
            connection.close()


def test_unknown_broker_schemes_are_refused() -> None:
    with pytest.raises(BrokerUrlError, match="not supported"):
        make_broker("kafka://localhost:9092")


def test_brokers_do_not_connect_when_built() -> None:
    # Nothing listens on port 1: building must still work, so a process starts and reports
    # the broker's absence from the worker's log instead of failing at import or wiring.
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker

    assert isinstance(make_broker("redis://127.0.0.1:1/0"), RedisBroker)
    assert isinstance(make_broker("amqp://guest:guest@127.0.0.1:1/"), RabbitmqBroker)


def test_actors_are_named_domain_verb(session_factory: sessionmaker[Session]) -> None:
    broker = make_broker("memory://")
    actors = register_actors(broker, session_factory, Settings())
    assert "system.ping" in actors
    assert broker.get_actor("system.ping").queue_name == "system"
    assert all("." in name for name in actors)


def test_ping_is_idempotent_when_called_directly(session_factory: sessionmaker[Session]) -> None:
    assert record_ping(session_factory, "k") is True
    assert record_ping(session_factory, "k") is False
    assert ping_rows(session_factory, "k") == 1


def test_a_job_for_an_unknown_actor_does_not_undo_the_commit(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker("memory://")
    register_actors(broker, session_factory, Settings())
    install_dispatcher(broker)
    try:
        with unit_of_work(session_factory) as session:
            session.add(JobRun(actor="test.marker", key="kept"))
            enqueue(session, "no.such_actor", key="x")
    finally:
        uninstall_dispatcher()
    with session_factory() as session:
        assert session.scalar(select(JobRun.id).where(JobRun.key == "kept")) is not None
    assert "no.such_actor" in caplog.text


# --- The scheduler -----------------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def recorder() -> tuple[list[datetime], Callable[[Any, datetime], None]]:
    calls: list[datetime] = []

    def task(factory: Any, now: datetime) -> None:
        calls.append(now)

    return calls, task


def test_a_task_runs_at_the_first_tick_and_then_every_interval() -> None:
    clock = FrozenClock(T0)
    calls, task = recorder()
    scheduler = Scheduler(None, [PeriodicTask("t", 60, task)], clock=clock)  # type: ignore[arg-type]
    assert scheduler.tick() == ["t"]
    clock.advance(seconds=59)
    assert scheduler.tick() == []
    clock.advance(seconds=1)
    assert scheduler.tick() == ["t"]
    assert calls == [T0, T0 + timedelta(seconds=60)]


def test_a_failing_task_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FrozenClock(T0)
    calls, task = recorder()

    def broken(factory: Any, now: datetime) -> None:
        raise RuntimeError("boom")

    scheduler = Scheduler(
        None,  # type: ignore[arg-type]
        [PeriodicTask("broken", 60, broken), PeriodicTask("fine", 60, task)],
        clock=clock,
    )
    with caplog.at_level(logging.ERROR):
        assert scheduler.tick() == ["broken", "fine"]
    assert calls == [T0]
    assert "scheduled task broken failed" in caplog.text
    # Not retried at every tick: it waits for its interval like any other task.
    assert scheduler.tick() == []


def test_the_loop_stops_promptly_when_asked() -> None:
    stop = threading.Event()
    ran = threading.Event()
    scheduler = Scheduler(
        None,  # type: ignore[arg-type]
        [PeriodicTask("t", 3600, lambda factory, now: ran.set())],
        tick_seconds=30,
        stop_event=stop,
    ).start()
    assert ran.wait(5)
    started = time.monotonic()
    scheduler.stop()
    assert time.monotonic() - started < 5  # the 30 s tick wait is interrupted


def test_task_names_are_unique() -> None:
    _, task = recorder()
    with pytest.raises(ValueError, match="unique"):
        Scheduler(None, [PeriodicTask("t", 1, task), PeriodicTask("t", 2, task)])  # type: ignore[arg-type]


def test_default_tasks_purge_expired_web_sessions(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        user = User(email="ola@support.example", role="coordinator")
        session.add(user)
        session.flush()
        for name, expires in (("old", T0 - timedelta(hours=1)), ("live", T0 + timedelta(hours=1))):
            session.add(
                WebSession(
                    session_hash=name.ljust(64, "0"),
                    user_id=user.id,
                    csrf_token="c",
                    created_at=T0 - timedelta(hours=12),
                    expires_at=expires,
                )
            )

    tasks = default_tasks(Settings())
    assert len({task.name for task in tasks}) == len(tasks)
    Scheduler(session_factory, tasks, clock=FrozenClock(T0)).tick()

    with session_factory() as session:
        left = session.scalars(select(WebSession.session_hash)).all()
    assert left == ["live".ljust(64, "0")]
