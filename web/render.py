"""Rendering console pages: one place adds the user, CSRF token, language and translations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from litestar import Request
from litestar.response import Template
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from core.access.models import WebSession
from core.clock import utcnow
from core.directory.models import User
from web.deps import SESSION_COOKIE, identify
from web.i18n import LANGUAGES, Translator, pick_language


def language_for(request: Request[Any, Any, Any], user: User | None) -> str:
    settings = request.app.state.settings
    return pick_language(
        request.cookies.get("lang"),
        user.language if user else None,
        accept_language=request.headers.get("accept-language"),
        default=settings.default_language,
    )


def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    user: User | None = None,
    web_session: WebSession | None = None,
    status_code: int = 200,
    **context: Any,
) -> Template:
    lang = language_for(request, user)
    tr = Translator(lang)
    context.update(
        request=request,
        user=user,
        csrf_token=web_session.csrf_token if web_session else "",
        lang=lang,
        languages=LANGUAGES,
        _=tr.gettext,
        gettext=tr.gettext,
        ngettext=tr.ngettext,
        now=utcnow(),
    )
    return Template(template_name=template, context=context, status_code=status_code)


# --- Who is asking, for the error page ----------------------------------------------------------


@dataclass(frozen=True)
class Named:
    name: str


@dataclass(frozen=True)
class RoleView:
    """A custom role as ``core.access.permissions.can`` reads it."""

    name: str
    grant: tuple[str, ...]
    deny: tuple[str, ...]


@dataclass(frozen=True)
class UserView:
    """What the layout (``base.html``) and the language choice read of a user, as plain values:
    the error page renders after the request's session is closed, where the ORM user may be
    expired and detached."""

    id: int
    email: str
    name: str | None
    role: str
    language: str
    is_staff: bool
    display: str
    client: Named | None
    subcontractor: Named | None
    custom_role: RoleView | None = None

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            language=user.language,
            is_staff=user.is_staff,
            display=user.display,
            client=Named(user.client.name) if user.client else None,
            subcontractor=Named(user.subcontractor.name) if user.subcontractor else None,
            custom_role=RoleView(
                user.custom_role.name,
                tuple(user.custom_role.grant or ()),
                tuple(user.custom_role.deny or ()),
            )
            if user.custom_role
            else None,
        )


@dataclass(frozen=True)
class SessionView:
    csrf_token: str


def _user_view(request: Request[Any, Any, Any], user: User) -> UserView | None:
    try:
        return UserView.of(user)
    except SQLAlchemyError:  # expired and detached: read it again in a short session of its own
        pass
    identity = inspect(user).identity
    if not identity:
        return None
    try:
        with request.app.state.session_factory() as db:
            fresh = db.get(User, identity[0])
            return UserView.of(fresh) if fresh is not None else None
    except SQLAlchemyError:  # the database is why we are here: render without the user
        return None


def snapshot_identity(request: Request[Any, Any, Any]) -> tuple[User | None, WebSession | None]:
    """The request's user and console session (``web.deps.identify``) as plain copies that
    stay readable after the request's session is gone, or ``(None, None)``. Typed as the
    models they stand in for: the templates read only the attributes they copy."""
    cached = getattr(request.state, "pulpit_identity", None)
    if cached is None and request.cookies.get(SESSION_COOKIE):
        # Refused before the dependencies ran (a path no route matches): who is it?
        return _identify_afresh(request)
    user, web_session = cached or (None, None)
    view = _user_view(request, user) if user is not None else None
    token: str | None = None
    if web_session is not None and view is not None:
        try:
            token = web_session.csrf_token
        except SQLAlchemyError:
            token = None
    session_view = SessionView(token) if token else None
    return cast("User | None", view), cast("WebSession | None", session_view)


def _identify_afresh(request: Request[Any, Any, Any]) -> tuple[User | None, WebSession | None]:
    try:
        with request.app.state.session_factory() as db:
            user, web_session = identify(request, db)
            view = UserView.of(user) if user is not None else None
            token = web_session.csrf_token if web_session is not None and view else None
    except SQLAlchemyError:
        return None, None
    session_view = SessionView(token) if token else None
    return cast("User | None", view), cast("WebSession | None", session_view)
