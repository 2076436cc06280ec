"""The console's profile page: which events mail the user, narrowed to chosen clients and
products (staff and subcontractors). Every logged-in user has one; the rules are
``core.notify.preferences``'."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy.orm import Session

from core.access.models import WebSession
from core.directory.models import User
from core.errors import InputError
from core.notify.preferences import (
    ALWAYS_ON,
    can_narrow,
    choices,
    get_preferences,
    kinds_for,
    set_preferences,
)
from web.console.common import console_session, form_list, redirect, refusal, render, translator
from web.deps import DB, CurrentUser, check_csrf

URLENCODED = Body(media_type=RequestEncodingType.URL_ENCODED)


def profile_page(
    request: Request[Any, Any, Any],
    db: Session,
    user: User,
    web_session: WebSession | None,
    *,
    status_code: int = 200,
    error: str | None = None,
) -> Template:
    prefs = get_preferences(user)
    clients, products = choices(db, user)
    return render(
        request,
        "profile.html",
        user=user,
        web_session=web_session,
        status_code=status_code,
        error=error,
        prefs=prefs,
        kinds=kinds_for(user),
        always_on=ALWAYS_ON if user.role == "client" else (),
        narrow=can_narrow(user),
        clients=clients,
        products=products,
    )


@get("/profile", sync_to_thread=True, name="profile")
def profile(request: Request[Any, Any, Any], db: DB, user: CurrentUser) -> Template:
    return profile_page(request, db, user, console_session(request, db))


@post("/profile", sync_to_thread=True, status_code=303)
def post_profile(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    data: Annotated[dict[str, Any], URLENCODED],
) -> Template | Redirect:
    web_session = console_session(request, db)
    check_csrf(request, web_session, data)
    checked = set(form_list(data, "events"))
    try:
        set_preferences(
            db,
            user,
            events={kind: kind in checked for kind in kinds_for(user)},
            clients=form_list(data, "clients") if can_narrow(user) else [],
            products=form_list(data, "products") if can_narrow(user) else [],
        )
    except InputError as exc:
        db.rollback()
        return profile_page(
            request,
            db,
            user,
            web_session,
            status_code=exc.status_code,
            error=refusal(request, user, exc),
        )
    db.commit()
    return redirect(
        request, "/profile", translator(request, user).gettext("Notification preferences saved.")
    )
