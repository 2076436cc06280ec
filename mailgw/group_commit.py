"""Group commit for the SMTP gateway: mails that arrive together share one transaction.

Each ``DATA`` needs its message durably stored before the ``250``. Storing one message per
transaction costs a session, a flush and a commit (a WAL flush on PostgreSQL) per mail, and
under a burst the connections queue for the database one by one. Here one writer thread takes
every message waiting at that moment, stores them in one unit of work and commits once, then
answers each (the classic group commit of databases and MTAs), and only then sends their
processing jobs to the broker. Nothing waits for a batch to
fill: a lone message is stored at once, and a burst forms batches by itself while the previous
commit runs.

If a batch fails, each of its messages is tried alone, so one message that cannot be stored
(and the sender told ``451``) does not fail the others; with the database down every one of
them fails and every sender gets ``451``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from core.db import Job, send_jobs
from core.mail.inbound import Arrival

log = logging.getLogger(__name__)

# Enough to absorb a burst on a few hundred connections; a bigger batch only makes the first
# message of it wait longer.
MAX_BATCH = 64


@dataclass
class _Pending:
    arrival: Arrival
    future: Future[int] = field(default_factory=Future)


Store = Callable[[Sequence[Arrival]], tuple[list[int], list[Job]]]


class GroupCommitter:
    """Runs ``store(arrivals) -> (ids, jobs)`` (one committed transaction) on one writer
    thread; answers the waiting senders, then sends the jobs (:func:`core.db.send_jobs`)."""

    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pulpit-store", daemon=True)
        self._lock = threading.Lock()
        self._closed = False
        self._thread.start()

    def submit(self, arrival: Arrival) -> Future[int]:
        """The inbound row id once the message is committed; or the storing error."""
        pending = _Pending(arrival)
        with self._lock:
            if self._closed:
                pending.future.set_exception(RuntimeError("the gateway is stopping"))
                return pending.future
            self._queue.put(pending)
        return pending.future

    def close(self, timeout: float = 30.0) -> None:
        """Store what was submitted, then stop the writer thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            ids, jobs = self._store([p.arrival for p in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            log.warning("storing a batch of %d messages failed; storing each alone", len(batch))
            for pending in batch:
                self._commit([pending])
            return
        for pending, inbound_id in zip(batch, ids, strict=True):
            pending.future.set_result(inbound_id)
        # After the answers: a lost job costs a sweep's delay, a slow answer costs every sender.
        send_jobs(jobs)
