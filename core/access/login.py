"""Logging in: password, then the second factor, throttled and on the audit trail.

One entry, :func:`log_in`, serves the console's form (and scripts posting to it). It checks,
in order:

1. the cool-downs (``core.access.throttle``) of the account typed and of the client address:
   a locked key refuses with :class:`Throttled` (HTTP 429) before anything is checked, the
   right password included;
2. either the password (``email`` + ``password``, optionally with ``code``), or a pending
   challenge (``challenge`` + ``code``: the form's second step, which carries no password);
3. the user's second factor (:func:`method_of`): ``totp`` (an authenticator code, or one of
   the recovery codes), ``email`` (a 6-digit code mailed after the right password, valid
   :data:`EMAIL_CODE_TTL`, once) or ``none``.

A right password whose second factor is still missing opens a :class:`LoginChallenge` and
raises :class:`CodeNeeded` with its token (and, for ``email``, the code for the caller to mail:
``core.notify.login_alerts.mail_login_code``; core.access sits below notifications). A challenge
takes :data:`MAX_TRIES` wrong codes, then it is gone and the password step starts over. Every
wrong password or code is a failure of the account and of the address; every outcome is an
audit entry (``login``, ``login.failed``, ``login.locked``, ``login.throttled``) with the
address in ``data["ip"]``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.access import throttle
from core.access import two_step as totp
from core.access.accounts import AuthError, _password_matches, check_password, get_user_by_email
from core.access.models import LoginChallenge, RecoveryCode, UserTwoStep
from core.audit import AuditEntry
from core.clock import utcnow
from core.directory.models import User
from core.errors import N_, InputError

METHODS = ("totp", "email", "none")
MAX_TRIES = 5
EMAIL_CODE_TTL = timedelta(minutes=10)
CHALLENGE_TTL = timedelta(minutes=10)
# A right password within this long of the last mailed code does not mail another one.
EMAIL_CODE_RESEND = timedelta(seconds=60)
RECOVERY_CODES = 10

# The sentences of a refused login; the console translates them (login.html).
WRONG_PASSWORD = "wrong e-mail or password"
NEED_TOTP = "enter the code from your authenticator app"
WRONG_TOTP = "the authenticator code is wrong, expired or already used"
NEED_EMAIL_CODE = "enter the code we mailed you"
WRONG_EMAIL_CODE = "the mailed code is wrong, expired or already used"
START_OVER = "too many wrong codes or the login expired; enter your password again"


class Throttled(AuthError):
    """Too many failures for this account or address: refused until ``until``."""

    status_code = 429

    def __init__(self, lock: throttle.Locked) -> None:
        self.lock = lock
        self.until = lock.until
        super().__init__(
            f"too many failed attempts; retry after {lock.until.strftime('%Y-%m-%d %H:%M:%S')} UTC"
        )


class CodeNeeded(AuthError):
    """The password was right; the second factor is asked with the challenge's token."""

    def __init__(
        self,
        message: str,
        *,
        user: User,
        method: str,
        challenge: str,
        mail_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.user = user
        self.method = method
        self.challenge = challenge
        self.mail_code = mail_code


@dataclass
class Attempt:
    """Who is trying, from where (for the throttle and the audit trail)."""

    ip: str | None = None
    user_agent: str | None = None
    now: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class LockStarted:
    key: str
    failures: int
    until: datetime


@dataclass
class Outcome:
    """What :func:`log_in` did besides answering: the locks a failure started (to mail)."""

    locks: list[LockStarted] = field(default_factory=list)


# --- Methods ---------------------------------------------------------------------------------


def parse_methods(value: str) -> frozenset[str]:
    return frozenset(m.strip().lower() for m in value.split(",") if m.strip())


def method_of(session: Session, user: User) -> str:
    """The user's second factor: their choice, else ``totp`` with an app set up, else none."""
    row = session.get(UserTwoStep, user.id)
    if row is not None:
        return row.method
    return "totp" if user.totp_secret else "none"


def needs_setup(
    session: Session, user: User, required_roles: frozenset[str], allowed: frozenset[str]
) -> bool:
    """Whether this user must set up a second factor before anything else: an administrator
    chose ``totp`` and no app is set up yet, or the role needs one (``PULPIT_TWO_STEP_ROLES``)
    and the user has none of the allowed methods (``PULPIT_TWO_STEP_METHODS``)."""
    method = method_of(session, user)
    if method == "totp" and not user.totp_secret:
        return True
    if user.role in required_roles:
        return method == "none" or method not in allowed
    return False


def set_method(
    session: Session,
    user: User,
    method: str,
    *,
    actor: str | None,
    allowed: frozenset[str] | None = None,
) -> None:
    """Store the user's second factor. ``none`` also removes an app and its recovery codes;
    ``totp`` without an app makes the console send the user to set one up."""
    method = (method or "").strip().lower()
    if method not in METHODS:
        raise InputError(f"unknown two-step method {method!r}; use one of: {', '.join(METHODS)}")
    if allowed is not None and method != "none" and method not in allowed:
        raise InputError(N_("this two-step method is not allowed here"))
    row = session.get(UserTwoStep, user.id)
    if row is None:
        row = UserTwoStep(user_id=user.id, method=method)
        session.add(row)
    row.method = method
    row.updated_at = utcnow()
    if method != "totp":
        user.totp_secret = None
        user.totp_last_step = None
        session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.execute(delete(LoginChallenge).where(LoginChallenge.user_id == user.id))
    session.add(
        AuditEntry(
            actor=actor, action="two_step.method", data={"user": user.email, "method": method}
        )
    )
    session.flush()


def choose_method(
    session: Session,
    user: User,
    method: str,
    *,
    password: str,
    allowed: frozenset[str],
    required: bool,
) -> None:
    """The user's own choice on the profile page (``email`` or ``none``; ``totp`` is chosen
    by setting up an app): needs the password."""
    if not _password_matches(user, password):
        raise InputError(N_("the password is wrong"))
    if method == "none" and required:
        raise InputError(N_("your role needs two-step login; it cannot be turned off"))
    if method == "totp":
        raise InputError(N_("set up the authenticator app with its code"))
    set_method(session, user, method, actor=user.email, allowed=allowed)


# --- Recovery codes --------------------------------------------------------------------------

_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def _recovery_digest(user_id: int, code: str) -> str:
    normalized = "".join(c for c in code.lower() if c.isalnum())
    return hashlib.sha256(f"pulpit recovery:{user_id}:{normalized}".encode()).hexdigest()


def new_recovery_codes(session: Session, user: User, now: datetime | None = None) -> list[str]:
    """Ten new single-use codes (the old ones stop working), shown once: only hashes are kept.
    Each has 50 random bits; with the throttle, a fast hash is enough."""
    now = now or utcnow()
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        session.add(
            RecoveryCode(user_id=user.id, code_hash=_recovery_digest(user.id, code), created_at=now)
        )
    session.add(
        AuditEntry(actor=user.email, action="recovery_codes.generate", data={"user": user.email})
    )
    session.flush()
    return codes


def recovery_codes_left(session: Session, user: User) -> int:
    return len(
        session.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )


def use_recovery_code(session: Session, user: User, code: str, now: datetime | None = None) -> bool:
    digest = _recovery_digest(user.id, code)
    row = session.scalar(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == digest,
            RecoveryCode.used_at.is_(None),
        )
    )
    if row is None:
        return False
    row.used_at = now or utcnow()
    session.add(AuditEntry(actor=user.email, action="recovery_code.used", data={}))
    return True


# --- Challenges ------------------------------------------------------------------------------


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _code_digest(user_id: int, code: str) -> str:
    return hashlib.sha256(f"pulpit login code:{user_id}:{code}".encode()).hexdigest()


def _live_challenge(
    session: Session, user: User, method: str, now: datetime
) -> LoginChallenge | None:
    return session.scalar(
        select(LoginChallenge)
        .where(
            LoginChallenge.user_id == user.id,
            LoginChallenge.method == method,
            LoginChallenge.expires_at > now,
        )
        .order_by(LoginChallenge.id.desc())
        .limit(1)
    )


def _open_challenge(
    session: Session, user: User, method: str, now: datetime
) -> tuple[str, str | None]:
    """A challenge for the second factor: its token, and the code to mail (``email``; None
    when one was mailed within :data:`EMAIL_CODE_RESEND`, which keeps working)."""
    token = secrets.token_urlsafe(32)
    existing = _live_challenge(session, user, method, now)
    if (
        method == "email"
        and existing is not None
        and existing.code_hash is not None
        and now - existing.created_at < EMAIL_CODE_RESEND
    ):
        existing.token_hash = _digest(token)  # the form carries the new token; same code
        session.flush()
        return token, None
    session.execute(delete(LoginChallenge).where(LoginChallenge.user_id == user.id))
    code = None
    code_hash = None
    if method == "email":
        code = f"{secrets.randbelow(1_000_000):06d}"
        code_hash = _code_digest(user.id, code)
    ttl = EMAIL_CODE_TTL if method == "email" else CHALLENGE_TTL
    session.add(
        LoginChallenge(
            user_id=user.id,
            method=method,
            token_hash=_digest(token),
            code_hash=code_hash,
            tries=0,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    session.flush()
    return token, code


def _code_ok(
    session: Session,
    user: User,
    method: str,
    code: str,
    challenge: LoginChallenge | None,
    now: datetime,
) -> bool:
    code = "".join(code.split())
    if method == "email":
        return (
            challenge is not None
            and challenge.code_hash is not None
            and challenge.expires_at > now
            and hmac.compare_digest(challenge.code_hash, _code_digest(user.id, code))
        )
    if totp.accept_code(user, code, now.timestamp()):
        return True
    return use_recovery_code(session, user, code, now)


# --- Logging in ------------------------------------------------------------------------------


def _fail(
    session: Session,
    outcome: Outcome,
    attempt: Attempt,
    email: str,
    reason: str,
) -> None:
    actor = email.lower()[:255] or None
    session.add(
        AuditEntry(
            at=attempt.now,
            actor=actor,
            action="login.failed",
            data={"reason": reason, "ip": attempt.ip},
        )
    )
    for policy, value in ((throttle.ACCOUNT, email), (throttle.ADDRESS, attempt.ip)):
        failure = throttle.record_failure(session, policy, value, attempt.now)
        if failure.locked_until is not None:
            session.add(
                AuditEntry(
                    at=attempt.now,
                    actor=actor if policy is throttle.ACCOUNT else None,
                    action="login.locked",
                    data={
                        "key": failure.key,
                        "failures": failure.failures,
                        "until": failure.locked_until.isoformat(),
                        "ip": attempt.ip,
                    },
                )
            )
            outcome.locks.append(LockStarted(failure.key, failure.failures, failure.locked_until))


def check_throttle(session: Session, email: str, attempt: Attempt) -> None:
    """Raise :class:`Throttled` (audited) when the account or the address is cooling down."""
    lock = throttle.locked(
        session, [(throttle.ACCOUNT, email), (throttle.ADDRESS, attempt.ip)], attempt.now
    )
    if lock is not None:
        session.add(
            AuditEntry(
                at=attempt.now,
                actor=email.lower()[:255] or None,
                action="login.throttled",
                data={"key": lock.key, "until": lock.until.isoformat(), "ip": attempt.ip},
            )
        )
        raise Throttled(lock)


def log_in(
    session: Session,
    *,
    email: str,
    password: str,
    code: str | None,
    challenge: str | None,
    attempt: Attempt,
    outcome: Outcome | None = None,
) -> User:
    """The user whose credentials these are, or an :class:`AuthError` saying what is missing
    (:class:`Throttled`, :class:`CodeNeeded`). Writes the throttle and the audit entries; the
    caller commits either way (a refusal is recorded too) and mails ``outcome.locks``."""
    outcome = outcome if outcome is not None else Outcome()
    now = attempt.now
    code = (code or "").strip() or None
    pending: LoginChallenge | None = None
    if challenge and not password:
        pending = session.scalar(
            select(LoginChallenge).where(LoginChallenge.token_hash == _digest(challenge))
        )
        if pending is None or pending.expires_at <= now:
            raise AuthError(START_OVER)
        email = pending.user.email
    check_throttle(session, email, attempt)

    if pending is not None:
        user = pending.user
        method = pending.method
    else:
        user_or_none = check_password(session, email, password)
        if user_or_none is None:
            _fail(session, outcome, attempt, email, WRONG_PASSWORD)
            raise AuthError(WRONG_PASSWORD)
        user = user_or_none
        method = method_of(session, user)
        if method == "totp" and not user.totp_secret:
            method = "none"  # chosen by an administrator, not set up yet: the console sends
            # the session to the set-up page (needs_setup) and nowhere else
        if method == "email":
            pending = _live_challenge(session, user, "email", now)

    if method != "none":
        need = NEED_EMAIL_CODE if method == "email" else NEED_TOTP
        wrong = WRONG_EMAIL_CODE if method == "email" else WRONG_TOTP
        if code is None or (method == "email" and pending is None):
            if pending is not None and challenge and not password:
                raise CodeNeeded(need, user=user, method=method, challenge=challenge)
            token, mail_code = _open_challenge(session, user, method, now)
            raise CodeNeeded(need, user=user, method=method, challenge=token, mail_code=mail_code)
        if not _code_ok(session, user, method, code, pending, now):
            _fail(session, outcome, attempt, user.email, wrong)
            if pending is not None:
                pending.tries += 1
                if pending.tries >= MAX_TRIES:
                    session.delete(pending)
                    session.flush()
                    raise AuthError(START_OVER)
                session.flush()
            raise AuthError(wrong)
        if pending is not None:
            session.delete(pending)

    throttle.forget(session, throttle.ACCOUNT, email)
    throttle.forget(session, throttle.ACCOUNT, user.email)
    session.add(AuditEntry(at=now, actor=user.email, action="login", data={"ip": attempt.ip}))
    session.flush()
    return user


def user_by_email(session: Session, email: str) -> User | None:
    return get_user_by_email(session, email)
