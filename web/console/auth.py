"""Console login and logout: a form POST to /login with email, password (and code) fields,
answered with a redirect and a server-side session cookie (docs/api.md)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from core.access.accounts import AuthError, authenticate, create_web_session, end_web_session
from core.audit import AuditEntry
from core.notify.login_alerts import DEVICE_COOKIE, DEVICE_MAX_AGE, on_login, on_login_failed
from web.client_ip import client_ip, networks_of
from web.console.forms import FormDict
from web.deps import DB, SESSION_COOKIE, check_csrf, identify
from web.i18n import LANGUAGES
from web.render import page


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect after login is a phishing tool.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/tickets"
    return target


def _client_ip(request: Request[Any, Any, Any]) -> str | None:
    # X-Forwarded-For counts only from the proxies in PULPIT_TRUSTED_PROXIES (web/client_ip.py).
    if request.client is None:
        return None
    proxies = networks_of(getattr(request.app.state.settings, "trusted_proxies", "") or "")
    forwarded = request.headers.getall("x-forwarded-for", None) if proxies else None
    return client_ip(request.client.host, forwarded, proxies)


def _user_agent(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("user-agent") or None


@get("/login", sync_to_thread=True, name="login")
def login_form(
    request: Request[Any, Any, Any], db: DB, next: str | None = None
) -> Template | Redirect:
    user, _ = identify(request, db)
    if user is not None:
        return Redirect(path=_safe_next(next), status_code=303)
    return page(request, "login.html", next=_safe_next(next), email="", error=None)


@post("/login", sync_to_thread=True, status_code=303)
def login_submit(
    request: Request[Any, Any, Any],
    db: DB,
    data: FormDict,
) -> Template | Redirect:
    email = str(data.get("email") or "").strip()
    password = str(data.get("password") or "")
    code = str(data.get("code") or "").strip() or None
    target = _safe_next(str(data.get("next") or ""))
    try:
        user = authenticate(db, email, password, code)
    except AuthError as exc:
        # Lower-cased, so core.notify.login_alerts counts the failures of one account however typed.
        actor = email.lower()[:255] or None
        db.add(AuditEntry(actor=actor, action="login.failed", data={"reason": str(exc)}))
        # The owner (and, after repeated failures, the admins) are mailed; unknown addresses
        # only leave the audit entry.
        on_login_failed(db, email=email, ip=_client_ip(request), user_agent=_user_agent(request))
        db.commit()
        return page(
            request,
            "login.html",
            status_code=401,
            next=target,
            email=email,
            error=str(exc),
            need_code="code" in str(exc),
        )
    settings = request.app.state.settings
    new = create_web_session(
        db, user, hours=settings.session_hours, user_agent=request.headers.get("user-agent")
    )
    db.add(AuditEntry(actor=user.email, action="login", data={}))
    # A browser without our device cookie for this user is new: mail the user, remember it.
    device = on_login(
        db,
        user=user,
        secret=settings.secret_key,
        device_cookie=request.cookies.get(DEVICE_COOKIE),
        ip=_client_ip(request),
        user_agent=_user_agent(request),
    )
    db.commit()
    response = Redirect(path=target, status_code=303)
    if device is not None:
        response.set_cookie(
            DEVICE_COOKIE,
            device,
            httponly=True,
            samesite="lax",
            secure=settings.public_url.startswith("https://"),
            max_age=DEVICE_MAX_AGE,
            path="/",
        )
    response.set_cookie(
        SESSION_COOKIE,
        new.raw,
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
        max_age=settings.session_hours * 3600,
        path="/",
    )
    return response


@post("/logout", sync_to_thread=True, status_code=303)
def logout(
    request: Request[Any, Any, Any],
    db: DB,
    data: FormDict,
) -> Redirect:
    # A forged logout only annoys, but it is one more thing another site could do to our
    # users; the header's logout button carries the token like every console form.
    check_csrf(request, identify(request, db)[1], data or {})
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        end_web_session(db, raw)
        db.commit()
    response = Redirect(path="/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@get("/lang/{code:str}", sync_to_thread=False)
def set_language(request: Request[Any, Any, Any], code: str) -> Redirect:
    referer = request.headers.get("referer") or "/tickets"
    path = "/" + referer.split("://", 1)[-1].split("/", 1)[-1] if "://" in referer else referer
    response = Redirect(path=_safe_next(path), status_code=303)
    if code in LANGUAGES:
        response.set_cookie("lang", code, max_age=365 * 86400, samesite="lax", path="/")
    return response
