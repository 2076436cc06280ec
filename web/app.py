"""The Litestar application factory: wires settings, database, templates, API and console."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Litestar, MediaType, Request, Response, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from msgspec import DecodeError
from sqlalchemy.exc import DataError, OperationalError

from config.settings import Settings
from core.blobs import open_blob_store
from core.db import configure_secret_key, make_engine, make_session_factory
from core.errors import N_, BulkRefused, InputError, localized
from core.mail.outbox import derive_mail_domain
from core.notify import notifications
from web import filters, mail_html
from web.deps import (
    LoginRequired,
    TwoStepRequired,
    provide_api_user,
    provide_console_user,
    provide_db,
)
from web.render import snapshot_identity
from web.security import LocalRedoc, security_headers

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).parent


def _validation_sentence(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in extra[:5]:
        if isinstance(item, dict):
            key = item.get("key") or item.get("source") or ""
            parts.append(f"{key}: {item.get('message', '')}".strip(": "))
    detail = exc.detail or "the request is not valid"
    return f"{detail}: {'; '.join(parts)}" if parts else detail


# Input no check at the edge caught but that is still the caller's, not a bug of ours: a body
# nested deeper than the decoder recurses, a number or date beyond what Python or the database
# holds. A 400 with a sentence (and a warning in the log, in case a check is missing).
BAD_INPUT: tuple[tuple[type[BaseException], str], ...] = (
    (RecursionError, N_("the request is nested too deeply to read")),
    (OverflowError, N_("a number or date in the request is out of range")),
    (DataError, N_("a value in the request is out of range for the database")),
    (DecodeError, N_("the request body is not valid JSON")),
    (UnicodeDecodeError, N_("the request is not valid UTF-8")),
)


def bad_input_sentence(request: Request[Any, Any, Any], exc: BaseException) -> str | None:
    """The sentence for ``exc`` when it is one of :data:`BAD_INPUT`, else None."""
    for kind, sentence in BAD_INPUT:
        if isinstance(exc, kind):
            log.warning(
                "bad input on %s %s: %s", request.method, request.url.path, type(exc).__name__
            )
            return sentence
    return None


def error_body(status_code: int, detail: str, **extra: Any) -> dict[str, Any]:
    """The body of every API error: ``{"status_code", "detail"}`` (docs/api.md)."""
    return {"status_code": status_code, "detail": detail, **extra}


def api_exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Every API error is ``{"status_code", "detail": sentence}`` with a 4xx; a 500 only for
    our bugs."""
    if isinstance(exc, BulkRefused):
        reasons = {str(k): v for k, v in exc.reasons.items()}
        return Response(
            error_body(exc.status_code, str(exc), reasons=reasons), status_code=exc.status_code
        )
    if isinstance(exc, InputError):
        return Response(error_body(exc.status_code, str(exc)), status_code=exc.status_code)
    if isinstance(exc, ValidationException):
        return Response(error_body(400, _validation_sentence(exc)), status_code=400)
    if isinstance(exc, HTTPException):
        return Response(
            error_body(exc.status_code, exc.detail),
            status_code=exc.status_code,
            headers=exc.headers,
        )
    if isinstance(exc, OperationalError):
        log.exception("database error on %s %s", request.method, request.url.path)
        return Response(
            error_body(503, "the database is not answering; try again shortly"), status_code=503
        )
    sentence = bad_input_sentence(request, exc)
    if sentence is not None:
        return Response(error_body(400, sentence), status_code=400)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(
        error_body(500, "internal error; the administrators can find it in the log"),
        status_code=500,
    )


# Litestar's own refusals the console shows, in words a person reads (translated).
CONSOLE_SENTENCES = {
    "the form expired or came from another site; reload the page and try again": N_(
        "the form expired or came from another site; reload the page and try again"
    ),
    "Not Found": N_("This page does not exist."),
}


def console_exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Every console error the page's own form did not answer (``web.console.forms``): a
    login or two-step redirect, or the error page with the user's header and core's sentence
    in their language. The unit of work is rolled back by then (``web.deps.provide_db``)."""
    from web.console.common import redirect, render, translator

    if isinstance(exc, LoginRequired):
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return Redirect(path=f"/login?next={filters.quote(target)}", status_code=303)
    # Plain copies of who is asking, never the ORM objects: their session is closed (and maybe
    # rolled back) by now, and touching them would raise DetachedInstanceError.
    user, web_session = snapshot_identity(request)
    if isinstance(exc, TwoStepRequired):
        return redirect(
            request,
            "/profile/two-step",
            translator(request, user).gettext(
                "Your role needs two-step login: set it up to continue."
            ),
            kind="error",
        )
    gettext = translator(request, user).gettext
    if isinstance(exc, InputError):
        status, message = exc.status_code, localized(exc, gettext)
    elif isinstance(exc, HTTPException):
        known = CONSOLE_SENTENCES.get(exc.detail)
        status, message = exc.status_code, gettext(known) if known else exc.detail
    elif (sentence := bad_input_sentence(request, exc)) is not None:
        status, message = 400, gettext(sentence)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status = 500
        message = gettext("internal error; the administrators can find it in the log")
    try:
        return render(  # type: ignore[return-value]
            request,
            "error.html",
            user=user,
            web_session=web_session,
            status_code=status,
            message=message,
            status=status,
        )
    except Exception:  # the error page itself must never hide the original error
        log.exception("error page failed")
        return Response(message, status_code=status, media_type=MediaType.TEXT)


def _template_engine() -> JinjaTemplateEngine:
    env = Environment(
        loader=FileSystemLoader(str(WEB_DIR / "templates")),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Per-request gettext/ngettext are passed in the context by web.render.page; these
    # globals are only the fallback for templates rendered outside a request.
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    filters.install(env)
    env.filters["mail_srcdoc"] = mail_html.srcdoc
    env.filters["remote_images"] = mail_html.remote_images
    return JinjaTemplateEngine.from_environment(env)


def create_app(settings: Settings, *, session_factory: Any = None) -> Litestar:
    """Build the ASGI app. ``session_factory`` lets tests share an engine with the app."""
    settings = settings.ensure_secret_key()
    if session_factory is None:
        engine = make_engine(settings.resolved_database_url)
        session_factory = make_session_factory(engine)
    # Console and API sessions send ticket notifications (core.notify.notifications), with
    # reply addresses signed by the instance's key (core.mail.reply_address).
    configure_secret_key(session_factory, settings.secret_key)
    notifications.configure(
        session_factory,
        notifications.NotifyConfig(
            mail_domain=derive_mail_domain(settings.mail_domain, settings.public_url),
            public_url=settings.public_url,
        ),
    )
    state = State(
        {
            "settings": settings,
            "session_factory": session_factory,
            "blobs": open_blob_store(settings.blob_url, settings.blob_dir, session_factory),
        }
    )

    from web.metrics import Metrics, metrics_endpoint

    # /metrics (docs/metrics.md): the desk's figures from the database, this process's HTTP
    # latency; a registry of this app's own.
    metrics = Metrics(session_factory, settings.metrics_token)
    state.metrics = metrics

    from web.api import api_handlers
    from web.console import console_handlers
    from web.console.forms import console_dependencies

    api = Router(
        path="/api/v1",
        route_handlers=api_handlers,
        dependencies={"user": Provide(provide_api_user, sync_to_thread=True)},
        exception_handlers={Exception: api_exception_handler},
        tags=["api"],
    )
    console = Router(
        path="/",
        route_handlers=console_handlers,
        dependencies={
            "user": Provide(provide_console_user, sync_to_thread=True),
            **console_dependencies,
        },
        exception_handlers={Exception: console_exception_handler},
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/static", directories=[WEB_DIR / "static"], include_in_schema=False
    )

    def not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
        if request.url.path.startswith("/api/"):
            return Response(
                error_body(404, f"no such endpoint: {request.url.path}"), status_code=404
            )
        return console_exception_handler(request, exc)

    return Litestar(
        route_handlers=[api, console, static, metrics_endpoint],
        dependencies={"db": Provide(provide_db)},
        state=state,
        template_config=TemplateConfig(instance=_template_engine()),
        openapi_config=OpenAPIConfig(
            title="Pulpit API",
            version="1",
            path="/schema",
            description="Pulpit's JSON API. Authenticate with 'Authorization: Bearer <token>'.",
            # Served from /static, not a CDN: /schema renders on a desk without internet.
            render_plugins=[LocalRedoc()],
        ),
        middleware=[security_headers, metrics.middleware],
        exception_handlers={NotFoundException: not_found},
        request_max_body_size=settings.max_message_bytes + 1_048_576,
        # The process (pulpit serve/web) owns logging; Litestar must not reconfigure the root.
        logging_config=LoggingConfig(configure_root_logger=False),
        debug=False,
    )
