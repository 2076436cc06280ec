"""The long-running processes: ``serve`` (all in one), ``web``, ``mailgw``, ``worker``, ``scheduler``.

Each function takes the settings built once by the command line and owns what it starts: it
opens the database, builds the broker, starts its parts and stops them again, newest first,
however it ends (Ctrl+C, SIGTERM from systemd, or an error).
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.contracts import snapshot as config_snapshot
from core.db import configure_secret_key, make_engine, make_session_factory, upgrade
from pulpit.errors import EXIT_FAILURE, CommandError

if TYPE_CHECKING:
    import dramatiq

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    def stop(self) -> None: ...


# --- The parts ------------------------------------------------------------------------------


# Python's cyclic garbage collector runs its youngest generation each time 700 more container
# objects have been allocated than freed, and now and then a full collection that walks every
# object the process holds: the imported modules, SQLAlchemy's mappers, the compiled
# templates. A batch of mail allocates tens of thousands of ORM objects, so in a worker that
# cost up to a tenth of its CPU (bench/INGEST_RESULTS.md, "the garbage collector").
GC_THRESHOLDS = (10_000, 20, 10)


def settle_heap() -> None:
    """Once a process has started (imports done, templates compiled, caches built): collect
    once, move every object that survived to the collector's permanent generation, which it
    never walks again (``gc.freeze``), and let the youngest generation grow to
    :data:`GC_THRESHOLDS` before it is collected. Reference counting still frees at once all
    that forms no cycle; the cycles (an ORM object and its related rows, say) wait for the
    next collection, a few megabytes at most."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def require_mail_gateway() -> None:
    """Import the SMTP gateway and the IMAP pollers, or end the command saying what is missing.

    Called before anything starts, so a missing library (aiosmtpd, imapclient) stops ``serve``
    or ``mailgw`` at once with one clear line instead of running half a gateway.
    """
    try:
        import mailgw.imap  # noqa: F401  (imported only to fail before anything starts)
        import mailgw.server  # noqa: F401
    except ModuleNotFoundError as exc:
        raise CommandError(
            f"the mail gateway cannot start: the Python module {exc.name!r} is missing; "
            "install Pulpit with its dependencies (pip install -e .)",
            EXIT_FAILURE,
        ) from exc


def start_mail_gateway(settings: Settings, session_factory: sessionmaker[Session]) -> Stoppable:
    """Start the SMTP gateway and the IMAP pollers in the background (``serve``, ``mailgw``).

    The callers have already checked with :func:`require_mail_gateway` that both can load.
    """
    from mailgw.imap import start_pollers
    from mailgw.server import start

    smtp = start(settings, session_factory, lmtp=settings.smtp_protocol == "lmtp")
    parts: list[tuple[str, Stoppable]] = [("SMTP gateway", smtp)]
    try:
        parts.append(("IMAP pollers", start_pollers(settings, session_factory)))
    except BaseException:
        _stop_all(parts)
        raise
    return _MailGateway(parts)


class _MailGateway:
    """The SMTP gateway and the IMAP pollers, stopped together, newest first."""

    def __init__(self, parts: list[tuple[str, Stoppable]]) -> None:
        self.parts = parts

    def stop(self) -> None:
        _stop_all(self.parts)


def scheduled_tasks(settings: Settings) -> list[Any]:
    """The scheduler's tasks, given the console's catalogues (the monthly statements'
    spreadsheets speak the manager's language; workers import nothing from web)."""
    from web.i18n import translations
    from workers.scheduler import default_tasks

    return default_tasks(settings, catalogue=lambda lang: translations(lang).gettext)


@contextmanager
def database(settings: Settings, *, watch: bool = False) -> Iterator[sessionmaker[Session]]:
    """An engine on ``settings.resolved_database_url`` for the life of a command.

    Its sessions carry ``settings.secret_key`` when the settings have one
    (``core.db.secret_key``): the processes that mail or read mail about tickets (``serve``,
    ``web``, ``mailgw``, ``worker``, ``scheduler``) make sure they do, so signed reply
    addresses (``core.mail.reply_address``) are made and checked with the same key.

    ``watch``: a long-running process listens for configuration changes on PostgreSQL, so its
    configuration snapshot needs no query to stay current (``core.contracts.snapshot``).
    """
    engine = make_engine(settings.resolved_database_url)
    try:
        if watch:
            config_snapshot.watch(engine)
        factory = make_session_factory(engine)
        configure_secret_key(factory, settings.secret_key or None)
        yield factory
    finally:
        config_snapshot.unwatch(engine)
        engine.dispose()


def upgrade_database(settings: Settings) -> str:
    """Run the migrations to head; returns the URL, password hidden, for the message."""
    url = settings.resolved_database_url
    # The Alembic env opens the URL with core.db.make_engine, which creates the data dir for
    # the embedded SQLite database on a fresh clone.
    upgrade(url)
    return make_url(url).render_as_string(hide_password=True)


def _wire_broker(settings: Settings, session_factory: sessionmaker[Session]) -> dramatiq.Broker:
    """Build the broker, declare the actors on it and send after-commit jobs to it.

    Every process does this, not only workers: web requests, mail and the scheduler send
    jobs, and a job is routed by the queue its actor was declared with.
    """
    from workers.actors import register_actors
    from workers.broker import install_dispatcher, make_broker

    broker = make_broker(settings.broker_url)
    register_actors(broker, session_factory, settings)
    install_dispatcher(broker)
    return broker


def _stop_all(parts: list[tuple[str, Stoppable]]) -> None:
    """Stop parts newest first; one that fails to stop does not keep the others running."""
    for name, part in reversed(parts):
        try:
            part.stop()
        except Exception:
            log.exception("could not stop the %s cleanly", name)


# --- Signals --------------------------------------------------------------------------------


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so ``finally`` blocks run and parts stop."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def terminate_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs (main thread only).

    Python's default for SIGTERM ends the process at once, skipping every ``finally``; systemd
    sends SIGTERM on stop, and uvicorn re-raises it after its own graceful shutdown.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop``, so a foreground loop finishes its job and returns."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --- The web server -------------------------------------------------------------------------


def run_http(
    settings: Settings, app: Any, *, on_listening: Callable[[], None] | None = None
) -> int:
    """Serve ``app`` with uvicorn in the calling (main) thread until a signal stops it."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and on_listening is not None:
                on_listening()

    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1
    # (FORWARDED_ALLOW_IPS); PULPIT_TRUSTED_PROXIES is the one rule (web/client_ip.py).
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        proxy_headers=False,
    )
    server = Server(config)
    try:
        server.run()
    except (KeyboardInterrupt, Terminated):
        # uvicorn has already shut down gracefully and re-raised the signal it caught
        # (uvicorn.Server.capture_signals) so the process ends as the signal asked: it does.
        pass
    except SystemExit as exc:
        # uvicorn exits with 3 when it cannot bind or the app's startup fails; it logged why.
        if exc.code not in (0, None):
            raise CommandError(
                f"the web server could not start on {settings.http_host}:{settings.http_port} "
                "(the reason is in the log above)",
                EXIT_FAILURE,
            ) from None
    return 0


# --- The commands ---------------------------------------------------------------------------


def run_serve(settings: Settings, *, demo_banner: bool = False, worker_threads: int = 2) -> int:
    """Everything in one process: web, mail gateway, workers and scheduler (``pulpit serve``)."""
    from web.app import create_app
    from workers.broker import is_memory_broker, uninstall_dispatcher
    from workers.runner import start_in_process_worker
    from workers.scheduler import Scheduler

    require_mail_gateway()
    settings = settings.ensure_secret_key()
    location = upgrade_database(settings)
    log.info("database %s is at the latest schema", location)
    app = create_app(settings)

    parts: list[tuple[str, Stoppable]] = []
    with terminate_raises(), database(settings, watch=True) as session_factory:
        broker = _wire_broker(settings, session_factory)
        try:
            # Workers run here with any broker: "all in one process". With a real broker,
            # separate `pulpit worker` processes may share the queues as well.
            _warm_up(session_factory)
            parts.append(("worker", start_in_process_worker(broker, threads=worker_threads)))
            if is_memory_broker(settings.broker_url):
                log.info("broker memory://: jobs run in this process and do not survive it")
            parts.append(
                ("scheduler", Scheduler(session_factory, scheduled_tasks(settings)).start())
            )
            parts.append(("mail gateway", start_mail_gateway(settings, session_factory)))

            def banner() -> None:
                from pulpit.banner import demo_banner as make_banner

                print(make_banner(settings), flush=True)

            return run_http(settings, app, on_listening=banner if demo_banner else None)
        finally:
            # Producers first (mail, scheduler), then the worker, then the dispatcher: jobs
            # sent while stopping still reach the broker, and a real broker keeps them.
            _stop_all(parts)
            uninstall_dispatcher()
            broker.close()


def run_web(settings: Settings) -> int:
    """Only the web console and API (``pulpit web``)."""
    from web.app import create_app
    from workers.broker import is_memory_broker, uninstall_dispatcher

    settings = settings.ensure_secret_key()
    app = create_app(settings)
    settle_heap()
    if is_memory_broker(settings.broker_url):
        # A memory:// queue is only seen by workers in this process, and `web` runs none:
        # jobs stay unsent and the scheduler's sweeps (in `serve`) catch up on them.
        log.warning(
            "PULPIT_BROKER_URL is memory://: background jobs only run inside `pulpit serve`; "
            "use redis:// or amqp:// to run the parts as separate processes"
        )
        with terminate_raises():
            return run_http(settings, app)
    with terminate_raises(), database(settings, watch=True) as session_factory:
        broker = _wire_broker(settings, session_factory)
        try:
            return run_http(settings, app)
        finally:
            uninstall_dispatcher()
            broker.close()


GATEWAY_SWITCH_INTERVAL = 0.0005  # seconds; CPython's default is 0.005


def run_mailgw(settings: Settings) -> int:
    """Only the SMTP gateway and IMAP pollers (``pulpit mailgw``)."""
    from workers.broker import is_memory_broker, uninstall_dispatcher

    require_mail_gateway()
    settings = settings.ensure_secret_key()
    # The event loop, the group committer and the pool threads hand the interpreter lock to
    # each other several times per mail; CPython's default 5 ms switch interval made each
    # hand-over a wait of up to 5 ms in the SMTP answer (bench/INGEST_RESULTS.md).
    sys.setswitchinterval(GATEWAY_SWITCH_INTERVAL)
    stop = threading.Event()
    with database(settings, watch=True) as session_factory:
        broker = None
        if not is_memory_broker(settings.broker_url):
            broker = _wire_broker(settings, session_factory)
        else:
            # Stored mail is safe in the database either way; without a broker its
            # `mail.process` jobs are not sent, and the scheduler's sweep of messages left in
            # state "received" (in `serve` or `pulpit scheduler`) hands them to a worker.
            log.warning(
                "PULPIT_BROKER_URL is memory://: mail is stored here and processed by the "
                "scheduler's sweep in `pulpit serve`; use redis:// or amqp:// for prompt work"
            )
        try:
            gateway = start_mail_gateway(settings, session_factory)
            settle_heap()
            with stop_on_signals(stop):
                try:
                    stop.wait()
                finally:
                    gateway.stop()
        finally:
            if broker is not None:
                uninstall_dispatcher()
                broker.close()
    return 0


def run_worker(settings: Settings, *, threads: int = 8, processes: int = 1) -> int:
    """Dramatiq worker threads in the foreground, for a real broker (``pulpit worker``).

    With ``processes`` over 1 this process supervises that many worker processes (each with
    ``threads`` threads): processing a mail is mostly Python, and one process's threads share
    one interpreter lock, so only processes put a second core to work.
    """
    from workers.broker import is_memory_broker, uninstall_dispatcher
    from workers.runner import run_worker as run_dramatiq_worker

    if is_memory_broker(settings.broker_url):
        raise CommandError(
            "PULPIT_BROKER_URL is memory://, whose queue lives inside one process, so in-process "
            "workers only exist inside `pulpit serve`; set PULPIT_BROKER_URL to redis://... or "
            "amqp://... to run workers separately"
        )
    # Before the children start: they then share one key, also when it was just generated.
    settings = settings.ensure_secret_key()
    if processes > 1:
        return _supervise_workers(settings, threads=threads, processes=processes)
    stop = threading.Event()
    with database(settings, watch=True) as session_factory:
        # Actors send follow-up jobs after their own commits, so workers dispatch too.
        broker = _wire_broker(settings, session_factory)
        try:
            _warm_up(session_factory)
            with stop_on_signals(stop):
                run_dramatiq_worker(broker, stop, threads=threads)
        finally:
            uninstall_dispatcher()
            broker.close()
    return 0


def _warm_up(session_factory: sessionmaker[Session]) -> None:
    """Do before the first job what it would otherwise wait for: import the mail pipeline,
    compile the mail templates and the reply parser's patterns, build the calendars'
    holidays (together a second or more of CPU in a new process)."""
    import mailgw.process  # noqa: F401  (imported by the first mail.process job otherwise)
    from core.clock import utcnow
    from core.sla.clocks import warm_up
    from mailgw.bodies import prepare
    from mailgw.outbound import compile_templates

    try:
        compile_templates()
        prepare()
    except Exception:
        # A template that does not compile fails its own mails, which report it.
        log.warning("could not compile the mail templates before the first job", exc_info=True)

    try:
        with session_factory() as session:
            warm_up(session, utcnow())
    except Exception:
        # An empty or older database, say: the jobs then meet the problem and report it.
        log.warning("could not prepare the calendars before the first job", exc_info=True)
    settle_heap()


def _worker_child(settings: Settings, threads: int, level: int, supervisor: int) -> None:
    """One supervised worker process (the target of :func:`_supervise_workers`)."""
    # A spawned child starts with Python's default logging: the parent's level, and the
    # process id in each line so the children's lines can be told apart.
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    faulthandler.enable()  # a crash in a C extension shows every thread's Python stack
    # The supervisor's pid comes from the supervisor: read here with os.getppid(), it would
    # already be init's if the supervisor died while this process was starting.
    _stop_when_orphaned(supervisor)
    raise SystemExit(run_worker(settings, threads=threads))


def _stop_when_orphaned(parent: int, interval: float = 1.0) -> None:
    """A supervised worker stops (as on SIGTERM) when its supervisor is gone.

    A supervisor killed with SIGKILL (or crashed) cannot stop its children; left running they
    would keep taking jobs with nobody to restart or stop them (seen in the tests).
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.warning("the worker supervisor (pid %d) is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="pulpit-orphan-watch", daemon=True).start()


def _supervise_workers(settings: Settings, *, threads: int, processes: int) -> int:
    """Start ``processes`` worker processes, restart one that dies, stop all on a signal.

    Children are spawned (not forked): each opens its own database pool and broker
    connection, and nothing from this process's threads is copied half-way.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def start_one() -> Any:
        child = context.Process(
            target=_worker_child,
            args=(settings, threads, logging.getLogger().getEffectiveLevel(), os.getpid()),
            name="pulpit-worker",
            daemon=False,
        )
        child.start()
        log.info("started worker process %d (%d threads)", child.pid, threads)
        return child

    children = [start_one() for _ in range(processes)]
    with stop_on_signals(stop):
        while not stop.wait(1.0):
            for i, child in enumerate(children):
                if not child.is_alive():
                    log.error(
                        "worker process %d exited with %s; starting another",
                        child.pid,
                        child.exitcode,
                    )
                    children[i] = start_one()
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    for child in children:
        child.join(timeout=60)
        if child.is_alive():
            log.error("worker process %d did not stop in 60 s; killing it", child.pid)
            child.kill()
            child.join()
    return 0


def run_scheduler(settings: Settings) -> int:
    """The periodic scheduler in the foreground (``pulpit scheduler``); run one per instance."""
    from workers.broker import is_memory_broker, uninstall_dispatcher
    from workers.scheduler import Scheduler

    settings = settings.ensure_secret_key()
    stop = threading.Event()
    with database(settings, watch=True) as session_factory:
        broker = None
        if is_memory_broker(settings.broker_url):
            log.warning(
                "PULPIT_BROKER_URL is memory://: jobs the scheduled tasks send are not run by "
                "any worker outside `pulpit serve`"
            )
        else:
            broker = _wire_broker(settings, session_factory)
        try:
            scheduler = Scheduler(session_factory, scheduled_tasks(settings), stop_event=stop)
            settle_heap()
            with stop_on_signals(stop):
                scheduler.run()
        finally:
            if broker is not None:
                uninstall_dispatcher()
                broker.close()
    return 0
