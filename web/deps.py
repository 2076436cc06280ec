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

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from sqlalchemy.orm import Session

from core.access.accounts import csrf_matches, user_for_token, web_session_for
from core.access.models import WebSession
from core.directory.models import User

SESSION_COOKIE = "pulpit_session"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """The console needs a logged-in user; answered with a redirect to the login page."""


class TwoStepRequired(Exception):
    """The user's role must use two-step login (``PULPIT_TWO_STEP_ROLES``) and they have not
    set it up; answered with a redirect to the set-up page, the only page open to them."""


# What a user who must set up two-step login can still reach.
TWO_STEP_SETUP_PATHS = frozenset({"/profile/two-step", "/logout"})


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
        user = user_for_token(db, auth[7:].strip())
    else:
        raw = request.cookies.get(SESSION_COOKIE, "")
        web_session = web_session_for(db, raw) if raw else None
        user = web_session.user if web_session else None
    request.state.pulpit_identity = (user, web_session)
    return user, web_session


def provide_api_user(request: Request[Any, Any, Any], db: Session) -> User:
    user, web_session = identify(request, db)
    if user is None:
        raise NotAuthorizedException(
            detail="authentication required: send 'Authorization: Bearer <token>' "
            "(create one with 'pulpit token create --email ...')"
        )
    # A browser using its session cookie against the API must prove it is our page (CSRF).
    if web_session is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
        if not csrf_matches(web_session.csrf_token, request.headers.get(CSRF_HEADER)):
            raise PermissionDeniedException(detail="missing or wrong X-CSRF-Token header")
    return user


def provide_console_user(request: Request[Any, Any, Any], db: Session) -> User:
    user, _ = identify(request, db)
    if user is None:
        raise LoginRequired()
    if (
        not user.totp_secret
        and user.role in request.app.state.settings.required_two_step_roles
        and request.url.path not in TWO_STEP_SETUP_PATHS
    ):
        raise TwoStepRequired()
    # The header of every page (the error page too) names the user's client or company.
    _loaded = (user.client, user.subcontractor)  # noqa: F841
    return user


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
