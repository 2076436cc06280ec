"""Group commit for the SMTP gateway: mails that arrive together share one transaction.

Each ``DATA`` needs its message durably stored before the ``250``. Storing one message per
transaction costs a session, a flush and a commit (a WAL flush on PostgreSQL) per mail, and
under a burst the connections queue for the database one by one. Here one writer thread takes
every message waiting at that moment, stores them in one unit of work and commits once, then
answers each (the classic group commit of databases and MTAs), and only then sends their
processing jobs to the broker. Nothing waits for a batch to
fill: a lone message is stored at once, and a burst forms batches by itself while the previous
commit runs. The one wait is for messages already on their way: a connection whose ``DATA``
has ended announces its message (:meth:`GroupCommitter.announce`) while its content is being
written, and a batch waits for the announced ones, at most :data:`WAIT_FOR_ANNOUNCED` seconds,
before it commits. Under load that joins mails that would each have had a commit of their own
a moment later (with 8 connections, batches averaged 2.9 mails before; each commit is a
transaction, a WAL flush and a ``mail.process`` job).

If a batch fails, each of its messages is tried alone, so one message that cannot be stored
(and the sender told ``451``) does not fail the others; with the database down every one of
them fails and every sender gets ``451``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from core.db import Job, send_jobs
from core.mail.inbound import Arrival

log = logging.getLogger(__name__)

# Enough to absorb a burst on a few hundred connections; a bigger batch only makes the first
# message of it wait longer.
MAX_BATCH = 64

# How long a batch waits for announced messages whose content is still being written (a
# write and its fsyncs take about a millisecond here); a message that takes longer goes in
# the next batch.
WAIT_FOR_ANNOUNCED = 0.003


@dataclass
class _Pending:
    arrival: Arrival
    future: Future[int] = field(default_factory=Future)


Store = Callable[[Sequence[Arrival]], tuple[list[int], list[Job]]]


class GroupCommitter:
    """Runs ``store(arrivals) -> (ids, jobs)`` (one committed transaction) on one writer
    thread; answers the waiting senders, then sends the jobs (:func:`core.db.send_jobs`)."""

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = MAX_BATCH,
        wait_for_announced: float = WAIT_FOR_ANNOUNCED,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._wait = wait_for_announced
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pulpit-store", daemon=True)
        self._lock = threading.Lock()
        self._closed = False
        # Messages announced and not submitted (or withdrawn) yet.
        self._announced = 0
        self._thread.start()

    def announce(self) -> None:
        """A message is on its way: its ``DATA`` has ended and its content is being written.
        Follow with :meth:`submit`, or :meth:`withdraw` when it will not come."""
        with self._lock:
            self._announced += 1

    def withdraw(self) -> None:
        """An announced message will not be submitted (writing its content failed)."""
        with self._lock:
            self._announced = max(self._announced - 1, 0)

    def submit(self, arrival: Arrival) -> Future[int]:
        """The inbound row id once the message is committed; or the storing error. Counts as
        the arrival of one announced message, if any was announced."""
        pending = _Pending(arrival)
        with self._lock:
            self._announced = max(self._announced - 1, 0)
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
            deadline: float | None = None
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    if not self._announced:
                        break
                    # Messages on their way: wait a moment for them to join this batch.
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self._wait
                    if now >= deadline:
                        break
                    try:
                        more = self._queue.get(timeout=deadline - now)
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
