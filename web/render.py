"""Rendering console pages: one place adds the user, CSRF token, language and translations."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from core.access.models import WebSession
from core.clock import utcnow
from core.directory.models import User
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
