"""The configuration snapshot: what routing a mail reads, as plain values, kept per process.

Routing an inbound mail asks the same few things of the configuration for every mail: which
contract a mailbox belongs to, which client a sender's domain belongs to, which contracts a
client has and when they are in force. The SMTP gateway asks, at every ``RCPT TO``, whether an
address is one of our mailboxes. None of that changes between two configuration changes, so a
process keeps it as immutable values (:class:`Snapshot`), built with three queries and kept
until the configuration changes.

**Knowing that it changed.** Every flush that adds, changes or deletes a row of a
configuration table (:data:`CONFIG_TABLES`: contracts and their types, statuses and fields,
clients and their domains, mailboxes, calendars, ...) writes a new random token into the one
row of ``config_version`` in the same transaction (a token, not a counter: a rolled-back
change never hands its number to another). On PostgreSQL it also sends ``NOTIFY
pulpit_config`` with the token, which PostgreSQL delivers at commit, and only then.

**Reading it.** :func:`current` gives the snapshot for a session:

- In a process that runs a :class:`Watch` (every long-running process on PostgreSQL:
  ``pulpit.runtime.database``), a thread LISTENs on ``pulpit_config`` and knows the committed
  token; :func:`current` answers from memory, with no statement. A change committed by
  another host is seen once its notification arrives (normally within milliseconds), the
  same as if the mail had been routed a moment earlier. If the listening connection is lost,
  the watch says so and every transaction reads the token row instead until it is back.
- Otherwise (SQLite, a command, a test) it reads the token once per transaction: one
  indexed one-row read, then the snapshot from memory when the token is the one it was built
  for.
- A transaction that changed the configuration itself reads its own changes: its snapshot is
  built from its own view and kept for it alone.

Decision (issue 16): the snapshot holds what routing and the gateway read, not the whole
configuration as values: a new ticket's statuses, types and calendar are still the ORM
objects that ``core.tickets.services.open_ticket`` and the SLA clocks work with, read once per
batch of mail through the session's identity map.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, Integer, String, Table, event, select, text
from sqlalchemy.orm import (
    Mapped,
    Session,
    UOWTransaction,
    joinedload,
    mapped_column,
    selectinload,
)

from core.clock import utcnow
from core.contracts.models import Contract
from core.directory.models import ClientDomain
from core.mail.models import Mailbox
from core.orm import Base, UTCDateTime, transaction_memo

log = logging.getLogger(__name__)

CHANNEL = "pulpit_config"

# The tables whose rows are configuration: a change to any of them is a configuration change.
CONFIG_TABLES = frozenset(
    {
        "calendars",
        "client_domains",
        "clients",
        "contracts",
        "custom_fields",
        "mailboxes",
        "products",
        "roles",
        "statuses",
        "subcontractors",
        "ticket_types",
    }
)


class ConfigVersion(Base):
    """One row: the token of the configuration's last change (see the module)."""

    __tablename__ = "config_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


VERSION: Table = ConfigVersion.__table__  # type: ignore[assignment]


# --- The values --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContractFacts:
    """What routing needs of a contract."""

    id: int
    code: str
    client_id: int
    valid_from: date | None
    valid_to: date | None

    def is_active(self, on: date) -> bool:
        return (self.valid_from is None or self.valid_from <= on) and (
            self.valid_to is None or on <= self.valid_to
        )


@dataclass(frozen=True)
class Snapshot:
    """The configuration that routing reads, at one token."""

    token: str
    # Lower-cased mailbox address -> its contract's id (None: a general address).
    mailboxes: dict[str, int | None]
    # Lower-cased client domain -> the client's id.
    domains: dict[str, int]
    contracts: dict[int, ContractFacts]
    # Client id -> its contracts' ids, in id order.
    client_contracts: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(self.mailboxes)

    def mailbox_contract(self, address: str) -> ContractFacts | None:
        contract_id = self.mailboxes.get(address)
        return self.contracts.get(contract_id) if contract_id is not None else None

    def client_for_domain(self, domain: str) -> int | None:
        """The client of ``domain`` or of its nearest parent domain (``dział.acme.example``
        before ``acme.example``)."""
        labels = domain.lower().split(".")
        for i in range(len(labels) - 1):
            client_id = self.domains.get(".".join(labels[i:]))
            if client_id is not None:
                return client_id
        return None

    def default_contract(self, client_id: int | None, today: date) -> ContractFacts | None:
        """The client's contract when it has exactly one in force ``today``, else None."""
        if client_id is None:
            return None
        active = [
            c
            for c in (self.contracts[i] for i in self.client_contracts.get(client_id, ()))
            if c.is_active(today)
        ]
        return active[0] if len(active) == 1 else None


def build(session: Session, token: str) -> Snapshot:
    """The snapshot from what ``session`` sees now (three queries, no ORM object)."""
    contracts = {
        row.id: ContractFacts(row.id, row.code, row.client_id, row.valid_from, row.valid_to)
        for row in session.execute(
            select(
                Contract.id,
                Contract.code,
                Contract.client_id,
                Contract.valid_from,
                Contract.valid_to,
            ).order_by(Contract.id)
        )
    }
    by_client: dict[int, list[int]] = {}
    for facts in contracts.values():
        by_client.setdefault(facts.client_id, []).append(facts.id)
    boxes: dict[str, int | None] = {}
    for address, contract_id in session.execute(
        select(Mailbox.address, Mailbox.contract_id).order_by(Mailbox.id)
    ):
        if address:
            boxes.setdefault(address.strip().lower(), contract_id)
    domains = {
        domain.strip().lower(): client_id
        for domain, client_id in session.execute(
            select(ClientDomain.domain, ClientDomain.client_id).order_by(ClientDomain.id)
        )
    }
    return Snapshot(
        token=token,
        mailboxes=boxes,
        domains=domains,
        contracts=contracts,
        client_contracts={k: tuple(v) for k, v in by_client.items()},
    )


def preload(session: Session, contract_ids: Iterable[int]) -> None:
    """Load these contracts into ``session`` with what opening a ticket under them reads
    (ticket types, statuses, calendar, client, coordinators): four queries for a batch of
    inbound mail instead of four per contract the batch meets."""
    wanted = sorted(set(contract_ids))
    if not wanted:
        return
    # Held for the transaction: the session keeps unreferenced objects only weakly.
    held: list[Contract] = transaction_memo(session).setdefault(_PRELOADED, [])
    with session.no_autoflush:
        held += (
            session.scalars(
                select(Contract)
                .where(Contract.id.in_(wanted))
                .options(
                    joinedload(Contract.calendar),
                    joinedload(Contract.client),
                    selectinload(Contract.ticket_types),
                    selectinload(Contract.statuses),
                    selectinload(Contract.coordinators),
                )
            )
            .unique()
            .all()
        )


# What a transaction derives from the configuration and keeps in its memo under these keys
# (core.orm.transaction_memo) is forgotten when the transaction changes the configuration.
DERIVED: set[str] = set()


# --- Per process -------------------------------------------------------------------------------


class _Cache:
    """One database's snapshot in this process, and its watch if one runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshot: Snapshot | None = None
        self.watch: Watch | None = None


_CACHES: dict[str, _Cache] = {}
_CACHES_LOCK = threading.Lock()


def _cache_for(engine: Engine) -> _Cache:
    key = engine.url.render_as_string(hide_password=False)
    with _CACHES_LOCK:
        return _CACHES.setdefault(key, _Cache())


_MEMO = "config_snapshot"
_PRELOADED = "preloaded_contracts"
_CHANGED = "config_changed"


def current(session: Session) -> Snapshot:
    """The configuration snapshot for ``session``'s transaction (see the module)."""
    memo = transaction_memo(session)
    mine: Snapshot | None = memo.get(_MEMO)
    if mine is not None:
        return mine
    if _pending_change(session):
        session.flush()  # its own change, not flushed yet: bump the token first
    cache = _cache_for(session.get_bind().engine)
    if memo.get(_CHANGED):
        # Changed in this transaction: its own view, kept for it alone.
        snapshot = build(session, _read_token(session))
        memo[_MEMO] = snapshot
        return snapshot
    watch = cache.watch
    token = watch.token if watch is not None else None
    if token is None:
        token = _read_token(session)
    known = cache.snapshot
    if known is None or known.token != token:
        known = build(session, token)
        with cache.lock:
            cache.snapshot = known
    memo[_MEMO] = known
    return known


def cached(engine: Engine) -> Snapshot | None:
    """The snapshot this process holds for ``engine``'s database, when a running watch vouches
    that it is current; None otherwise (the caller reads the database)."""
    cache = _cache_for(engine)
    watch, snapshot = cache.watch, cache.snapshot
    if watch is None or snapshot is None:
        return None
    token = watch.token
    return snapshot if token is not None and token == snapshot.token else None


def watched(session_factory: Callable[[], Session]) -> Snapshot | None:
    """The current snapshot when a running watch vouches for it (built now, with its three
    queries, if this process has none for the watched token yet); None when nothing watches
    (SQLite, a lost connection): the caller then reads the database its own way."""
    engine = engine_of(session_factory)
    if engine is None:
        return None
    known = cached(engine)
    if known is not None:
        return known
    watch = _cache_for(engine).watch
    if watch is None or watch.token is None:
        return None
    with session_factory() as session:
        return current(session)


def engine_of(session_factory: Callable[[], Session]) -> Engine | None:
    """The engine a ``sessionmaker`` is bound to, or None."""
    bind = getattr(session_factory, "kw", {}).get("bind")
    return getattr(bind, "engine", None)


def _read_token(session: Session) -> str:
    with session.no_autoflush:
        token = session.scalar(select(VERSION.c.token).where(VERSION.c.id == 1))
    return token or ""


def _pending_change(session: Session) -> bool:
    return any(_is_config(obj) for obj in _touched(session))


def _touched(session: Session) -> Iterator[Any]:
    yield from session.new
    yield from session.deleted
    yield from (obj for obj in session.dirty if session.is_modified(obj))


def _is_config(obj: Any) -> bool:
    return getattr(obj, "__tablename__", None) in CONFIG_TABLES


# --- Knowing it changed ------------------------------------------------------------------------


def bump(session: Session) -> str:
    """Record a configuration change in ``session``'s transaction; the new token."""
    token = secrets.token_hex(16)
    values = {"token": token, "changed_at": utcnow()}
    with session.no_autoflush:
        updated = session.execute(VERSION.update().where(VERSION.c.id == 1).values(**values))
        if not getattr(updated, "rowcount", 0):
            session.execute(VERSION.insert().values(id=1, **values))
        if session.get_bind().dialect.name == "postgresql":
            # Delivered to the listeners when the transaction commits, never before.
            session.execute(
                text("SELECT pg_notify(:channel, :token)"), {"channel": CHANNEL, "token": token}
            )
    memo = transaction_memo(session)
    memo[_CHANGED] = True
    for key in (_MEMO, *DERIVED):
        memo.pop(key, None)
    return token


@event.listens_for(Session, "before_flush")
def _bump_on_change(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    if any(_is_config(obj) for obj in _touched(session)):
        bump(session)


@event.listens_for(Session, "do_orm_execute")
def _bump_on_bulk_change(orm_execute_state: Any) -> None:
    """An UPDATE or DELETE statement on a configuration table, outside the unit of work."""
    if not (orm_execute_state.is_update or orm_execute_state.is_delete):
        return
    table = getattr(orm_execute_state.statement, "table", None)
    if getattr(table, "name", None) in CONFIG_TABLES:
        bump(orm_execute_state.session)


# --- Listening (PostgreSQL) --------------------------------------------------------------------


class Watch:
    """A thread that LISTENs for configuration changes of one PostgreSQL database.

    ``token`` is the committed token while the listening connection is up, None while it is
    not (then :func:`current` reads the token row per transaction). Reconnects with a growing
    pause, up to :attr:`MAX_PAUSE` seconds.
    """

    MAX_PAUSE = 30.0
    POLL = 1.0

    def __init__(self, engine: Engine) -> None:
        self.conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self.where = engine.url.render_as_string(hide_password=True)
        self._token: str | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pulpit-config-watch", daemon=True)

    @property
    def token(self) -> str | None:
        return self._token

    def start(self, wait: float = 5.0) -> Watch:
        self._thread.start()
        self._ready.wait(wait)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.POLL * 3)

    def _run(self) -> None:
        import psycopg

        pause = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Read after LISTEN: a change committed in between is notified, not missed.
                    row = conn.execute("SELECT token FROM config_version WHERE id = 1").fetchone()
                    self._token = row[0] if row else ""
                    self._ready.set()
                    pause = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=self.POLL):
                            self._token = note.payload
            except Exception as exc:
                self._token = None
                self._ready.set()
                if self._stop.is_set():
                    break
                log.warning(
                    "configuration changes: not listening on %s (%s); reading the version "
                    "per transaction, retrying in %.0f s",
                    self.where,
                    exc,
                    pause,
                )
                self._stop.wait(pause)
                pause = min(pause * 2, self.MAX_PAUSE)
        self._token = None


def watch(engine: Engine) -> Watch | None:
    """Start listening for ``engine``'s configuration changes (PostgreSQL; None elsewhere);
    :func:`unwatch` stops it."""
    if engine.dialect.name != "postgresql":
        return None
    cache = _cache_for(engine)
    with cache.lock:
        if cache.watch is None:
            cache.watch = Watch(engine).start()
        return cache.watch


def unwatch(engine: Engine) -> None:
    cache = _cache_for(engine)
    with cache.lock:
        running, cache.watch = cache.watch, None
    if running is not None:
        running.stop()
