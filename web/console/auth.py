"""Console login and logout: a form POST to /login with email, password (and code) fields,
answered with a redirect and a server-side session cookie (docs/api.md).

The checks are ``core.access.login.log_in``'s (throttle, password, second factor). A right
password whose second factor is missing answers the form's second step: the same ``code``
field, with a hidden one-use ``challenge`` instead of the password (the page never carries the
password back). Scripts may post all three fields at once instead. A cross-site POST is
refused by its ``Origin`` (``web.deps.check_origin``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request, get, post
from litestar.response import Redirect, Template

from core.access.accounts import AuthError, create_web_session, end_web_session
from core.access.login import (
    EMAIL_CODE_TTL,
    NEED_EMAIL_CODE,
    NEED_TOTP,
    START_OVER,
    WRONG_EMAIL_CODE,
    WRONG_PASSWORD,
    WRONG_TOTP,
    Attempt,
    CodeNeeded,
    Outcome,
    Throttled,
    log_in,
)
from core.notify.login_alerts import (
    DEVICE_COOKIE,
    DEVICE_MAX_AGE,
    mail_login_code,
    on_lock,
    on_login,
    on_login_failed,
)
from web.console.common import render, translator
from web.console.forms import FormDict
from web.deps import DB, SESSION_COOKIE, check_csrf, check_origin, identify, request_ip
from web.i18n import LANGUAGES

DISPLAY_ZONE = ZoneInfo("Europe/Warsaw")

# core.access.login's sentences as the login page says them (translated).
SENTENCES = {
    WRONG_PASSWORD: "Wrong e-mail or password.",
    NEED_TOTP: "Enter the code from your authenticator app, or one of your recovery codes.",
    WRONG_TOTP: "The authenticator code is wrong, expired or already used.",
    NEED_EMAIL_CODE: "We mailed you a six-digit code: enter it below. It works for 10 minutes.",
    WRONG_EMAIL_CODE: "The mailed code is wrong, expired or already used.",
    START_OVER: "Too many wrong codes, or the login expired: enter your password again.",
}


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect after login is a phishing tool.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/tickets"
    return target


def _client_ip(request: Request[Any, Any, Any]) -> str | None:
    return request_ip(request)


def _user_agent(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("user-agent") or None


def retry_sentence(request: Request[Any, Any, Any], until: datetime, now: datetime) -> str:
    """ "Too many failed attempts. Try again after 14:05 (in 2 minutes)." in the page's language."""
    tr = translator(request, None)
    minutes = max(1, -(-int((until - now).total_seconds()) // 60))
    local = until.astimezone(DISPLAY_ZONE).strftime("%H:%M")
    return tr.ngettext(
        "Too many failed attempts. Try again after %(time)s (in %(num)d minute).",
        "Too many failed attempts. Try again after %(time)s (in %(num)d minutes).",
        minutes,
    ) % {"time": local, "num": minutes}


def login_page(
    request: Request[Any, Any, Any], *, status_code: int = 200, **context: Any
) -> Template:
    """The login page (with a flash message from a finished password reset)."""
    return render(
        request, "login.html", user=None, web_session=None, status_code=status_code, **context
    )


@get("/login", sync_to_thread=True, name="login")
def login_form(
    request: Request[Any, Any, Any], db: DB, next: str | None = None
) -> Template | Redirect:
    user, _ = identify(request, db)
    if user is not None:
        return Redirect(path=_safe_next(next), status_code=303)
    return login_page(request, next=_safe_next(next), email="", error=None)


@post("/login", sync_to_thread=True, status_code=303)
def login_submit(
    request: Request[Any, Any, Any],
    db: DB,
    data: FormDict,
) -> Template | Redirect:
    check_origin(request)
    email = str(data.get("email") or "").strip()
    password = str(data.get("password") or "")
    code = str(data.get("code") or "").strip() or None
    challenge = str(data.get("challenge") or "").strip() or None
    target = _safe_next(str(data.get("next") or ""))
    attempt = Attempt(ip=_client_ip(request), user_agent=_user_agent(request))
    outcome = Outcome()
    tr = translator(request, None)
    try:
        user = log_in(
            db,
            email=email,
            password=password,
            code=code,
            challenge=challenge,
            attempt=attempt,
            outcome=outcome,
        )
    except Throttled as exc:
        db.commit()  # the refused attempt stays on the audit trail
        response = login_page(
            request,
            status_code=429,
            next=target,
            email=email,
            error=retry_sentence(request, exc.until, attempt.now),
            throttled=True,
        )
        response.headers["Retry-After"] = str(exc.lock.retry_after(attempt.now))
        return response
    except CodeNeeded as exc:
        if exc.mail_code is not None:
            mail_login_code(
                db,
                user=exc.user,
                code=exc.mail_code,
                minutes=int(EMAIL_CODE_TTL.total_seconds() // 60),
                ip=attempt.ip,
                user_agent=attempt.user_agent,
            )
        db.commit()
        return login_page(
            request,
            status_code=401,
            next=target,
            email=exc.user.email,
            error=None,
            notice=tr.gettext(SENTENCES.get(str(exc), str(exc))),
            challenge=exc.challenge,
            method=exc.method,
            need_code=True,
        )
    except AuthError as exc:
        for lock in outcome.locks:
            on_lock(
                db,
                key=lock.key,
                failures=lock.failures,
                until=lock.until,
                ip=attempt.ip,
                user_agent=attempt.user_agent,
            )
        # The owner (and, after repeated failures, the admins) are mailed; unknown addresses
        # only leave the audit entry.
        if str(exc) != START_OVER:
            on_login_failed(db, email=email, ip=attempt.ip, user_agent=attempt.user_agent)
        db.commit()
        keep = challenge if str(exc) in (WRONG_TOTP, WRONG_EMAIL_CODE) and challenge else None
        return login_page(
            request,
            status_code=401,
            next=target,
            email=email,
            error=tr.gettext(SENTENCES.get(str(exc), str(exc))),
            challenge=keep,
            method="email" if str(exc) == WRONG_EMAIL_CODE else "totp",
            need_code=keep is not None or str(exc) in (WRONG_TOTP, WRONG_EMAIL_CODE),
        )
    settings = request.app.state.settings
    new = create_web_session(
        db, user, hours=settings.session_hours, user_agent=request.headers.get("user-agent")
    )
    # A browser without our device cookie for this user is new: mail the user, remember it.
    device = on_login(
        db,
        user=user,
        secret=settings.secret_key,
        device_cookie=request.cookies.get(DEVICE_COOKIE),
        ip=attempt.ip,
        user_agent=attempt.user_agent,
    )
    db.commit()
    done = Redirect(path=target, status_code=303)
    if device is not None:
        done.set_cookie(
            DEVICE_COOKIE,
            device,
            httponly=True,
            samesite="lax",
            secure=settings.public_url.startswith("https://"),
            max_age=DEVICE_MAX_AGE,
            path="/",
        )
    done.set_cookie(
        SESSION_COOKIE,
        new.raw,
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
        max_age=settings.session_hours * 3600,
        path="/",
    )
    return done


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
