"""``pulpit health``: the check compose runs in the worker and scheduler containers.

It must pass only when the part's own settings reach a database with Pulpit's schema and a
broker that answers, and fail otherwise with exit code 1 and one line saying which and why.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulpit.cli import main
from tests.conftest import drop_postgres_database, fresh_postgres_database, migrated_database


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PULPIT_") and not name.startswith(("PULPIT_TEST_", "PULPIT_REQUIRE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PULPIT_DATA_DIR", str(tmp_path / "var"))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database's URL, of each backend; the checks only read it."""
    with migrated_database(request.param, tmp_path_factory.mktemp("health")) as factory:
        bind = factory.kw["bind"]
        yield bind.url.render_as_string(hide_password=False)


def closed_port() -> int:
    """A local port nothing listens on (bound and released again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["health"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.redis
def test_healthy_with_the_schema_and_redis(
    database_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PULPIT_DATABASE_URL", database_url)
    monkeypatch.setenv("PULPIT_BROKER_URL", redis_url)
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    database_line, broker_line = out.splitlines()
    assert database_line.startswith("database ") and " at revision " in database_line
    assert broker_line == f"broker {redis_url} answers"


@pytest.mark.rabbitmq
def test_healthy_with_rabbitmq(
    database_url: str,
    amqp_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PULPIT_DATABASE_URL", database_url)
    monkeypatch.setenv("PULPIT_BROKER_URL", amqp_url)
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[1].endswith(" answers")
    assert "guest:guest" not in out, "the broker's password is not printed"


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_unhealthy_when_the_broker_does_not_answer(
    scheme: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"{scheme}://user:secret@127.0.0.1:{closed_port()}/"
    monkeypatch.setenv("PULPIT_DATABASE_URL", database_url)
    monkeypatch.setenv("PULPIT_BROKER_URL", url)
    code, out, err = run(capsys)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1, err  # one line, no traceback or pika log
    assert err.startswith(f"pulpit: the broker {scheme}://user:***@127.0.0.1:")
    assert "does not answer" in err and "secret" not in err


def test_unhealthy_without_the_schema(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, admin = fresh_postgres_database(postgres_url)
    try:
        monkeypatch.setenv("PULPIT_DATABASE_URL", url)
        code, out, err = run(capsys)
    finally:
        drop_postgres_database(admin, url)
    assert code == 1
    assert err.strip().endswith("has no Pulpit schema yet; run `pulpit db upgrade`")


def test_unhealthy_when_the_database_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql+psycopg://pulpit:secret@127.0.0.1:{closed_port()}/pulpit"
    monkeypatch.setenv("PULPIT_DATABASE_URL", url)
    code, out, err = run(capsys)
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert err.startswith("pulpit: the database postgresql+psycopg://pulpit:***@127.0.0.1:")
    assert "does not answer" in err and "secret" not in err


def test_db_upgrade_of_a_database_that_does_not_exist_says_to_create_it(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Seen in the compose stack: the server answered, the database was not there, and
    # `db upgrade` itself told the operator to run `pulpit db upgrade`.
    from sqlalchemy.engine import make_url

    missing = make_url(postgres_url).set(database="pulpit_no_such_database_16")
    monkeypatch.setenv("PULPIT_DATABASE_URL", missing.render_as_string(hide_password=False))
    code = main(["db", "upgrade"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1, err
    assert 'database "pulpit_no_such_database_16" does not exist' in err
    assert "create it first (createdb, or CREATE DATABASE), then run `pulpit db upgrade`" in err
