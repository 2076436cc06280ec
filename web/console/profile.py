"""The console's profile page: which events mail the user, narrowed to chosen clients and
products (staff and subcontractors). Every logged-in user has one; the rules are
``core.notify.preferences``'."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import get
from litestar.response import Redirect, Template

from core.access.login import method_of, recovery_codes_left
from core.errors import InputError
from core.notify.preferences import (
    ALWAYS_ON,
    can_narrow,
    choices,
    get_preferences,
    kinds_for,
    set_preferences,
)
from web.console.common import form_list
from web.console.forms import Console, CurrentConsole, FormDict, form_post


def profile_page(
    console: Console,
    *,
    status_code: int = 200,
    error: str | None = None,
    password_error: str | None = None,
) -> Template:
    user = console.user
    prefs = get_preferences(user)
    clients, products = choices(console.db, user)
    return console.render(
        "profile.html",
        status_code=status_code,
        error=error,
        password_error=password_error,
        two_step_method=method_of(console.db, user),
        recovery_left=recovery_codes_left(console.db, user) if user.totp_secret else 0,
        prefs=prefs,
        kinds=kinds_for(user),
        always_on=ALWAYS_ON if user.role == "client" else (),
        narrow=can_narrow(user),
        clients=clients,
        products=products,
    )


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    return profile_page(console, status_code=exc.status_code, error=console.refusal(exc))


@get("/profile", sync_to_thread=True, name="profile")
def profile(console: CurrentConsole) -> Template:
    return profile_page(console)


@form_post("/profile", refused=_refused)
def post_profile(console: CurrentConsole, data: FormDict) -> Template | Redirect:
    user = console.user
    checked = set(form_list(data, "events"))
    set_preferences(
        console.db,
        user,
        events={kind: kind in checked for kind in kinds_for(user)},
        clients=form_list(data, "clients") if can_narrow(user) else [],
        products=form_list(data, "products") if can_narrow(user) else [],
    )
    return console.redirect("/profile", console.gettext("Notification preferences saved."))
