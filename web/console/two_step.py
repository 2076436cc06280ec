"""Two-step login on the profile page: set up an authenticator app, or turn it off.

Setting up shows a new secret as a QR code (inline SVG, made here: the secret never leaves
the server for a QR service) and as text, and asks for a code from the app and the password
(``core.access.accounts.enable_totp``). The secret travels in the form until it is confirmed; it is
the user's own, shown to them anyway, and the form is CSRF-checked. Someone who lost the
phone is let back in by an administrator: ``pulpit user reset-totp --email E``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import get
from litestar.response import Redirect, Template

from core.access import two_step as totp
from core.access.accounts import disable_totp, enable_totp
from core.errors import N_, Forbidden, InputError
from web.console.forms import URLENCODED, Console, CurrentConsole, Form, form_post


def _page(
    console: Console, *, secret: str | None = None, error: InputError | None = None
) -> Template:
    user = console.user
    required = user.role in console.request.app.state.settings.required_two_step_roles
    context: dict[str, Any] = {"enabled": bool(user.totp_secret), "required": required}
    if not user.totp_secret:
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
    """``action=enable`` with ``secret``, ``code`` and ``password``; ``action=disable`` with
    ``code`` and ``password``."""
    user = console.user
    if data.action == "disable":
        if user.role in console.request.app.state.settings.required_two_step_roles:
            raise Forbidden(N_("your role needs two-step login; it cannot be turned off"))
        disable_totp(console.db, user, code=data.code, password=data.password)
        done = console.gettext("Two-step login is off.")
    else:
        enable_totp(console.db, user, secret=data.secret, code=data.code, password=data.password)
        done = console.gettext("Two-step login is on: from now on the console asks for a code.")
    return console.redirect("/profile", done)
