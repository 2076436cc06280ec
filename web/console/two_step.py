"""Two-step login on the profile page: an authenticator app, a mailed code, or off.

Setting up an app shows a new secret as a QR code (inline SVG, made here: the secret never
leaves the server for a QR service) and as text, and asks for a code from the app and the
password (``core.access.accounts.enable_totp``). The secret travels in the form until it is
confirmed; it is the user's own, shown to them anyway, and the form is CSRF-checked. The answer
shows ten recovery codes, once (``core.access.login.new_recovery_codes``); new ones can be made
later with the password. A mailed code instead of an app is chosen with the password
(``core.access.login.choose_method``). Which methods are offered is
``PULPIT_TWO_STEP_METHODS``; someone who lost the phone is let back in by a recovery code or
by an administrator: ``pulpit user reset-totp --email E``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import get
from litestar.response import Redirect, Template

from core.access import two_step as totp
from core.access.accounts import _password_matches, disable_totp, enable_totp
from core.access.login import choose_method, method_of, new_recovery_codes, recovery_codes_left
from core.errors import N_, Forbidden, InputError
from web.console.forms import URLENCODED, Console, CurrentConsole, Form, form_post


def _page(
    console: Console,
    *,
    secret: str | None = None,
    error: InputError | None = None,
    recovery_codes: list[str] | None = None,
) -> Template:
    user = console.user
    settings = console.request.app.state.settings
    required = user.role in settings.required_two_step_roles
    allowed = settings.allowed_two_step_methods
    method = method_of(console.db, user)
    enabled = bool(user.totp_secret)
    # An administrator chose the app for this user (pulpit user add --two-step totp).
    forced = method == "totp" and not enabled
    context: dict[str, Any] = {
        "enabled": enabled,
        "required": required or forced,
        "method": method,
        "allowed": sorted(allowed),
        "recovery_codes": recovery_codes,
        "recovery_left": recovery_codes_left(console.db, user) if enabled else 0,
    }
    if not enabled and "totp" in allowed:
        secret = secret or totp.new_secret()
        uri = totp.provisioning_uri(secret, user.email)
        context.update(secret=secret, readable=totp.readable_secret(secret), qr=totp.qr_svg(uri))
    return console.render(
        "two_step.html",
        status_code=error.status_code if error is not None else 200,
        error=console.refusal(error) if error is not None else None,
        **context,
    )


@get("/profile/two-step", sync_to_thread=True, name="two_step")
def two_step(console: CurrentConsole) -> Template:
    return _page(console)


@dataclass
class TwoStepForm(Form):
    action: str = "enable"
    secret: str = ""
    code: str = ""
    password: str = field(default="", metadata={"strip": False})


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    return _page(console, secret=kwargs["data"].secret or None, error=exc)


@form_post("/profile/two-step", refused=_refused)
def post_two_step(
    console: CurrentConsole, data: Annotated[TwoStepForm, URLENCODED]
) -> Template | Redirect:
    """``action`` is one of: ``enable`` (an app: ``secret``, ``code``, ``password``; answers
    with the recovery codes), ``disable`` (the app: ``code``, ``password``), ``email`` (a mailed
    code: ``password``), ``none`` (a mailed code off: ``password``), ``recovery`` (new
    recovery codes: ``password``)."""
    user = console.user
    settings = console.request.app.state.settings
    required = user.role in settings.required_two_step_roles
    allowed = settings.allowed_two_step_methods
    if data.action == "disable":
        if required:
            raise Forbidden(N_("your role needs two-step login; it cannot be turned off"))
        disable_totp(console.db, user, code=data.code, password=data.password)
        done = console.gettext("Two-step login is off.")
    elif data.action in ("email", "none"):
        if data.action == "none" and method_of(console.db, user) == "totp":
            raise InputError(N_("turn off the authenticator app with a code from it"))
        choose_method(
            console.db,
            user,
            data.action,
            password=data.password,
            allowed=allowed,
            required=required,
        )
        done = (
            console.gettext("Two-step login is on: every login mails you a code.")
            if data.action == "email"
            else console.gettext("Two-step login is off.")
        )
    elif data.action == "recovery":
        if not user.totp_secret:
            raise InputError(N_("recovery codes belong to an authenticator app; set one up first"))
        if not _password_matches(user, data.password):
            raise InputError(N_("the password is wrong"))
        return _page(console, recovery_codes=new_recovery_codes(console.db, user))
    else:
        if "totp" not in allowed:
            raise InputError(N_("this two-step method is not allowed here"))
        enable_totp(console.db, user, secret=data.secret, code=data.code, password=data.password)
        return _page(console, recovery_codes=new_recovery_codes(console.db, user))
    return console.redirect("/profile", done)
