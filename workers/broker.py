"""Choosing the Dramatiq broker from the settings and sending jobs to it by actor name.

The broker is picked by the scheme of ``PULPIT_BROKER_URL`` (Warehouse's habit: backends are
chosen by a setting, never by ``if testing``):

* ``memory://`` -- Dramatiq's ``StubBroker``; jobs are consumed by worker threads inside the
  same process (``pulpit serve``), so nothing survives a restart. The database stays the source
  of truth, and the scheduler's sweeps pick up whatever a lost job should have done.
* ``redis://`` / ``rediss://`` -- ``RedisBroker``.
* ``amqp://`` / ``amqps://`` -- ``RabbitmqBroker``.

Core never imports Dramatiq: it buffers jobs on the session (``core.db.enqueue``) and hands
them, after the commit, to the dispatcher installed here (Polar's pattern).
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from core.db import Dispatcher, set_dispatcher

log = logging.getLogger(__name__)

MEMORY_SCHEMES = ("memory://",)
REDIS_SCHEMES = ("redis://", "rediss://")
AMQP_SCHEMES = ("amqp://", "amqps://")


class BrokerUrlError(ValueError):
    """The broker URL has a scheme Pulpit does not know."""


def is_memory_broker(url: str) -> bool:
    """True for the in-process broker, whose queues only a worker in the same process sees."""
    return url.startswith(MEMORY_SCHEMES)


def make_broker(url: str, *, namespace: str | None = None) -> dramatiq.Broker:
    """Build the Dramatiq broker for ``url``; connects lazily, on the first send or consume.

    ``namespace`` prefixes the Redis keys (default ``dramatiq``); tests use it to keep their
    queues apart. It is ignored by the other brokers.
    """
    if is_memory_broker(url):
        return StubBroker()
    if url.startswith(REDIS_SCHEMES):
        from dramatiq.brokers.redis import RedisBroker

        kwargs: dict[str, Any] = {"url": url}
        if namespace:
            kwargs["namespace"] = namespace
        return RedisBroker(**kwargs)
    if url.startswith(AMQP_SCHEMES):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    raise BrokerUrlError(
        f"broker URL {url!r} is not supported; use memory://, redis://, rediss://, amqp:// "
        "or amqps://"
    )


def make_dispatcher(broker: dramatiq.Broker) -> Dispatcher:
    """A function that sends a job to ``broker`` by actor name, as ``core.db`` expects."""

    def dispatch(actor_name: str, kwargs: dict[str, Any]) -> None:
        # get_actor raises ActorNotFound for a name nobody registered; core.db logs that and
        # leaves the work to a sweep, so a typo never loses the committed change itself.
        broker.get_actor(actor_name).send(**kwargs)

    return dispatch


def install_dispatcher(broker: dramatiq.Broker) -> Dispatcher:
    """Make jobs buffered with ``core.db.enqueue`` go to ``broker`` once their commit is done.

    The actors must already be declared on ``broker`` (``workers.actors.register_actors``),
    because a message is routed to the queue its actor was declared with.
    """
    dispatch = make_dispatcher(broker)
    set_dispatcher(dispatch)
    return dispatch


def uninstall_dispatcher() -> None:
    """Stop sending jobs (on shutdown); later jobs are left to the scheduler's sweeps."""
    set_dispatcher(None)
