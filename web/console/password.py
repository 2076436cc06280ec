"""Passwords: the change on the profile page, and the reset for a forgotten one.

Reset: "Forgot password?" on the login page asks for the e-mail; the answer is the same
whether an account has it or not (a stranger learns nothing). An active account with that
address is mailed a link ``/password/reset/<token>``, signed with the instance's key, valid
30 minutes and bound to the current password hash, so it dies when it is used (or the password
changes otherwise). Setting the new password ends every web session of the user; API tokens
stay (docs/decisions.md). Requests are throttled per address typed and per client address, the
forms checked for their ``Origin`` like the login's (no session, no CSRF token yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.orm import Session

from core.access import throttle
from core.access.accounts import (
    RESET_TTL,
    change_password,
    get_user_by_email,
    password_reset_token,
    reset_password,
    user_for_reset_token,
)
from core.audit import AuditEntry
from core.clock import utcnow
from core.directory.models import User
from core.errors import InputError
from core.notify.login_alerts import mail_password_reset
from web.console.auth import retry_sentence
from web.console.common import redirect, refusal, render, translator
from web.console.forms import URLENCODED, Console, CurrentConsole, Form, FormDict, form_post
from web.console.profile import profile_page
from web.deps import DB, SESSION_COOKIE, check_origin, request_ip


def _page(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Template:
    return render(
        request, template, user=None, web_session=None, status_code=status_code, **context
    )


def mail_reset_link(request: Request[Any, Any, Any], db: Session, user: User) -> None:
    """Queue the ``password_reset`` mail with a new link to this active user's own address
    (the forgotten-password form, and an administrator's "Send a password-reset link")."""
    settings = request.app.state.settings
    token = password_reset_token(settings.secret_key, user)
    mail_password_reset(
        db,
        user=user,
        link=f"{settings.public_url.rstrip('/')}/password/reset/{token}",
        minutes=int(RESET_TTL.total_seconds() // 60),
        ip=request_ip(request),
        user_agent=request.headers.get("user-agent"),
    )


@get("/password/forgot", sync_to_thread=False, name="password_forgot")
def forgot_form(request: Request[Any, Any, Any]) -> Template:
    return _page(request, "password_forgot.html", email="", sent=False, error=None)


@post("/password/forgot", sync_to_thread=True, status_code=200)
def forgot_submit(request: Request[Any, Any, Any], db: DB, data: FormDict) -> Template:
    check_origin(request)
    email = str(data.get("email") or "").strip().lower()[:255]
    ip = request_ip(request)
    lock = throttle.locked(db, [(throttle.RESET_ACCOUNT, email), (throttle.RESET_ADDRESS, ip)])
    if lock is not None:
        response = _page(
            request,
            "password_forgot.html",
            status_code=429,
            email=email,
            sent=False,
            error=retry_sentence(request, lock.until, utcnow()),
        )
        response.headers["Retry-After"] = str(lock.retry_after())
        return response
    # Every request counts, found or not: each one may mail, and the answer is the same.
    throttle.record_failure(db, throttle.RESET_ACCOUNT, email)
    throttle.record_failure(db, throttle.RESET_ADDRESS, ip)
    db.add(AuditEntry(actor=email or None, action="password.reset.request", data={"ip": ip}))
    user = get_user_by_email(db, email) if "@" in email else None
    if user is not None and user.active:
        mail_reset_link(request, db, user)
    db.commit()
    return _page(request, "password_forgot.html", email=email, sent=True, error=None)


@get("/password/reset/{token:str}", sync_to_thread=True, name="password_reset")
def reset_form(request: Request[Any, Any, Any], db: DB, token: str) -> Template:
    user = user_for_reset_token(db, request.app.state.settings.secret_key, token)
    return _page(
        request,
        "password_reset.html",
        status_code=200 if user is not None else 410,
        valid=user is not None,
        account=user.email if user is not None else "",
        token=token,
        error=None,
    )


@post("/password/reset/{token:str}", sync_to_thread=True, status_code=303)
def reset_submit(
    request: Request[Any, Any, Any], db: DB, token: str, data: FormDict
) -> Template | Redirect:
    check_origin(request)
    secret = request.app.state.settings.secret_key
    try:
        user = reset_password(
            db,
            secret,
            token,
            new=str(data.get("password") or ""),
            repeat=str(data.get("repeat") or ""),
        )
    except InputError as exc:
        db.rollback()
        still = user_for_reset_token(db, secret, token)
        return _page(
            request,
            "password_reset.html",
            status_code=exc.status_code if still is not None else 410,
            valid=still is not None,
            account=still.email if still is not None else "",
            token=token,
            error=refusal(request, None, exc),
        )
    db.commit()
    response = redirect(
        request,
        "/login",
        translator(request, user).gettext("Your new password is set: log in with it."),
    )
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- The change on the profile page -----------------------------------------------------------


@dataclass
class PasswordForm(Form):
    current: str = field(default="", metadata={"strip": False})
    password: str = field(default="", metadata={"strip": False})
    repeat: str = field(default="", metadata={"strip": False})


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    return profile_page(console, status_code=exc.status_code, password_error=console.refusal(exc))


@form_post("/profile/password", refused=_refused)
def post_password(
    console: CurrentConsole, data: Annotated[PasswordForm, URLENCODED]
) -> Template | Redirect:
    """The owner's change: the current password, the new one twice. Other browsers of the
    user are logged out; this one stays."""
    change_password(
        console.db,
        console.user,
        old=data.current,
        new=data.password,
        repeat=data.repeat,
        keep_session=console.request.cookies.get(SESSION_COOKIE),
    )
    return console.redirect(
        "/profile", console.gettext("Your password is changed; your other browsers are logged out.")
    )
