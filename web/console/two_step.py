"""Two-step login on the profile page: set up an authenticator app, or turn it off.

Setting up shows a new secret as a QR code (inline SVG, made here: the secret never leaves
the server for a QR service) and as text, and asks for a code from the app and the password
(``core.access.accounts.enable_totp``). The secret travels in the form until it is confirmed; it is
the user's own, shown to them anyway, and the form is CSRF-checked. Someone who lost the
phone is let back in by an administrator: ``pulpit user reset-totp --email E``.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from core.access import two_step as totp
from core.access.accounts import disable_totp, enable_totp
from core.directory.models import User
from core.errors import N_, Forbidden, InputError
from web.console.common import console_session, form_str, redirect, refusal, render, translator
from web.console.profile import URLENCODED
from web.deps import DB, CurrentUser, check_csrf


def _page(
    request: Request[Any, Any, Any],
    db: DB,
    user: User,
    *,
    secret: str | None = None,
    error: InputError | None = None,
) -> Template:
    required = user.role in request.app.state.settings.required_two_step_roles
    context: dict[str, Any] = {"enabled": bool(user.totp_secret), "required": required}
    if not user.totp_secret:
        secret = secret or totp.new_secret()
        uri = totp.provisioning_uri(secret, user.email)
        context.update(secret=secret, readable=totp.readable_secret(secret), qr=totp.qr_svg(uri))
    message = None
    if error is not None:
        message = refusal(request, user, error)
    return render(
        request,
        "two_step.html",
        user=user,
        web_session=console_session(request, db),
        status_code=error.status_code if error is not None else 200,
        error=message,
        **context,
    )


@get("/profile/two-step", sync_to_thread=True, name="two_step")
def two_step(request: Request[Any, Any, Any], db: DB, user: CurrentUser) -> Template:
    return _page(request, db, user)


@post("/profile/two-step", sync_to_thread=True, status_code=303)
def post_two_step(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    data: Annotated[dict[str, Any], URLENCODED],
) -> Template | Redirect:
    """``action=enable`` with ``secret``, ``code`` and ``password``; ``action=disable`` with
    ``code`` and ``password``."""
    check_csrf(request, console_session(request, db), data)
    tr = translator(request, user)
    secret = form_str(data, "secret")
    code, password = form_str(data, "code"), str(data.get("password") or "")
    try:
        if form_str(data, "action") == "disable":
            if user.role in request.app.state.settings.required_two_step_roles:
                raise Forbidden(N_("your role needs two-step login; it cannot be turned off"))
            disable_totp(db, user, code=code, password=password)
            done = tr.gettext("Two-step login is off.")
        else:
            enable_totp(db, user, secret=secret, code=code, password=password)
            done = tr.gettext("Two-step login is on: from now on the console asks for a code.")
    except InputError as exc:
        db.rollback()
        return _page(request, db, user, secret=secret or None, error=exc)
    db.commit()
    return redirect(request, "/profile", done)
