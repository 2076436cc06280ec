"""People and access: users, argon2 passwords, TOTP second factor, API tokens, web sessions.

Passwords are hashed with argon2id (argon2-cffi's defaults, rehashed when those change).
API tokens and session ids are 256-bit random values, so their sha256 is stored: a fast hash
is safe for high-entropy secrets and keeps the per-request lookup an indexed equality.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, event, func, inspect, select
from sqlalchemy.orm import Session, joinedload

from core.access import two_step as totp
from core.access.models import ApiToken, LoginChallenge, RecoveryCode, UserTwoStep, WebSession
from core.audit import AuditEntry
from core.clock import utcnow
from core.db import transaction_memo
from core.directory.models import ROLE_ALIASES, ROLES, Client, Role, Subcontractor, User
from core.errors import N_, InputError

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so a login takes the same time either way.
_DUMMY_HASH = _hasher.hash("pulpit-dummy-password")
TOKEN_PREFIX = "pulpit_"


class AuthError(InputError):
    """Login refused. The message never says whether the account exists."""

    status_code = 401


# Characters no address we store or mail to may hold (RFC 5322 specials outside a quoted
# local part, which we do not accept, and anything that is not printable).
_NOT_IN_ADDRESS = frozenset('<>()[]\\,;:" ')


def normalize_email(email: str) -> str:
    """``email`` stripped and lowercased, or an InputError: one ``@`` between a non-empty
    local part and domain, nothing that would make it two addresses or none (``a@b@c``)."""
    email = (email or "").strip().lower()
    local, at, domain = email.partition("@")
    if (
        not at
        or not local
        or not domain
        or "@" in domain
        or len(email) > 254
        or any(ch in _NOT_IN_ADDRESS or not ch.isprintable() for ch in email)
        or domain.startswith(".")
        or domain.endswith(".")
        or ".." in domain
    ):
        raise InputError(N_("%(email)r is not an e-mail address"), email=email)
    return email


def normalize_role(role: str) -> str:
    r = (role or "").strip().lower()
    r = ROLE_ALIASES.get(r, r)
    if r not in ROLES:
        raise InputError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    return r


def hash_password(password: str) -> str:
    if len(password) < 4:
        raise InputError("a password must have at least 4 characters")
    return _hasher.hash(password)


def get_user_by_email(session: Session, email: str) -> User | None:
    key = email.strip().lower()
    known: dict[str, User | None] | None = transaction_memo(session).get(_PEOPLE)
    if known is not None and key in known:
        user = known[key]
        if user is not None:
            return user
        if not any(isinstance(o, User) and o.email == key for o in session.new):
            return None  # looked up for the whole batch: nobody had this address
    # With the client: routing a sender's mail, and most callers, ask for it next.
    return session.scalar(select(User).options(joinedload(User.client)).where(User.email == key))


_PEOPLE = "people_by_email"


def prefetch_people(session: Session, emails: Iterable[str]) -> None:
    """Look these addresses up in one query for the rest of the transaction: a batch of
    inbound mail (``mailgw.process.run_batch``) asks for each sender once per mail.

    :func:`get_user_by_email` answers from it while the transaction lasts. A flush that adds a
    person, or changes or removes one, forgets their addresses, so a contact created by one
    mail of the batch is found by the next.
    """
    wanted = {e.strip().lower() for e in emails if e and "@" in e}
    if not wanted:
        return
    found = {
        u.email: u
        for u in session.scalars(
            select(User).options(joinedload(User.client)).where(User.email.in_(sorted(wanted)))
        )
    }
    known: dict[str, User | None] = transaction_memo(session).setdefault(_PEOPLE, {})
    for key in wanted:
        known[key] = found.get(key)


@event.listens_for(Session, "before_flush")
def _forget_changed_people(session: Session, _context: Any, _instances: Any) -> None:
    known: dict[str, User | None] | None = session.info.get("pulpit_transaction_memo", {}).get(
        _PEOPLE
    )
    if not known:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, User):
            history = inspect(obj).attrs.email.history
            for value in (obj.email, *(history.deleted or ())):
                if isinstance(value, str):
                    known.pop(value.strip().lower(), None)


def upsert_user(
    session: Session,
    *,
    email: str,
    role: str,
    name: str | None = None,
    password: str | None = None,
    client: str | None = None,
    subcontractor: str | None = None,
    language: str | None = None,
    manager: bool | None = None,
) -> User:
    """Create the user or update the given fields of an existing one (matched by e-mail).
    ``role`` may name a custom role (``roles:`` in the configuration): the user gets its base
    as ``role`` and it as ``custom_role``."""
    email = normalize_email(email)
    custom = session.scalar(select(Role).where(Role.name == (role or "").strip()))
    role = custom.base if custom is not None else normalize_role(role)
    client_obj = None
    if client:
        client_obj = session.scalar(select(Client).where(Client.name == client))
        if client_obj is None:
            raise InputError(f"no client named {client!r}")
    sub_obj = None
    if subcontractor:
        sub_obj = session.scalar(select(Subcontractor).where(Subcontractor.name == subcontractor))
        if sub_obj is None:
            raise InputError(f"no subcontractor named {subcontractor!r}")
    if role == "subcontractor" and sub_obj is None:
        existing = get_user_by_email(session, email)
        if existing is None or existing.subcontractor_id is None:
            raise InputError("a subcontractor user needs --subcontractor (the company's name)")
    user = get_user_by_email(session, email)
    if user is None:
        user = User(email=email, role=role, language=language or "pl", manager=bool(manager))
        session.add(user)
    user.role = role
    user.custom_role = custom
    if name is not None:
        user.name = name
    if password is not None:
        user.password_hash = hash_password(password)
    if client_obj is not None:
        user.client = client_obj
    if sub_obj is not None:
        user.subcontractor = sub_obj
    if language is not None:
        user.language = language
    if manager is not None:
        user.manager = manager
    session.flush()
    return user


def check_password(session: Session, email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None; takes the same time for an
    unknown address (a dummy hash is verified). Rehashes when argon2's defaults changed."""
    user = get_user_by_email(session, email or "")
    if user is None or not user.password_hash or not user.active:
        try:
            _hasher.verify(_DUMMY_HASH, password or "x")
        except VerificationError:
            pass
        return None
    try:
        _hasher.verify(user.password_hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def authenticate(session: Session, email: str, password: str, code: str | None = None) -> User:
    """Check e-mail, password and (when the user has one) the TOTP code, with no throttle and
    no audit: for scripts and tests. The console logs in with ``core.access.login.log_in``."""
    user = check_password(session, email, password)
    if user is None:
        raise AuthError("wrong e-mail or password")
    if user.totp_secret:
        if not code:
            raise AuthError("enter the code from your authenticator app")
        if not totp.accept_code(user, code):
            raise AuthError("the authenticator code is wrong, expired or already used")
    return user


def _password_matches(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        return bool(_hasher.verify(user.password_hash, password or ""))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def enable_totp(session: Session, user: User, *, secret: str, code: str, password: str) -> None:
    """Turn on the second factor with ``secret``, once the user proved both halves.

    The password (someone at an unlocked console must not lock its owner out) and a code from
    the app for this secret (the app was really set up). Audited.
    """
    if user.totp_secret:
        raise InputError(N_("two-step login is already on; turn it off first to change the app"))
    if not _password_matches(user, password):
        raise InputError(N_("the password is wrong"))
    secret = "".join(secret.split()).upper()
    step = totp.matching_step(secret, code) if len(secret) >= 16 else None
    if step is None:
        raise InputError(N_("the code does not match: check the clock of the phone and try again"))
    user.totp_secret = secret
    user.totp_last_step = step
    chosen = session.get(UserTwoStep, user.id)
    if chosen is not None:
        chosen.method = "totp"  # an app set up replaces a mailed code
    session.add(AuditEntry(actor=user.email, action="totp.enable", data={"user": user.email}))
    session.flush()


def disable_totp(session: Session, user: User, *, code: str, password: str) -> None:
    """Turn off the second factor; needs the password and a current code. Audited."""
    if not user.totp_secret:
        raise InputError(N_("two-step login is not on"))
    if not _password_matches(user, password):
        raise InputError(N_("the password is wrong"))
    if not totp.accept_code(user, code):
        raise InputError(N_("the authenticator code is wrong, expired or already used"))
    user.totp_secret = None
    user.totp_last_step = None
    session.execute(delete(UserTwoStep).where(UserTwoStep.user_id == user.id))
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.add(AuditEntry(actor=user.email, action="totp.disable", data={"user": user.email}))
    session.flush()


def reset_totp(session: Session, email: str, *, actor: str | None) -> User:
    """An administrator's way back in for someone who lost the phone: the factor is removed
    and every web session of the user ends, so they log in again with the password alone."""
    user = get_user_by_email(session, email)
    if user is None:
        raise InputError(f"no user with the e-mail {email!r}")
    had = bool(user.totp_secret)
    user.totp_secret = None
    user.totp_last_step = None
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.execute(delete(LoginChallenge).where(LoginChallenge.user_id == user.id))
    session.add(
        AuditEntry(actor=actor, action="totp.reset", data={"user": user.email, "was_on": had})
    )
    session.flush()
    return user


# --- Passwords: change and reset --------------------------------------------------------------

RESET_TTL = timedelta(minutes=30)
_RESET_LABEL = "pulpit password reset v1"


def change_password(
    session: Session,
    user: User,
    *,
    old: str,
    new: str,
    repeat: str,
    keep_session: str | None = None,
) -> None:
    """The owner's change on the profile: the old password first. The user's other web
    sessions end (someone who knew the old one is logged out); ``keep_session`` (the raw
    cookie of the browser making the change) stays. Audited."""
    if not _password_matches(user, old):
        raise InputError(N_("the current password is wrong"))
    _set_new_password(user, new, repeat)
    query = delete(WebSession).where(WebSession.user_id == user.id)
    if keep_session:
        query = query.where(WebSession.session_hash != _digest(keep_session))
    session.execute(query)
    session.add(AuditEntry(actor=user.email, action="password.change", data={}))
    session.flush()


def _set_new_password(user: User, new: str, repeat: str) -> None:
    if new != repeat:
        raise InputError(N_("the two new passwords differ"))
    if len(new) < 8:
        raise InputError(N_("a new password must have at least 8 characters"))
    user.password_hash = _hasher.hash(new)


def _reset_mac(secret: str, user: User, expires: int) -> str:
    # Bound to the current password hash: once the password changes (this link used, or any
    # other change), the link no longer verifies. Single use without a table.
    message = f"{_RESET_LABEL}:{user.id}:{expires}:{user.password_hash or ''}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:40]


def password_reset_token(
    secret: str, user: User, now: datetime | None = None, ttl: timedelta = RESET_TTL
) -> str:
    """``<user id>.<expiry, unix seconds>.<HMAC>``: the last part of the mailed reset link."""
    if not secret:
        raise ValueError("a reset link needs the instance's secret key")
    expires = int(((now or utcnow()) + ttl).timestamp())
    return f"{user.id}.{expires}.{_reset_mac(secret, user, expires)}"


def user_for_reset_token(
    session: Session, secret: str, token: str, now: datetime | None = None
) -> User | None:
    """The active user a reset link is for, or None when it is forged, used or expired."""
    parts = (token or "").split(".")
    if not secret or len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    user = session.get(User, int(parts[0]))
    if user is None or not user.active:
        return None
    expires = int(parts[1])
    if expires <= (now or utcnow()).timestamp():
        return None
    if not hmac.compare_digest(parts[2], _reset_mac(secret, user, expires)):
        return None
    return user


def reset_password(
    session: Session, secret: str, token: str, *, new: str, repeat: str, now: datetime | None = None
) -> User:
    """Set a new password from a reset link: every web session of the user ends (API tokens
    stay: docs/decisions.md), the link and pending login codes die with the old hash."""
    user = user_for_reset_token(session, secret, token, now)
    if user is None:
        raise InputError(N_("this link is expired or was used already; ask for a new one"))
    _set_new_password(user, new, repeat)
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.execute(delete(LoginChallenge).where(LoginChallenge.user_id == user.id))
    session.add(AuditEntry(actor=user.email, action="password.reset", data={}))
    session.flush()
    return user


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_api_token(session: Session, user: User, *, actor: str | None = None) -> str:
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, token_hash=_digest(raw), prefix=raw[:12]))
    session.add(AuditEntry(actor=actor, action="token.create", data={"user": user.email}))
    session.flush()
    return raw


def user_for_token(session: Session, raw: str, now: datetime | None = None) -> User | None:
    if not raw:
        return None
    token = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _digest(raw), ApiToken.revoked_at.is_(None))
    )
    if token is None or not token.user.active:
        return None
    now = now or utcnow()
    # Writing on every request would serialise API reads on SQLite; a minute's precision is plenty.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
    return token.user


@dataclass(frozen=True)
class NewSession:
    raw: str
    csrf_token: str
    user: User


def create_web_session(
    session: Session,
    user: User,
    *,
    hours: int = 12,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> NewSession:
    now = now or utcnow()
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            session_hash=_digest(raw),
            user=user,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
            user_agent=(user_agent or "")[:500],
        )
    )
    session.flush()
    return NewSession(raw=raw, csrf_token=csrf, user=user)


def web_session_for(session: Session, raw: str, now: datetime | None = None) -> WebSession | None:
    if not raw:
        return None
    ws = session.scalar(select(WebSession).where(WebSession.session_hash == _digest(raw)))
    now = now or utcnow()
    if ws is None or ws.expires_at <= now or not ws.user.active:
        return None
    return ws


def end_web_session(session: Session, raw: str) -> None:
    session.execute(delete(WebSession).where(WebSession.session_hash == _digest(raw)))


def purge_expired_sessions(session: Session, now: datetime | None = None) -> int:
    now = now or utcnow()
    result = session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected, given or "")


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count(User.id))) or 0)
