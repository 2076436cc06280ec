"""The console's substitutions page: current and future substitutions, a form to add one and
a button to end one early. Staff only; the rules are ``core.access.substitutions``'."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.accounts import get_user_by_email
from core.access.models import WebSession
from core.access.substitutions import create_substitution, end_substitution, list_substitutions
from core.clock import utcnow
from core.directory.models import STAFF_ROLES, User
from core.errors import N_, Forbidden, InputError
from web.console.common import (
    console_session,
    error_page,
    form_str,
    redirect,
    refusal,
    render,
    translator,
)
from web.deps import DB, CurrentUser, check_csrf
from web.filters import DISPLAY_TZ

URLENCODED = Body(media_type=RequestEncodingType.URL_ENCODED)


def _staff_only(user: User) -> None:
    if not user.is_staff:
        raise Forbidden(N_("substitutions are managed by staff"))


def _local_time(value: str, name: str) -> datetime:
    """A form's ``datetime-local`` value, read in the console's display time zone."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"{name}: enter a date and time such as 2026-12-01 08:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=DISPLAY_TZ)
    return parsed


def _person(db: Session, email: str, name: str) -> User:
    user = get_user_by_email(db, email) if email else None
    if user is None:
        raise InputError(f"{name}: no user with e-mail {email!r}")
    return user


def substitutions_page(
    request: Request[Any, Any, Any],
    db: Session,
    user: User,
    web_session: WebSession | None,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Template:
    """The page: the list, and the form (refilled with ``form`` after a refusal)."""
    now = utcnow()
    staff = list(
        db.scalars(
            select(User)
            .where(User.role.in_(STAFF_ROLES), User.active.is_(True))
            .order_by(User.email)
        )
    )
    items = list_substitutions(db, user, now)
    rows = [
        {
            "sub": s,
            "active": s.is_active(now),
            "absent": s.absent.display,
            "substitute": s.substitute.display,
        }
        for s in items
    ]
    return render(
        request,
        "substitutions.html",
        user=user,
        web_session=web_session,
        status_code=status_code,
        error=error,
        form=form or {},
        rows=rows,
        staff=staff,
        manager=user.role in ("admin", "coordinator"),
    )


@get("/substitutions", sync_to_thread=True, name="substitutions")
def substitutions(request: Request[Any, Any, Any], db: DB, user: CurrentUser) -> Template:
    web_session = console_session(request, db)
    try:
        _staff_only(user)
    except InputError as exc:
        return error_page(request, user, web_session, exc)
    return substitutions_page(request, db, user, web_session)


@post("/substitutions", sync_to_thread=True, status_code=303)
def post_substitution(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    data: Annotated[dict[str, Any], URLENCODED],
) -> Template | Redirect:
    web_session = console_session(request, db)
    check_csrf(request, web_session, data)
    form = {k: form_str(data, k) for k in ("absent", "substitute", "starts_at", "ends_at")}
    try:
        _staff_only(user)
        create_substitution(
            db,
            absent=_person(db, form["absent"] or user.email, "absent"),
            substitute=_person(db, form["substitute"], "substitute"),
            starts_at=_local_time(form["starts_at"], "starts_at"),
            ends_at=_local_time(form["ends_at"], "ends_at"),
            actor=user,
            now=utcnow(),
        )
    except InputError as exc:
        db.rollback()
        return substitutions_page(
            request,
            db,
            user,
            web_session,
            status_code=exc.status_code,
            error=refusal(request, user, exc),
            form=form,
        )
    db.commit()
    return redirect(
        request, "/substitutions", translator(request, user).gettext("Substitution added.")
    )


@post("/substitutions/{substitution_id:int}/end", sync_to_thread=True, status_code=303)
def post_end_substitution(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    substitution_id: int,
    data: Annotated[dict[str, Any], URLENCODED],
) -> Template | Redirect:
    web_session = console_session(request, db)
    check_csrf(request, web_session, data)
    try:
        _staff_only(user)
        end_substitution(db, substitution_id, user, utcnow())
    except InputError as exc:
        db.rollback()
        return substitutions_page(
            request,
            db,
            user,
            web_session,
            status_code=exc.status_code,
            error=refusal(request, user, exc),
        )
    db.commit()
    return redirect(
        request, "/substitutions", translator(request, user).gettext("Substitution ended.")
    )
