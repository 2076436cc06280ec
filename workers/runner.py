"""Running Dramatiq workers: in the background of ``pulpit serve`` or in the foreground.

``pulpit serve`` runs a few worker threads next to the web server (the only way jobs sent to
``memory://`` are ever consumed); ``pulpit worker`` runs them as the whole process, for a real
broker. Both use ``dramatiq.Worker`` directly rather than the ``dramatiq`` command line, so the
actors are declared by ``workers.actors.register_actors`` with the process's own settings and
database, not discovered by importing modules.
"""

from __future__ import annotations

import logging
import threading

import dramatiq

log = logging.getLogger(__name__)

# How long a stop waits for jobs in progress before giving up on them; an interrupted job is
# redelivered by a real broker, and every actor is idempotent.
DEFAULT_STOP_TIMEOUT_SECONDS = 30.0


class WorkerHandle:
    """A started ``dramatiq.Worker``; ``stop()`` is safe to call more than once."""

    def __init__(self, worker: dramatiq.Worker) -> None:
        self._worker = worker
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def worker(self) -> dramatiq.Worker:
        return self._worker

    def join(self, timeout_seconds: float | None = None) -> None:
        """Wait until every queued message is processed (for tests and scripts).

        ``Worker.join`` alone only waits for messages already fetched by a consumer, so the
        broker's queues are drained first.
        """
        broker = self._worker.broker
        timeout = None if timeout_seconds is None else int(timeout_seconds * 1000)
        for queue in sorted(broker.get_declared_queues()):
            broker.join(queue, timeout=timeout)
        self._worker.join()

    def stop(self, timeout_seconds: float = DEFAULT_STOP_TIMEOUT_SECONDS) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._worker.stop(timeout=int(timeout_seconds * 1000))


def start_in_process_worker(broker: dramatiq.Broker, threads: int = 2) -> WorkerHandle:
    """Start consumer and worker threads for every queue declared on ``broker``.

    Declare the actors first: the worker listens on the queues known when it starts.
    """
    # worker_timeout is how often idle threads wake to notice a stop; 1 s keeps shutdown quick.
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=1000)
    worker.start()
    log.info(
        "started %d worker thread(s) on queue(s) %s",
        threads,
        ", ".join(sorted(broker.get_declared_queues())) or "(none)",
    )
    return WorkerHandle(worker)


def run_worker(broker: dramatiq.Broker, stop: threading.Event, threads: int = 8) -> None:
    """Run a worker in the foreground until ``stop`` is set (by a signal handler)."""
    handle = start_in_process_worker(broker, threads=threads)
    try:
        stop.wait()
    finally:
        log.info("stopping the worker; waiting for jobs in progress")
        handle.stop()
