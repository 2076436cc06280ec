"""Login alerts (issue 5, "Login alerts"): mail people about logins they may not have made.

* A failed login for an existing, active account mails its owner ``login_failed`` (time, IP,
  browser), at most once per :data:`FAILED_WINDOW` per account. Unknown addresses get nothing
  (mailing them, or mailing differently, would tell a stranger which accounts exist); the
  caller's ``login.failed`` audit entry is the only trace.
* :data:`ATTACK_THRESHOLD` or more failures for one account within :data:`FAILED_WINDOW` also
  mail ``login_attack`` to every active admin, at most once per account and admin per
  :data:`ATTACK_WINDOW`.
* A successful login from a browser without a valid device cookie (:data:`DEVICE_COOKIE`, an
  HMAC of the user id and a random device id under the instance's secret key) mails the user
  ``login_new_device``; the caller then sets the cookie, and that browser is known from then on.

No table of its own: failures are counted from the ``login.failed`` audit entries the console
writes (their ``actor`` is the address as typed, lower-cased), and the rate limits read the
outbox (``OutboundMail``) and its ``dedupe_key``. Every mail is queued with
:func:`core.mail.outbox.queue_mail` in the caller's transaction, ``Auto-Submitted: auto-generated``,
in the recipient's language, with no ticket. A session without a notification config
(:func:`core.notify.notifications.config_of` is None) sends nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.access.accounts import get_user_by_email
from core.audit import AuditEntry
from core.clock import utcnow
from core.directory.models import User
from core.mail.models import OutboundMail
from core.mail.outbox import DEFAULT_TIMEZONE, mailable, queue_mail
from core.notify.notifications import config_of

log = logging.getLogger(__name__)

DEVICE_COOKIE = "pulpit_device"
DEVICE_MAX_AGE = 365 * 86400  # seconds: one year
FAILED_WINDOW = timedelta(minutes=15)
ATTACK_THRESHOLD = 5
ATTACK_WINDOW = timedelta(hours=1)
_UA_LIMIT = 300


# --- The device cookie -----------------------------------------------------------------------


def _signature(secret: str, user_id: int, device_id: str) -> str:
    message = f"pulpit-device:{user_id}:{device_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def new_device_token(secret: str, user_id: int) -> str:
    """A cookie value naming a new browser of ``user_id``: ``<device id>.<HMAC>``."""
    if not secret:
        raise ValueError("the device cookie needs the instance's secret key")
    device_id = secrets.token_urlsafe(16)
    return f"{device_id}.{_signature(secret, user_id, device_id)}"


def device_known(secret: str, user_id: int, token: str | None) -> bool:
    """Whether ``token`` is a device cookie this instance issued to ``user_id``."""
    if not secret or not token or token.count(".") != 1:
        return False
    device_id, signature = token.split(".")
    if not device_id or not signature:
        return False
    return hmac.compare_digest(signature, _signature(secret, user_id, device_id))


# --- Shared pieces ---------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _console_url(public_url: str) -> str:
    return public_url.rstrip("/") + "/tickets"


def _sent_since(session: Session, template: str, to: str, since: datetime) -> bool:
    found = session.scalar(
        select(OutboundMail.id)
        .where(
            OutboundMail.template == template,
            OutboundMail.to_addr == to,
            OutboundMail.created_at >= since,
        )
        .limit(1)
    )
    return found is not None


def _user_context(
    user: User, now: datetime, ip: str | None, user_agent: str | None, public_url: str
) -> dict[str, Any]:
    return {
        "recipient": user.display,
        "account": user.email,
        "at": _iso(now),
        "timezone": DEFAULT_TIMEZONE,
        "ip": ip or None,
        "user_agent": (user_agent or "")[:_UA_LIMIT] or None,
        "url": _console_url(public_url),
    }


# --- The hooks the console calls ---------------------------------------------------------------


def on_login_failed(
    session: Session,
    *,
    email: str,
    ip: str | None,
    user_agent: str | None,
    now: datetime | None = None,
) -> list[OutboundMail]:
    """After a refused login (its ``login.failed`` audit entry already added): queue alerts."""
    config = config_of(session)
    if config is None:
        return []
    now = now or utcnow()
    address = (email or "").strip().lower()
    if "@" not in address:
        return []
    user = get_user_by_email(session, address)
    if user is None or not user.active:
        return []  # unknown or disabled: no mail, so nothing leaks
    session.flush()  # count the caller's own audit entry
    queued: list[OutboundMail] = []

    if mailable(user) and not _sent_since(session, "login_failed", user.email, now - FAILED_WINDOW):
        bucket = int(now.timestamp() // FAILED_WINDOW.total_seconds())
        row = queue_mail(
            session,
            template="login_failed",
            to=user.email,
            context=_user_context(user, now, ip, user_agent, config.public_url),
            mail_domain=config.mail_domain,
            language=user.language,
            auto_submitted="auto-generated",
            dedupe_key=f"login_failed:{user.id}:{bucket}",
            now=now,
        )
        if row is not None:
            queued.append(row)

    failures = (
        session.scalar(
            select(func.count(AuditEntry.id)).where(
                AuditEntry.action == "login.failed",
                func.lower(AuditEntry.actor) == user.email,
                AuditEntry.at >= now - FAILED_WINDOW,
            )
        )
        or 0
    )
    if failures >= ATTACK_THRESHOLD:
        queued.extend(_alert_admins(session, user, failures, now, ip, user_agent))
    return queued


def _alert_admins(
    session: Session,
    user: User,
    failures: int,
    now: datetime,
    ip: str | None,
    user_agent: str | None,
) -> list[OutboundMail]:
    config = config_of(session)
    assert config is not None
    context = {
        **_user_context(user, now, ip, user_agent, config.public_url),
        "failures": int(failures),
        "window_minutes": int(FAILED_WINDOW.total_seconds() // 60),
    }
    queued = _mail_once_per_window(
        session, _active_admins(session), "login_attack", str(user.id), ATTACK_WINDOW, context, now
    )
    if queued:
        log.warning(
            "%d failed logins for %s within %s: admins alerted", failures, user.email, FAILED_WINDOW
        )
    return queued


def on_login(
    session: Session,
    *,
    user: User,
    secret: str,
    device_cookie: str | None,
    ip: str | None,
    user_agent: str | None,
    now: datetime | None = None,
) -> str | None:
    """After a successful login: the new device cookie to set, or None for a known browser.

    A browser without a valid cookie for ``user`` is new: the user is mailed
    ``login_new_device`` (when notifications are configured) and gets a fresh cookie.
    """
    if device_known(secret, user.id, device_cookie):
        return None
    now = now or utcnow()
    config = config_of(session)
    if config is not None and mailable(user):
        queue_mail(
            session,
            template="login_new_device",
            to=user.email,
            context=_user_context(user, now, ip, user_agent, config.public_url),
            mail_domain=config.mail_domain,
            language=user.language,
            auto_submitted="auto-generated",
            now=now,
        )
    return new_device_token(secret, user.id)


# --- Issue 11: the mailed login code, locks, password reset -----------------------------------


def mail_login_code(
    session: Session,
    *,
    user: User,
    code: str,
    minutes: int,
    ip: str | None,
    user_agent: str | None,
    now: datetime | None = None,
) -> OutboundMail | None:
    """The one-time code of a login whose second factor is ``email`` (``login_code``), to the
    user, through the outbox. Sent even to an address marked as bouncing: it is the only way
    in, and the user is waiting for it. Nothing without a notification config."""
    config = config_of(session)
    if config is None or not user.active:
        return None
    now = now or utcnow()
    return queue_mail(
        session,
        template="login_code",
        to=user.email,
        context={
            **_user_context(user, now, ip, user_agent, config.public_url),
            "code": code,
            "minutes": minutes,
        },
        mail_domain=config.mail_domain,
        language=user.language,
        auto_submitted="auto-generated",
        now=now,
    )


LOCK_MAIL_WINDOW = timedelta(hours=1)


def on_lock(
    session: Session,
    *,
    key: str,
    failures: int,
    until: datetime,
    ip: str | None,
    user_agent: str | None,
    now: datetime | None = None,
) -> list[OutboundMail]:
    """A throttle key started a cool-down (``core.access.throttle``): ``login_locked`` to every
    active admin and, for an account lock, to the account's owner; at most once per key and
    recipient per :data:`LOCK_MAIL_WINDOW` (the lock doubles; the mails do not)."""
    config = config_of(session)
    if config is None:
        return []
    now = now or utcnow()
    kind, _, value = key.partition(":")
    owner = get_user_by_email(session, value) if kind == "account" else None
    if kind == "account" and (owner is None or not owner.active):
        return []  # an unknown address: the audit entries only, as for its failures
    recipients = ([owner] if owner is not None else []) + _active_admins(session)
    context = {
        "account": value if kind == "account" else None,
        "ip": ip or (value if kind in ("ip", "api-ip") else None),
        "failures": int(failures),
        "until": _iso(until),
        "at": _iso(now),
        "timezone": DEFAULT_TIMEZONE,
        "user_agent": (user_agent or "")[:_UA_LIMIT] or None,
        "url": _console_url(config.public_url),
    }
    queued = _mail_once_per_window(
        session, recipients, "login_locked", key, LOCK_MAIL_WINDOW, context, now
    )
    if queued:
        log.warning("login key %s locked until %s after %d failures", key, until, failures)
    return queued


def mail_password_reset(
    session: Session,
    *,
    user: User,
    link: str,
    minutes: int,
    ip: str | None,
    user_agent: str | None,
    now: datetime | None = None,
) -> OutboundMail | None:
    """The reset link (``password_reset``) to the account's own address, never elsewhere."""
    config = config_of(session)
    if config is None or not user.active:
        return None
    now = now or utcnow()
    context = _user_context(user, now, ip, user_agent, config.public_url)
    context.update(url=link, minutes=minutes)
    return queue_mail(
        session,
        template="password_reset",
        to=user.email,
        context=context,
        mail_domain=config.mail_domain,
        language=user.language,
        auto_submitted="auto-generated",
        now=now,
    )


def _mailed_recently(session: Session, dedupe_prefix: str, since: datetime) -> bool:
    """Was a mail whose dedupe key starts with ``dedupe_prefix`` queued since ``since``? One
    such mail per window is enough to tell someone about an ongoing attack."""
    found = session.scalar(
        select(OutboundMail.id)
        .where(
            OutboundMail.dedupe_key.like(dedupe_prefix + "%"),
            OutboundMail.created_at >= since,
        )
        .limit(1)
    )
    return found is not None


def _active_admins(session: Session) -> list[User]:
    return list(
        session.scalars(
            select(User).where(User.role == "admin", User.active.is_(True)).order_by(User.id)
        )
    )


def _mail_once_per_window(
    session: Session,
    people: list[User],
    template: str,
    key: str,
    window: timedelta,
    context: dict[str, Any],
    now: datetime,
) -> list[OutboundMail]:
    """``template`` to each mailable person (once each), unless they got it about ``key``
    within ``window``: an attack or a lock that goes on is told once per window."""
    config = config_of(session)
    assert config is not None
    bucket = int(now.timestamp() // window.total_seconds())
    queued: list[OutboundMail] = []
    seen: set[int] = set()
    for person in people:
        if person.id in seen or not mailable(person):
            continue
        seen.add(person.id)
        prefix = f"{template}:{key}:{person.id}:"
        if _mailed_recently(session, prefix, now - window):
            continue
        row = queue_mail(
            session,
            template=template,
            to=person.email,
            context={**context, "recipient": person.display},
            mail_domain=config.mail_domain,
            language=person.language,
            auto_submitted="auto-generated",
            dedupe_key=f"{prefix}{bucket}",
            now=now,
        )
        if row is not None:
            queued.append(row)
    return queued
