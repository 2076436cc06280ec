"""The console's substitutions page: current and future substitutions, a form to add one and
a button to end one early. Staff only; the rules are ``core.access.substitutions``'."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, get
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.accounts import get_user_by_email
from core.access.substitutions import create_substitution, end_substitution, list_substitutions
from core.clock import utcnow
from core.directory.models import STAFF_ROLES, User
from core.errors import N_, Forbidden, InputError
from web.console.forms import (
    URLENCODED,
    Console,
    CurrentConsole,
    Form,
    FormDict,
    form_post,
    guarded,
)
from web.filters import DISPLAY_TZ


def staff_only(user: User) -> None:
    """The page's guard (``web.console.forms.guarded``)."""
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
    console: Console,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
) -> Template:
    """The page: the list, and the form (refilled with ``form`` after a refusal)."""
    db, user = console.db, console.user
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
    return console.render(
        "substitutions.html",
        status_code=status_code,
        error=error,
        form=form or {},
        rows=rows,
        staff=staff,
        manager=user.role in ("admin", "coordinator"),
    )


@dataclass
class SubstitutionForm(Form):
    absent: str = ""
    substitute: str = ""
    starts_at: str = ""
    ends_at: str = ""


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    data = kwargs["data"]
    return substitutions_page(
        console,
        status_code=exc.status_code,
        error=console.refusal(exc),
        form=asdict(data) if isinstance(data, SubstitutionForm) else None,
    )


class SubstitutionsPage(Controller):
    """Staff only: everyone else gets the error page."""

    path = "/substitutions"
    dependencies = {"console": guarded(staff_only)}

    @get("/", sync_to_thread=True, name="substitutions")
    def show(self, console: CurrentConsole) -> Template:
        return substitutions_page(console)

    @form_post("/", refused=_refused)
    def add(
        self, console: CurrentConsole, data: Annotated[SubstitutionForm, URLENCODED]
    ) -> Template | Redirect:
        db, user = console.db, console.user
        create_substitution(
            db,
            absent=_person(db, data.absent or user.email, "absent"),
            substitute=_person(db, data.substitute, "substitute"),
            starts_at=_local_time(data.starts_at, "starts_at"),
            ends_at=_local_time(data.ends_at, "ends_at"),
            actor=user,
            now=utcnow(),
        )
        return console.redirect("/substitutions", console.gettext("Substitution added."))

    @form_post("/{substitution_id:int}/end", refused=_refused)
    def end(
        self, console: CurrentConsole, substitution_id: int, data: FormDict
    ) -> Template | Redirect:
        end_substitution(console.db, substitution_id, console.user, utcnow())
        return console.redirect("/substitutions", console.gettext("Substitution ended."))
