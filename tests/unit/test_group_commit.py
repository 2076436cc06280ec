"""The gateway's group committer: waiting mails share a store call, one bad mail fails alone.

``mailgw.group_commit.GroupCommitter`` with a store function of the test's own (no database):
what matters here is the batching and the failure rule, the storing itself is tested through
real SMTP in tests/integration/test_smtp_gateway.py and tests/e2e/test_gateway_kill.py.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from core.mail.inbound import Arrival
from mailgw.group_commit import GroupCommitter

TIMEOUT = 10.0


class Store:
    """Records each call's batch; refuses a batch that holds a poisoned mail."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[list[bytes]] = []
        self.gate = gate
        self.entered = threading.Event()
        self.next_id = 0

    def __call__(self, arrivals: Sequence[Arrival]) -> tuple[list[int], list[tuple[str, dict]]]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(TIMEOUT)
        self.calls.append([a.raw for a in arrivals])
        if any(a.raw == b"poison" for a in arrivals):
            raise OSError("disk full")
        ids = list(range(self.next_id, self.next_id + len(arrivals)))
        self.next_id += len(arrivals)
        return ids, []


def test_a_lone_mail_is_stored_at_once() -> None:
    store = Store()
    committer = GroupCommitter(store)
    try:
        assert committer.submit(Arrival(b"one")).result(TIMEOUT) == 0
    finally:
        committer.close()
    assert store.calls == [[b"one"]]


def test_mails_waiting_while_a_commit_runs_share_the_next_one() -> None:
    gate = threading.Event()
    store = Store(gate)
    committer = GroupCommitter(store)
    try:
        first = committer.submit(Arrival(b"first"))
        assert store.entered.wait(TIMEOUT)  # the writer is storing "first", held at the gate
        rest = [committer.submit(Arrival(f"m{n}".encode())) for n in range(5)]
        gate.set()
        ids = [first.result(TIMEOUT)] + [f.result(TIMEOUT) for f in rest]
    finally:
        committer.close()
    assert sorted(ids) == list(range(6))
    # The five that queued while "first" was being stored went in one call together.
    assert store.calls == [[b"first"], [f"m{n}".encode() for n in range(5)]]


def test_one_unstorable_mail_fails_alone() -> None:
    gate = threading.Event()
    store = Store(gate)
    committer = GroupCommitter(store)
    try:
        futures = [committer.submit(Arrival(raw)) for raw in (b"a", b"poison", b"b", b"c")]
        gate.set()
        with pytest.raises(OSError, match="disk full"):
            futures[1].result(TIMEOUT)
        stored = [f.result(TIMEOUT) for i, f in enumerate(futures) if i != 1]
    finally:
        committer.close()
    assert len(set(stored)) == 3


def test_after_close_a_mail_is_refused_not_lost_silently() -> None:
    committer = GroupCommitter(Store())
    committer.close()
    with pytest.raises(RuntimeError, match="stopping"):
        committer.submit(Arrival(b"late")).result(TIMEOUT)


def test_a_batch_waits_a_moment_for_a_mail_announced_on_its_way() -> None:
    """A connection whose DATA ended announces its mail while its content is written; the
    batch being formed waits for it instead of committing without it."""
    store = Store()
    committer = GroupCommitter(store, wait_for_announced=TIMEOUT)
    try:
        committer.announce()  # "second" is on its way
        first = committer.submit(Arrival(b"first"))  # counts as the one announced...
        committer.announce()  # ...so announce "second" now, as its connection would
        assert not store.entered.wait(0.2)  # the batch waits for it
        second = committer.submit(Arrival(b"second"))
        assert (first.result(TIMEOUT), second.result(TIMEOUT)) == (0, 1)
    finally:
        committer.close()
    assert store.calls == [[b"first", b"second"]]


def test_nothing_announced_or_a_withdrawn_mail_is_not_waited_for() -> None:
    store = Store()
    committer = GroupCommitter(store, wait_for_announced=TIMEOUT)
    try:
        assert committer.submit(Arrival(b"alone")).result(TIMEOUT) == 0
        committer.announce()
        committer.withdraw()  # its content could not be written: it will not come
        assert committer.submit(Arrival(b"next")).result(TIMEOUT) == 1
    finally:
        committer.close()
    assert store.calls == [[b"alone"], [b"next"]]


def test_an_announced_mail_that_is_late_goes_in_the_next_batch() -> None:
    store = Store()
    committer = GroupCommitter(store, wait_for_announced=0.05)
    try:
        committer.announce()
        committer.announce()
        first = committer.submit(Arrival(b"first"))
        assert first.result(TIMEOUT) == 0  # committed after the wait, without the late one
        late = committer.submit(Arrival(b"late"))
        assert late.result(TIMEOUT) == 1
    finally:
        committer.close()
    assert store.calls == [[b"first"], [b"late"]]
