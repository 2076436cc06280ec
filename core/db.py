"""Database plumbing: engines, sessions, migrations, after-commit jobs.

Core functions take a ``Session`` and never commit; the entry point (a request, an actor, the
SMTP handler, a command) owns the transaction through :func:`unit_of_work`. Work for the
workers is buffered on the session with :func:`enqueue` and handed to the dispatcher only after
the transaction commits (Polar's pattern): a rolled-back change never sends a job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

import core.tables  # noqa: F401  every mapper is registered before a session is made
from core.orm import transaction_memo as transaction_memo  # its home is core.orm (no cycle)
from core.reports.sql import register_sqlite

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

Dispatcher = Callable[[str, dict[str, Any]], None]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout for the embedded run."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when a transaction begins (SQLAlchemy docs,
            # "Serializable isolation / Savepoints / Transactional DDL" for pysqlite).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # The reports' month, ISO week and percentile, which PostgreSQL has built in.
            register_sqlite(dbapi_conn)

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
            # instead of one failing with "database is locked" at its first write.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if url.startswith("postgresql+psycopg:"):
        kwargs = _raw_placeholders(kwargs)
    return create_engine(url, **kwargs)


def _raw_placeholders(kwargs: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL's own ``$1`` placeholders, passed through as written (psycopg's
    ``RawCursor``), instead of ``%(name)s`` ones that psycopg rewrites in Python on every
    statement it has not cached: a batch's multi-row INSERTs (hundreds of placeholders, never
    the same text twice) spent a tenth of a worker's time there."""
    import psycopg

    connect_args = dict(kwargs.get("connect_args") or {})
    connect_args.setdefault("cursor_factory", psycopg.RawCursor)
    return {**kwargs, "paramstyle": "numeric_dollar", "connect_args": connect_args}


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


_dispatcher: Dispatcher | None = None


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Install the function that sends a job by actor name (set by the workers layer)."""
    global _dispatcher
    _dispatcher = dispatcher


def enqueue(session: Session, actor: str, **kwargs: Any) -> None:
    """Buffer a job on the session; it is sent by actor name once the transaction commits."""
    session.info.setdefault("pending_jobs", []).append((actor, kwargs))


Job = tuple[str, dict[str, Any]]


def take_pending_jobs(session: Session) -> list[Job]:
    """Take the jobs buffered so far, to send them later with :func:`send_jobs` (only once
    the transaction has committed). The SMTP gateway answers its senders first, then sends."""
    jobs: list[Job] = session.info.pop("pending_jobs", [])
    return jobs


@event.listens_for(Session, "after_commit")
def _send_pending_jobs(session: Session) -> None:
    send_jobs(session.info.pop("pending_jobs", []))


# Actors whose jobs of one commit are sent as fewer jobs: the function gets every such job's
# arguments, in order, and returns the arguments of the jobs to send instead.
JobMerger = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
_mergers: dict[str, JobMerger] = {}


def merge_jobs_of(actor: str, merge: JobMerger) -> None:
    """Send the jobs of ``actor`` buffered in one transaction as the jobs ``merge`` makes of
    them (``core.mail.outbox``: one ``mail.send`` for every so many outgoing mails)."""
    _mergers[actor] = merge


def _merged(jobs: list[Job]) -> list[Job]:
    """``jobs`` with each merged actor's jobs replaced by its merger's, where its first was."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for actor, kwargs in jobs:
        if actor in _mergers:
            groups.setdefault(actor, []).append(kwargs)
    if all(len(group) < 2 for group in groups.values()):
        return jobs
    out: list[Job] = []
    for actor, kwargs in jobs:
        if actor not in _mergers:
            out.append((actor, kwargs))
        elif (group := groups.pop(actor, None)) is not None:
            out += [(actor, merged) for merged in _mergers[actor](group)]
    return out


def send_jobs(jobs: list[Job]) -> None:
    """Send jobs by actor name; a job that cannot be sent is left to the scheduler's sweeps."""
    if not jobs:
        return
    if _dispatcher is None:
        log.debug("no dispatcher installed; %d job(s) left to the scheduler's sweep", len(jobs))
        return
    if _mergers and len(jobs) > 1:
        jobs = _merged(jobs)
    for actor, kwargs in jobs:
        try:
            _dispatcher(actor, kwargs)
        except Exception:  # the database is the source of truth; a sweep picks it up later
            log.exception(
                "could not send job %s %r; it will be picked up by a sweep", actor, kwargs
            )


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    # A savepoint's rollback must drop only the jobs buffered inside it, not the ones the
    # enclosing transaction buffered before it began.
    if transaction.nested:
        marks = session.info.setdefault("job_marks", {})
        marks[transaction] = len(session.info.get("pending_jobs", []))


@event.listens_for(Session, "after_transaction_end")
def _forget_savepoints(session: Session, transaction: SessionTransaction) -> None:
    # Marks are read by after_soft_rollback, which runs after this event; forget them only
    # when the outermost transaction ends.
    if transaction.parent is None:
        session.info.pop("job_marks", None)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending_jobs(session: Session, previous_transaction: SessionTransaction) -> None:
    marks = session.info.get("job_marks", {})
    if previous_transaction.nested:
        mark = marks.pop(previous_transaction, None)
        if mark is not None and "pending_jobs" in session.info:
            del session.info["pending_jobs"][mark:]
        return
    session.info.pop("pending_jobs", None)


SECRET_KEY_INFO = "secret_key"


class DoneRecently:
    """The rows this process's batch jobs handled in the last :attr:`KEEP` seconds, so the jobs
    sent for those rows, arriving just after, end without a statement: in a batch of 32 the
    other 31 jobs would each ask the database what this process already knows
    (``mailgw.process.run_batch``, ``workers.actors.send_outbound_mail``).

    An entry answers one job and is gone. A row put back to be done again within those seconds
    (``pulpit mail retry``) whose new job lands on this process waits for the scheduler's sweep
    instead of being done at once. Kept per session factory (one per database in a process)
    and bounded: the oldest entries go first.
    """

    KEEP = 60.0
    LIMIT = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: WeakKeyDictionary[object, OrderedDict[int, tuple[float, str]]] = (
            WeakKeyDictionary()
        )

    def add(self, factory: object, outcomes: dict[int, str], *, skip: Container[int] = ()) -> None:
        """Remember these rows' outcomes, but ``skip``'s (the rows of the job that is running)."""
        now = time.monotonic()
        with self._lock:
            known = self._done.setdefault(factory, OrderedDict())
            for row_id, outcome in outcomes.items():
                if row_id not in skip:
                    known[row_id] = (now, outcome)
            while len(known) > self.LIMIT:
                known.popitem(last=False)

    def take(self, factory: object, row_id: int) -> str | None:
        """The outcome remembered for ``row_id``, forgotten now; None when there is none."""
        with self._lock:
            known = self._done.get(factory)
            found = known.pop(row_id, None) if known is not None else None
        if found is None or time.monotonic() - found[0] > self.KEEP:
            return None
        return found[1]


def configure_secret_key(factory: sessionmaker[Session] | Any, secret: str | None) -> bool:
    """Give every session of ``factory`` the instance's secret key (``Settings.secret_key``).

    Core knows no settings; the entry points (``pulpit.runtime.database``, ``web.app``,
    ``workers.actors.register_actors``) put the key on their session factory once, as
    ``sessionmaker(info=...)`` copies its ``info`` into each new session. Any other callable
    (a test's own factory) is left alone; returns whether the key was set.
    """
    if not isinstance(factory, sessionmaker) or not secret:
        return False
    factory.kw.setdefault("info", {})[SECRET_KEY_INFO] = secret
    return True


def secret_key(session: Session) -> str | None:
    """The instance's secret key on this session, or None where no entry point gave one
    (bare factories in tests and scripts): what needs it then does without (signed reply
    addresses fall back to the plain mailbox, ``core.mail.reply_address``)."""
    value = session.info.get(SECRET_KEY_INFO)
    return value if isinstance(value, str) and value else None


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url_or_engine: str | Engine) -> None:
    """Run Alembic migrations to head."""
    from alembic import command

    if isinstance(url_or_engine, Engine):
        cfg = alembic_config(url_or_engine.url.render_as_string(hide_password=False))
        with url_or_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    else:
        command.upgrade(alembic_config(url_or_engine), "head")
