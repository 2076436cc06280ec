"""Throttling of credentials: failures per account and per client address, in the database.

Each key (``account:<e-mail as typed, lower-cased>``, ``ip:<address>``, ``api-ip:<address>``
for failed API tokens, ``reset:<e-mail>`` and ``reset-ip:<address>`` for password-reset
requests) is one ``login_throttles`` row: its failures, when the last one was and the
cool-down it earned. A key's :class:`Policy` says after how many failures the cool-down starts
(:attr:`Policy.threshold`); it lasts :data:`FIRST_LOCK` then doubles with every further
failure, up to :data:`MAX_LOCK`. While a key is locked nothing is checked, the right password
included: the caller answers 429 and says when to retry. A locked attempt is not a failure,
so the lock does not grow while someone keeps knocking.

Failures are forgotten :data:`FORGET_AFTER` after the last failure or the end of the last lock
(whichever is later); a successful login forgets its account's failures, never its address's
(someone could otherwise log into their own account between guesses). The table is the shared
truth of every web process, unlike an in-memory limiter; the row is read and written in the
caller's transaction.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.access.models import LoginThrottle
from core.clock import utcnow

FIRST_LOCK = timedelta(minutes=1)
MAX_LOCK = timedelta(hours=1)
FORGET_AFTER = timedelta(hours=1)
PURGE_ONE_IN = 200  # failures; each purge deletes the rows with nothing left to remember


@dataclass(frozen=True)
class Policy:
    prefix: str
    threshold: int


# Five wrong passwords or codes for one account; twenty from one address (an office behind
# one NAT mistypes too); twenty bad API tokens from one address; reset requests are cheap
# to make but each one mails, so five per address typed and twenty per client address.
ACCOUNT = Policy("account", 5)
ADDRESS = Policy("ip", 20)
API_ADDRESS = Policy("api-ip", 20)
RESET_ACCOUNT = Policy("reset", 5)
RESET_ADDRESS = Policy("reset-ip", 20)


def key(policy: Policy, value: str | None) -> str:
    return f"{policy.prefix}:{(value or '-').strip().lower()}"[:320]


@dataclass(frozen=True)
class Locked:
    """A refusal: which key is locked and until when."""

    key: str
    until: datetime

    def retry_after(self, now: datetime | None = None) -> int:
        """Whole seconds until the lock ends (at least 1), for ``Retry-After``."""
        seconds = (self.until - (now or utcnow())).total_seconds()
        return max(1, math.ceil(seconds))


def _row(session: Session, k: str) -> LoginThrottle | None:
    return session.get(LoginThrottle, k)


def locked(
    session: Session, keys: list[tuple[Policy, str | None]], now: datetime | None = None
) -> Locked | None:
    """The lock that refuses this attempt (the one ending last), or None."""
    now = now or utcnow()
    names = [key(p, v) for p, v in keys]
    rows = session.scalars(
        select(LoginThrottle).where(LoginThrottle.key.in_(names), LoginThrottle.locked_until > now)
    ).all()
    if not rows:
        return None
    row = max(rows, key=lambda r: r.locked_until or now)
    assert row.locked_until is not None
    return Locked(row.key, row.locked_until)


def lock_for(policy: Policy, failures: int) -> timedelta | None:
    """The cool-down earned by ``failures`` under ``policy``: none below the threshold, then
    :data:`FIRST_LOCK` doubling with each failure, capped at :data:`MAX_LOCK`."""
    if failures < policy.threshold:
        return None
    doublings = min(failures - policy.threshold, 20)
    return min(FIRST_LOCK * (2**doublings), MAX_LOCK)


@dataclass(frozen=True)
class Failure:
    key: str
    failures: int
    locked_until: datetime | None  # set when this failure started a lock


def record_failure(
    session: Session, policy: Policy, value: str | None, now: datetime | None = None
) -> Failure:
    """Count one failure for the key; returns the count and the lock it started, if any."""
    now = now or utcnow()
    k = key(policy, value)
    row = _row(session, k)
    if row is None:
        row = LoginThrottle(key=k, failures=0)
        session.add(row)
    last = max((t for t in (row.last_failure_at, row.locked_until) if t is not None), default=None)
    if last is not None and now - last > FORGET_AFTER:
        row.failures = 0
    row.failures = (row.failures or 0) + 1
    row.last_failure_at = now
    if secrets.randbelow(PURGE_ONE_IN) == 0:
        purge(session, now)  # now and then, so keys nobody repeats do not pile up
    lock = lock_for(policy, row.failures)
    started = None
    if lock is not None:
        row.locked_until = now + lock
        started = row.locked_until
    session.flush()
    return Failure(k, row.failures, started)


def forget(session: Session, policy: Policy, value: str | None) -> None:
    """A success: the key's failures are forgotten."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == key(policy, value)))


def purge(session: Session, now: datetime | None = None) -> int:
    """Remove rows with nothing left to remember (for a periodic clean-up)."""
    now = now or utcnow()
    cutoff = now - FORGET_AFTER
    result = session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < cutoff,
            (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < cutoff),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
