"""``pulpit health``: does what every part needs answer, with this process's own settings?

The web console has ``/api/v1/health`` and the mail gateway answers SMTP, so a container
health check can ask them directly. Workers and the scheduler listen on nothing; what they need
to do their work is the database (with Pulpit's schema in it) and the broker, reached with
their own URLs and credentials. This check runs inside their container and asks exactly that,
so a part cut off from either shows as unhealthy (``deploy/compose/compose.yaml``).

It is meant to run every minute or so: it opens one connection to each, asks one question and
closes them, imports neither the ORM nor Dramatiq, and gives up on each after a few seconds.
"""

from __future__ import annotations

import logging
from typing import Any

from config.settings import Settings
from pulpit.errors import EXIT_FAILURE, CommandError

# Seconds to wait for each service before calling it unreachable; a container health check
# gives the whole command about ten.
CONNECT_TIMEOUT_SECONDS = 4


def check_database(settings: Settings) -> str:
    """Connect, check that Pulpit's schema is there, and return its revision for the report."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    url = make_url(settings.resolved_database_url)
    shown = url.render_as_string(hide_password=True)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            try:
                revision = connection.scalar(text("SELECT version_num FROM alembic_version"))
            except Exception as exc:
                if "alembic_version" in str(exc):
                    raise CommandError(
                        f"the database {shown} answers but has no Pulpit schema yet; "
                        "run `pulpit db upgrade`",
                        EXIT_FAILURE,
                    ) from None
                raise
    except CommandError:
        raise
    except Exception as exc:
        raise CommandError(
            f"the database {shown} does not answer: {_first_line(exc)}", EXIT_FAILURE
        ) from None
    finally:
        engine.dispose()
    if not revision:
        raise CommandError(
            f"the database {shown} has no schema revision; run `pulpit db upgrade`", EXIT_FAILURE
        )
    return f"database {shown} at revision {revision}"


def check_broker(settings: Settings) -> str:
    """Ask the broker for a round trip (Redis PING, an AMQP connection opened and closed)."""
    url = settings.broker_url
    shown = _shown(url)
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                socket_timeout=CONNECT_TIMEOUT_SECONDS,
            )
            try:
                client.ping()
            finally:
                client.close()
        elif url.startswith(("amqp://", "amqps://")):
            import pika

            # pika logs each failed step of its connection workflow, with a traceback, at
            # ERROR; the one sentence below says the same once.
            logging.getLogger("pika").setLevel(logging.CRITICAL)
            parameters = pika.URLParameters(url)
            parameters.socket_timeout = CONNECT_TIMEOUT_SECONDS
            parameters.connection_attempts = 1
            pika.BlockingConnection(parameters).close()
        else:
            # memory:// lives inside one process; there is nothing outside it to ask.
            return f"broker {shown} (inside the process; nothing to reach)"
    except Exception as exc:
        raise CommandError(
            f"the broker {shown} does not answer: {_first_line(exc)}", EXIT_FAILURE
        ) from None
    return f"broker {shown} answers"


def check(settings: Settings) -> list[str]:
    """Every check in turn; the first failure ends the command with its sentence."""
    return [check_database(settings), check_broker(settings)]


def _first_line(exc: BaseException) -> str:
    """The first line of an error; pika's errors say it only in their repr."""
    text = str(exc).strip() or repr(exc)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _shown(url: str) -> str:
    """``redis://:secret@host`` as ``redis://:***@host``, for messages and the report
    (SQLAlchemy's URL parser reads any ``scheme://user:password@host`` form)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@", 1)[-1]  # unreadable: at least never the password
