"""Shared test fixtures: real services when reachable, clear skips when not.

Each outside service has a URL variable and a require variable:

==========  ==========================  =========================  ==========================
service     URL variable                default                    fails instead of skipping
==========  ==========================  =========================  ==========================
PostgreSQL  PULPIT_TEST_DATABASE_URL    postgresql+psycopg://postgres@127.0.0.1:5432/test
                                                                   PULPIT_REQUIRE_POSTGRES
Redis       PULPIT_TEST_REDIS_URL       redis://127.0.0.1:6379/15  PULPIT_REQUIRE_REDIS
RabbitMQ    PULPIT_TEST_AMQP_URL        amqp://guest:guest@127.0.0.1:5672/
                                                                   PULPIT_REQUIRE_RABBITMQ
Chromium    PULPIT_TEST_CHROMIUM        /usr/bin/chromium          PULPIT_REQUIRE_CHROMIUM
Dovecot     PULPIT_TEST_DOVECOT         /usr/sbin/dovecot          PULPIT_REQUIRE_DOVECOT
==========  ==========================  =========================  ==========================

Dovecot is started privately per test by ``tests/dovecot.py`` (import its fixture explicitly).

Database tests run in a transaction rolled back at the end (Warehouse's pattern), on a schema
built by the Alembic migrations, never by ``create_all``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from core.db import (
    SECRET_KEY_INFO,
    configure_secret_key,
    make_engine,
    make_session_factory,
    upgrade,
)

# The instance's secret key of the test sessions and factories (``core.db.secret_key``), as the
# entry points set it: mail about tickets gets signed reply addresses (core.mail.reply_address).
TEST_SECRET_KEY = "test-secret-key-for-signed-reply-addresses"

DEFAULTS = {
    "postgres": ("PULPIT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "redis": ("PULPIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "rabbitmq": ("PULPIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    "chromium": ("PULPIT_TEST_CHROMIUM", "/usr/bin/chromium"),
}


def _required(kind: str) -> bool:
    return os.environ.get(f"PULPIT_REQUIRE_{kind.upper()}", "") not in ("", "0", "false", "no")


def unavailable(kind: str, reason: str) -> None:
    """Skip, or fail when CI requires this service."""
    var = f"PULPIT_REQUIRE_{kind.upper()}"
    if _required(kind):
        pytest.fail(f"{kind} is required ({var} is set) but {reason}", pytrace=False)
    pytest.skip(f"{kind} not available: {reason} (set {var}=1 to make this a failure)")


def _reachable(url: str) -> str | None:
    parts = urlsplit(url.replace("+psycopg", ""))
    host, port = parts.hostname or "127.0.0.1", parts.port
    try:
        with socket.create_connection((host, port or 0), timeout=2):
            return None
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or exc})"


def service_url(kind: str) -> str:
    var, default = DEFAULTS[kind]
    url = os.environ.get(var) or default
    if kind == "chromium":
        if not Path(url).exists():
            unavailable(kind, f"no browser at {url} (apt-get install chromium)")
        return url
    problem = _reachable(url)
    if problem:
        unavailable(kind, problem)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return service_url("postgres")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return service_url("redis")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return service_url("rabbitmq")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return service_url("chromium")


def fresh_postgres_database(base_url: str) -> tuple[str, Engine]:
    """Create an empty database next to the test one; returns its URL and an admin engine."""
    admin = make_engine(base_url, isolation_level="AUTOCOMMIT")
    name = f"pulpit_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(base_url)
    return parts._replace(path=f"/{name}").geturl(), admin


def drop_postgres_database(admin: Engine, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def migrated_database(backend: str, directory: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a new database of its own, built by the migrations and removed afterwards.

    For code that commits from other threads or processes, which the rolled-back ``session``
    fixture cannot serve. ``backend`` is ``"sqlite"`` (a file in ``directory``) or
    ``"postgres"`` (a new database next to the test one, dropped at the end).
    """
    if backend == "sqlite":
        url, admin = f"sqlite:///{directory / 'pulpit.db'}", None
    else:
        url, admin = fresh_postgres_database(service_url("postgres"))
    engine = None
    try:
        upgrade(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        configure_secret_key(factory, TEST_SECRET_KEY)
        yield factory
    finally:
        if engine is not None:
            engine.dispose()
        if admin is not None:
            drop_postgres_database(admin, url)


@pytest.fixture
def pg_factory(postgres_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a new, migrated PostgreSQL database of this test's own."""
    with migrated_database("postgres", tmp_path) as factory:
        yield factory


@pytest.fixture(scope="session")
def _migrated_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Engines per backend, migrated once per test session; built lazily."""
    engines: dict[str, object] = {}
    yield engines
    for key, value in engines.items():
        if key.endswith(":cleanup"):
            value()  # type: ignore[operator]
        elif isinstance(value, Engine):
            value.dispose()


def _engine_for(backend: str, engines: dict[str, object], tmp: Path) -> Engine:
    if backend in engines:
        return engines[backend]  # type: ignore[return-value]
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'test.db'}"
        upgrade(url)
        engine = make_engine(url)
    else:
        base = service_url("postgres")
        url, admin = fresh_postgres_database(base)
        upgrade(url)
        engine = make_engine(url)
        engines[f"{backend}:cleanup"] = lambda: (
            engine.dispose(),
            drop_postgres_database(admin, url),
        )
    engines[backend] = engine
    return engine


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def engine(
    backend: str, _migrated_engines: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Engine:
    return _engine_for(backend, _migrated_engines, tmp_path_factory.getbasetemp())


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test.

    The code under test may commit: with ``create_savepoint`` its commits release savepoints
    inside our outer transaction, which we roll back.
    """
    conn = engine.connect()
    outer = conn.begin()
    sess = Session(
        bind=conn,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        info={SECRET_KEY_INFO: TEST_SECRET_KEY},
    )
    try:
        yield sess
    finally:
        sess.close()
        outer.rollback()
        conn.close()
