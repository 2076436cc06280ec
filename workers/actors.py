"""The Dramatiq actors, declared on a given broker instead of at import time.

Actors are named ``domain.verb`` (``system.ping``, later ``mail.send``, ``sla.scan_due``) and
are always sent by that name, after the sender's transaction commits. Each actor takes ids or
keys, not objects, opens its own unit of work, re-reads the state and returns early when the
work is already done: a message may arrive twice (a worker dies before the ack, a sweep
re-sends it), so running it twice must change nothing (Polar's ``server/polar/worker``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.db import unit_of_work
from core.models import JobRun

log = logging.getLogger(__name__)

SYSTEM_QUEUE = "system"


def record_ping(session_factory: sessionmaker[Session], key: str) -> bool:
    """Record that ``system.ping`` ran for ``key``; False when it had already run.

    Used by the broker tests and by health checks to prove that a job went through the whole
    path: commit, dispatch, broker, worker, database.
    """
    try:
        with unit_of_work(session_factory) as session:
            done = session.scalar(
                select(JobRun.id).where(JobRun.actor == "system.ping", JobRun.key == key)
            )
            if done is not None:
                log.info("system.ping %s: already recorded, nothing to do", key)
                return False
            session.add(JobRun(actor="system.ping", key=key))
    except IntegrityError:
        # Two deliveries of the same message raced past the check above; the unique
        # (actor, key) constraint let exactly one of them in, which is the outcome we want.
        log.info("system.ping %s: recorded concurrently by another delivery", key)
        return False
    log.info("system.ping %s: recorded", key)
    return True


def register_actors(
    broker: dramatiq.Broker,
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    queue_prefix: str = "",
) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare every actor on ``broker``; returns them by name.

    Every process that sends jobs needs this too, not only the workers: a message is routed
    to the queue its actor was declared with. ``queue_prefix`` keeps test runs on a shared
    RabbitMQ apart; production leaves it empty.
    """
    del settings  # not needed by system.ping; mail.send and the SLA actors will read it

    actors: dict[str, dramatiq.Actor[Any, Any]] = {}

    def declare(fn: Callable[..., Any], name: str, queue: str, **options: Any) -> None:
        actors[name] = dramatiq.actor(
            broker=broker, actor_name=name, queue_name=queue_prefix + queue, **options
        )(fn)

    def ping(key: str) -> None:
        record_ping(session_factory, key)

    # A ping is cheap and only proves the path works; a few quick retries are enough.
    declare(ping, "system.ping", SYSTEM_QUEUE, max_retries=3, min_backoff=500)
    return actors
