"""Shared pieces of the console handlers: rendering, flash messages and form parsing.

Templates get *newstyle* gettext callables (``_("Hello %(name)s", name=x)``, Jinja's
``{% trans %}`` with variables), which format and escape the variables themselves; the app's
environment is installed with ``newstyle=True``, so this is what compiled ``trans`` blocks
expect.

Flash messages survive the POST/redirect/GET round trip in a short-lived cookie signed with
the instance's secret key, so nobody can plant a misleading message in someone's console.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from litestar import Request
from litestar.datastructures import UploadFile
from litestar.response import Redirect, Template
from markupsafe import Markup

from core.access.models import WebSession
from core.directory.models import User
from core.errors import InputError, localized
from core.tickets.timeline import NewAttachment
from web.i18n import Translator
from web.render import language_for, page

FLASH_COOKIE = "pulpit_flash"
FLASH_KINDS = ("ok", "error")


# --- Requests and translation ----------------------------------------------------------------


def translator(request: Request[Any, Any, Any], user: User | None) -> Translator:
    """The translator for this request's language, for sentences built in Python (flashes)."""
    return Translator(language_for(request, user))


def _template_gettext(tr: Translator) -> Callable[..., str]:
    @pass_eval_context
    def gettext(eval_ctx: EvalContext, message: str, **variables: Any) -> str:
        rv: str = tr.gettext(message)
        if eval_ctx.autoescape:
            rv = Markup(rv)  # the catalogue is trusted; the variables get escaped by Markup.%
        return rv % variables

    return gettext


def _template_ngettext(tr: Translator) -> Callable[..., str]:
    @pass_eval_context
    def ngettext(
        eval_ctx: EvalContext, singular: str, plural: str, num: int, **variables: Any
    ) -> str:
        variables.setdefault("num", num)
        rv: str = tr.ngettext(singular, plural, num)
        if eval_ctx.autoescape:
            rv = Markup(rv)
        return rv % variables

    return ngettext


def category_word(tr: Translator, category: str) -> str:
    """What a client reads for a status we keep internal: its category, in words."""
    words = {
        "new": tr.gettext("New"),
        "open": tr.gettext("In progress"),
        "paused": tr.gettext("Waiting"),
        "closed": tr.gettext("Closed"),
    }
    return words.get(category, category)


# --- Flash messages --------------------------------------------------------------------------


def _sign(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()[:32]


def encode_flash(secret: str, kind: str, text: str) -> str:
    payload = base64.urlsafe_b64encode(json.dumps([kind, text]).encode()).decode().rstrip("=")
    return f"{payload}.{_sign(secret, payload.encode())}"


def decode_flash(secret: str, raw: str | None) -> dict[str, str] | None:
    """The flash message in the cookie, or None when absent or not signed by us."""
    if not raw or "." not in raw:
        return None
    payload, sig = raw.rsplit(".", 1)
    if not hmac.compare_digest(sig, _sign(secret, payload.encode())):
        return None
    try:
        kind, text = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return None
    if kind not in FLASH_KINDS or not isinstance(text, str):
        return None
    return {"kind": kind, "text": text}


def redirect(
    request: Request[Any, Any, Any], path: str, flash: str | None = None, kind: str = "ok"
) -> Redirect:
    """A 303 to ``path`` (a local path) carrying an optional flash message to the next page."""
    response = Redirect(path=path, status_code=303)
    if flash:
        secret = request.app.state.settings.secret_key
        response.set_cookie(
            FLASH_COOKIE,
            encode_flash(secret, kind, flash),
            max_age=60,
            httponly=True,
            samesite="lax",
            path="/",
        )
    return response


# --- Rendering -------------------------------------------------------------------------------


def render(
    request: Request[Any, Any, Any],
    template: str,
    *,
    user: User | None,
    web_session: WebSession | None,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """``web.render.page`` plus newstyle gettext and the flash message (read once, then cleared)."""
    secret = request.app.state.settings.secret_key
    if user is not None:
        # The header names the user's client or company; load them here, in the handler's
        # thread, rather than lazily while the template renders on the event loop.
        _loaded = (user.client, user.subcontractor)  # noqa: F841
    raw_flash = request.cookies.get(FLASH_COOKIE)
    flash = decode_flash(secret, raw_flash)
    context.setdefault("flash", flash)
    context.setdefault("error", None)
    response = page(
        request,
        template,
        user=user,
        web_session=web_session,
        status_code=status_code,
        **context,
    )
    tr = Translator(response.context["lang"])
    gettext = _template_gettext(tr)
    response.context.update(_=gettext, gettext=gettext, ngettext=_template_ngettext(tr))
    if raw_flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def refusal(request: Request[Any, Any, Any], user: User | None, exc: InputError) -> str:
    """Core's sentence for a refusal, in the language of this request (``core.errors``)."""
    return localized(exc, translator(request, user).gettext)


def error_page(
    request: Request[Any, Any, Any],
    user: User | None,
    web_session: WebSession | None,
    exc: InputError,
) -> Template:
    """A refusal as a full console page (header, user, language) with core's sentence and
    status; the app-wide handler covers the rest but knows neither the user nor the page."""
    return render(
        request,
        "error.html",
        user=user,
        web_session=web_session,
        status_code=exc.status_code,
        message=refusal(request, user, exc),
        status=exc.status_code,
    )


# --- Forms and query strings -----------------------------------------------------------------


def form_str(data: Mapping[str, Any], key: str) -> str:
    """A single text field; a repeated field keeps its last value, as browsers send one."""
    value = data.get(key)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value.strip() if isinstance(value, str) else ""


def form_list(data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def form_uploads(data: Mapping[str, Any], key: str = "files") -> list[NewAttachment]:
    """Uploaded files of a multipart form; an empty file input arrives as '' and is skipped."""
    value = data.get(key)
    values = value if isinstance(value, list) else [value]
    attachments = []
    for item in values:
        if not isinstance(item, UploadFile) or not item.filename:
            continue
        # Handlers run in a worker thread (sync_to_thread), so the blocking read is fine here.
        content = item.file.read()
        item.file.close()
        if not content:
            continue
        attachments.append(
            NewAttachment(
                filename=item.filename,
                content_type=item.content_type or "application/octet-stream",
                data=content,
            )
        )
    return attachments


def clean_query(raw: str) -> str:
    """A query string rebuilt from its parsed pairs, so a form's ``back`` field cannot smuggle
    anything but parameters into a redirect."""
    pairs = [(k, v) for k, v in parse_qsl(raw or "", keep_blank_values=False) if k != "page" or v]
    return urlencode(pairs)


def query_url(path: str, params: Mapping[str, Any], **changes: Any) -> str:
    """``path`` with the current parameters, some changed; empty values are dropped."""
    merged = {k: v for k, v in params.items() if v not in (None, "", False)}
    for key, value in changes.items():
        if value in (None, "", False):
            merged.pop(key, None)
        else:
            merged[key] = value
    query = urlencode([(k, "1" if v is True else str(v)) for k, v in merged.items()])
    return f"{path}?{query}" if query else path
