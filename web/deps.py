"""Request dependencies: the database session (one unit of work per request) and who is asking.

A request is identified by ``Authorization: Bearer <token>`` (API clients) or by the
``pulpit_session`` cookie (the console). Handlers that change data commit before they answer
(API handlers explicitly, console forms through ``web.console.forms.form_post``), so a failed
commit is never reported as success; the dependency commits anything left and rolls back when
the handler raised.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
)
from sqlalchemy.orm import Session

from core.access import throttle
from core.access.accounts import csrf_matches, user_for_token, web_session_for
from core.access.login import needs_setup
from core.access.models import WebSession
from core.directory.models import User
from web.client_ip import client_ip, networks_of

SESSION_COOKIE = "pulpit_session"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """The console needs a logged-in user; answered with a redirect to the login page."""


class TwoStepRequired(Exception):
    """The user's role must use two-step login (``PULPIT_TWO_STEP_ROLES``) and they have not
    set it up; answered with a redirect to the set-up page, the only page open to them."""


# What a user who must set up two-step login can still reach (the language switch, static
# files and the login page take no user at all).
TWO_STEP_SETUP_PATHS = frozenset({"/profile/two-step", "/logout"})

TWO_STEP_API_REFUSAL = (
    "this session must set up two-step login first: open /profile/two-step in the console "
    "(API tokens are not affected)"
)


class TooManyAttempts(HTTPException):
    """429 with ``Retry-After``: too many failed credentials from this address or account."""

    status_code = 429


def request_ip(request: Request[Any, Any, Any]) -> str | None:
    """The client's address; X-Forwarded-For counts only from the proxies in
    PULPIT_TRUSTED_PROXIES (web/client_ip.py)."""
    if request.client is None:
        return None
    proxies = networks_of(getattr(request.app.state.settings, "trusted_proxies", "") or "")
    forwarded = request.headers.getall("x-forwarded-for", None) if proxies else None
    return client_ip(request.client.host, forwarded, proxies)


def too_many(lock: throttle.Locked) -> TooManyAttempts:
    until = lock.until.strftime("%Y-%m-%d %H:%M:%S")
    return TooManyAttempts(
        detail=f"too many failed attempts from this address; retry after {until} UTC",
        headers={"Retry-After": str(lock.retry_after())},
    )


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return ""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{parts.hostname}{port}".lower()


def check_origin(request: Request[Any, Any, Any]) -> None:
    """Refuse a form POST made by another site (the login and password-reset forms, which
    have no session and so no CSRF token yet): its ``Origin`` (else ``Referer``) must be this
    desk, as the request reached us or as ``PULPIT_PUBLIC_URL`` names it. Browsers send
    ``Origin`` on every cross-site POST; a request with neither header (a script, curl) is
    no browser another site could drive, and passes (docs/decisions.md)."""
    given = request.headers.get("origin")
    if given is None:
        referer = request.headers.get("referer")
        if not referer:
            return
        given = _origin_of(referer)
    mine = {
        _origin_of(str(request.base_url)),
        _origin_of(request.app.state.settings.public_url),
    }
    if given.strip().lower().rstrip("/") not in mine - {""}:
        raise PermissionDeniedException(
            detail="the form expired or came from another site; reload the page and try again"
        )


def provide_db(state: State) -> Generator[Session, None, None]:
    session: Session = state.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        # Detached first, so the rollback expires nothing: the console's error page still
        # names the user (web.app.console_exception_handler runs after this cleanup).
        session.expunge_all()
        session.rollback()
        raise
    finally:
        session.close()


def identify(request: Request[Any, Any, Any], db: Session) -> tuple[User | None, WebSession | None]:
    cached = request.scope.get("state", {}).get("pulpit_identity")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    user: User | None = None
    web_session: WebSession | None = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = _bearer_user(request, db, auth[7:].strip())
    else:
        raw = request.cookies.get(SESSION_COOKIE, "")
        web_session = web_session_for(db, raw) if raw else None
        user = web_session.user if web_session else None
    request.state.pulpit_identity = (user, web_session)
    return user, web_session


def _bearer_user(request: Request[Any, Any, Any], db: Session, raw: str) -> User | None:
    """The token's user; failed tokens count per address (``api-ip``) and a locked address is
    refused with 429 before the token is looked at, a valid one included."""
    ip = request_ip(request)
    lock = throttle.locked(db, [(throttle.API_ADDRESS, ip)])
    if lock is not None:
        raise too_many(lock)
    user = user_for_token(db, raw)
    if user is None:
        throttle.record_failure(db, throttle.API_ADDRESS, ip)
        db.commit()  # the refusal below rolls the request's work back, not this count
    return user


def provide_api_user(request: Request[Any, Any, Any], db: Session) -> User:
    user, web_session = identify(request, db)
    if user is None:
        raise NotAuthorizedException(
            detail="authentication required: send 'Authorization: Bearer <token>' "
            "(create one with 'pulpit token create --email ...')"
        )
    # A console session that must set up its second factor reaches the set-up page only.
    if web_session is not None and _needs_setup(request, db, user):
        raise PermissionDeniedException(detail=TWO_STEP_API_REFUSAL)
    # A browser using its session cookie against the API must prove it is our page (CSRF).
    if web_session is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
        if not csrf_matches(web_session.csrf_token, request.headers.get(CSRF_HEADER)):
            raise PermissionDeniedException(detail="missing or wrong X-CSRF-Token header")
    return user


def provide_console_user(request: Request[Any, Any, Any], db: Session) -> User:
    user, _ = identify(request, db)
    if user is None:
        raise LoginRequired()
    if request.url.path not in TWO_STEP_SETUP_PATHS and _needs_setup(request, db, user):
        raise TwoStepRequired()
    # The header of every page (the error page too) names the user's client or company.
    _loaded = (user.client, user.subcontractor)  # noqa: F841
    return user


def _needs_setup(request: Request[Any, Any, Any], db: Session, user: User) -> bool:
    settings = request.app.state.settings
    return needs_setup(
        db, user, settings.required_two_step_roles, settings.allowed_two_step_methods
    )


def check_csrf(
    request: Request[Any, Any, Any], web_session: WebSession | None, form: dict[str, Any]
) -> None:
    """Refuse a console POST whose form field or header lacks this session's CSRF token."""
    if web_session is None:  # bearer-token callers are not browsers; nothing to forge
        return
    given = request.headers.get(CSRF_HEADER) or form.get("csrf_token")
    if not isinstance(given, str) or not csrf_matches(web_session.csrf_token, given):
        raise PermissionDeniedException(
            detail="the form expired or came from another site; reload the page and try again"
        )


# Explicitly named dependencies (Litestar 3 drops inference by parameter name).
DB: TypeAlias = NamedDependency[Session]
CurrentUser: TypeAlias = NamedDependency[User]
