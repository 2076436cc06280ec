"""`pulpit worker --processes N` runs N worker processes, replaces one that dies, stops all.

The real command in a subprocess, a real Redis as the broker and a SQLite database: jobs sent
from this test process are run by the children (``system.ping`` leaves a ``JobRun`` row), a
child killed with SIGKILL is replaced and the work goes on, and SIGTERM to the supervisor
stops every child and exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import load_settings
from core.audit import JobRun
from core.db import make_engine, make_session_factory, upgrade
from workers.actors import register_actors
from workers.broker import make_broker

pytestmark = pytest.mark.redis

DEADLINE = 30.0


def children(pid: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    workers = set()
    for child in map(int, found.split()):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            workers.add(child)
    return workers


def wait_for(what: str, check, timeout: float = DEADLINE):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def pinged(factory: sessionmaker[Session], key: str) -> bool:
    with factory() as session:
        return session.scalar(select(JobRun.id).where(JobRun.key == key)) is not None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "zombie" in status.lower()


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[str]:
    # The worker uses Dramatiq's default key prefix; other tests use their own namespaces.
    import redis

    yield redis_url
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match="dramatiq*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_worker_processes_run_jobs_survive_a_killed_child_and_stop(
    redis_db: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULPIT_")}
    env.update(
        PULPIT_DATA_DIR=str(tmp_path / "var"), PULPIT_DATABASE_URL=url, PULPIT_BROKER_URL=redis_db
    )
    engine = make_engine(url)
    factory = make_session_factory(engine)
    broker = make_broker(redis_db)
    actors = register_actors(broker, factory, load_settings(environ=env))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulpit", "worker", "--processes", "2", "--threads", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        first = wait_for(
            "two worker processes", lambda: len(children(proc.pid)) >= 2 and children(proc.pid)
        )
        keys = [uuid.uuid4().hex for _ in range(4)]
        for key in keys:
            actors["system.ping"].send(key=key)
        for key in keys:
            wait_for(f"ping {key}", lambda key=key: pinged(factory, key))

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            "a replacement process",
            lambda: victim not in children(proc.pid) and len(children(proc.pid) - first) >= 1,
        )
        after = uuid.uuid4().hex
        actors["system.ping"].send(key=after)
        wait_for("a ping after the restart", lambda: pinged(factory, after))
        running = children(proc.pid)

        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=90)
    finally:
        left = children(proc.pid) if proc.poll() is None else set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in left:
            _kill(pid)
        broker.close()
        engine.dispose()
    log = output.decode("utf-8", "replace")
    assert proc.returncode == 0, log
    assert "starting another" in log
    for pid in running:
        assert _gone(pid), log


def test_worker_processes_stop_when_the_supervisor_is_killed(redis_db: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULPIT_")}
    env.update(
        PULPIT_DATA_DIR=str(tmp_path / "var"), PULPIT_DATABASE_URL=url, PULPIT_BROKER_URL=redis_db
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulpit", "worker", "--processes", "2", "--threads", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running: set[int] = set()
    try:
        running = wait_for(
            "two worker processes", lambda: len(children(proc.pid)) >= 2 and children(proc.pid)
        )
        proc.kill()  # SIGKILL: the supervisor cannot stop its children itself
        proc.wait()
        wait_for("the orphaned workers to stop", lambda: all(_gone(pid) for pid in running))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in running:
            _kill(pid)
