"""Admin console: staff users (issue 13). See web/console/admin/__init__.py.

The list shows staff (administrators, coordinators, technicians) and subcontractor users,
searched by e-mail and name; client contacts live with their client. A user's form saves the
``users:`` entry it equals (``{"users": [{"email": ..., "role": ...}]}``) through
``common.save``, so ``pulpit config export`` shows the change. Nobody is deleted here: a
user with history is deactivated (``active: false``). Resetting the two-step factor
(``core.access.accounts.reset_totp``) and mailing a password-reset link (the forgotten-password
mail) are forms of their own, each audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Controller, get
from litestar.response import Redirect, Template
from sqlalchemy import func, or_, select

from core.access.accounts import reset_totp
from core.audit import AuditEntry
from core.directory.models import Role, Subcontractor, User
from core.errors import N_, InputError, NotFound
from web.console.admin.common import admin_console, history, problems, save
from web.console.common import form_str
from web.console.forms import Console, CurrentConsole, FormDict, form_post
from web.console.password import mail_reset_link

#: The roles of the users this screen lists and creates (client contacts: the Clients screen).
USER_ROLES = ("admin", "coordinator", "technician", "subcontractor")
LANGUAGES = ("pl", "en")
SEARCH_LIMIT = 200
#: The form's fields by the key path of the fragment they fill (problems go under them).
FIELDS = ("email", "name", "role", "language", "subcontractor", "active")


def _staff_users(console: Console, q: str) -> list[User]:
    query = select(User).where(User.role.in_(USER_ROLES))
    words = q.strip().lower()
    if words:
        like = f"%{words}%"
        query = query.where(
            or_(
                func.lower(User.email).like(like),
                func.lower(func.coalesce(User.name, "")).like(like),
            )
        )
    return list(console.db.scalars(query.order_by(User.email).limit(SEARCH_LIMIT + 1)))


def _custom_roles(console: Console) -> list[Role]:
    return list(console.db.scalars(select(Role).order_by(Role.name)))


def _user(console: Console, user_id: int) -> User:
    user = console.db.get(User, user_id)
    if user is None or user.role not in USER_ROLES:
        raise NotFound(N_("no such user"))
    return user


def role_of(user: User) -> str:
    """The role the form shows and saves: the custom role's name where one is set."""
    return user.custom_role.name if user.custom_role is not None else user.role


def _values(user: User | None) -> dict[str, str]:
    """What the form shows for a stored user (or a new one)."""
    if user is None:
        return {"email": "", "name": "", "role": "technician", "language": "pl"}
    return {
        "email": user.email,
        "name": user.name or "",
        "role": role_of(user),
        "language": user.language,
        "subcontractor": user.subcontractor.name if user.subcontractor else "",
        "active": "1" if user.active else "",
    }


def _form(data: Mapping[str, Any]) -> dict[str, str]:
    return {key: form_str(data, key) for key in FIELDS}


def fragment(form: Mapping[str, str], *, new: bool) -> dict[str, Any]:
    """The ``users:`` entry the form says: every field it shows, so what is cleared clears."""
    entry: dict[str, Any] = {"email": form["email"]}
    entry["name"] = form["name"] or None
    entry["role"] = form["role"]
    entry["language"] = form["language"] or "pl"
    entry["subcontractor"] = form.get("subcontractor") or None
    entry["active"] = True if new else bool(form.get("active"))
    return {"users": [entry]}


#: The audited account actions the user's page lists (their ``data["user"]`` names the user).
ACCOUNT_ACTIONS = ("password.reset.link", "totp.reset")


def account_events(console: Console, user: User, limit: int = 5) -> list[AuditEntry]:
    """The latest resets an administrator made for this user, newest first."""
    recent = console.db.scalars(
        select(AuditEntry)
        .where(AuditEntry.action.in_(ACCOUNT_ACTIONS))
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(500)
    )
    return [e for e in recent if (e.data or {}).get("user") == user.email][:limit]


def _page(
    console: Console,
    user: User | None,
    form: Mapping[str, str],
    *,
    status_code: int = 200,
    found: Mapping[str, str] | None = None,
    error: str | None = None,
) -> Template:
    subcontractors = list(console.db.scalars(select(Subcontractor).order_by(Subcontractor.name)))
    return console.render(
        "admin/users_detail.html",
        status_code=status_code,
        person=user,
        form=form,
        problems=dict(found or {}),
        error=error,
        fields=[f"users[0].{name}" for name in FIELDS],
        builtin_roles=USER_ROLES,
        custom_roles=_custom_roles(console),
        user_languages=LANGUAGES,
        subcontractors=subcontractors,
        entries=history(console.db, "user", user.email) if user is not None else [],
        account_events=account_events(console, user) if user is not None else [],
    )


def _refused_new(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    found = problems(exc, console)
    return _page(
        console,
        None,
        _form(kwargs["data"]),
        status_code=exc.status_code,
        found=found,
        error=None if found else console.refusal(exc),
    )


def _refused_edit(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    user = _user(console, kwargs["user_id"])
    found = problems(exc, console)
    form = {**_form(kwargs["data"]), "email": user.email}
    return _page(
        console,
        user,
        form,
        status_code=exc.status_code,
        found=found,
        error=None if found else console.refusal(exc),
    )


def _refused_action(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    user = _user(console, kwargs["user_id"])
    return _page(
        console, user, _values(user), status_code=exc.status_code, error=console.refusal(exc)
    )


class UsersPage(Controller):
    """Administrators only (``configure``)."""

    path = "/admin/users"
    dependencies = {"console": admin_console}

    @get("/", sync_to_thread=True, name="admin_users")
    def index(self, console: CurrentConsole, q: str = "") -> Template:
        users = _staff_users(console, q)
        return console.render(
            "admin/users.html",
            q=q.strip(),
            people=users[:SEARCH_LIMIT],
            more=len(users) > SEARCH_LIMIT,
        )

    @get("/new", sync_to_thread=True, name="admin_user_new")
    def new(self, console: CurrentConsole) -> Template:
        return _page(console, None, _values(None))

    @form_post("/new", refused=_refused_new)
    def create(self, console: CurrentConsole, data: FormDict) -> Redirect:
        form = _form(data)
        if not form["email"]:
            raise InputError(N_("enter the user's e-mail address"))
        if console.db.scalar(
            select(User.id).where(func.lower(User.email) == form["email"].lower())
        ):
            raise InputError(N_("a user with this e-mail address exists already"))
        save(console, fragment(form, new=True))
        console.db.flush()
        created = console.db.scalar(
            select(User).where(func.lower(User.email) == form["email"].lower())
        )
        target = f"/admin/users/{created.id}" if created is not None else "/admin/users"
        return console.redirect(target, console.gettext("The user is added."))

    @get("/{user_id:int}", sync_to_thread=True, name="admin_user")
    def show(self, console: CurrentConsole, user_id: int) -> Template:
        user = _user(console, user_id)
        return _page(console, user, _values(user))

    @form_post("/{user_id:int}", refused=_refused_edit)
    def update(self, console: CurrentConsole, user_id: int, data: FormDict) -> Redirect:
        user = _user(console, user_id)
        form = {**_form(data), "email": user.email}
        if user.id == console.user.id and not form["active"]:
            raise InputError(N_("you cannot deactivate your own account"))
        save(console, fragment(form, new=False))
        return console.redirect(f"/admin/users/{user_id}", console.gettext("Saved."))

    @form_post("/{user_id:int}/active", refused=_refused_action)
    def set_active(self, console: CurrentConsole, user_id: int, data: FormDict) -> Redirect:
        user = _user(console, user_id)
        active = form_str(data, "active") == "1"
        if user.id == console.user.id and not active:
            raise InputError(N_("you cannot deactivate your own account"))
        save(console, {"users": [{"email": user.email, "active": active}]})
        flash = (
            console.gettext("The user is active again.")
            if active
            else console.gettext("The user is deactivated.")
        )
        return console.redirect(f"/admin/users/{user_id}", flash)

    @form_post("/{user_id:int}/reset-two-step", refused=_refused_action)
    def reset_two_step(self, console: CurrentConsole, user_id: int) -> Redirect:
        user = _user(console, user_id)
        reset_totp(console.db, user.email, actor=console.user.email)
        return console.redirect(
            f"/admin/users/{user_id}",
            console.gettext("Two-step login is off for this user; they log in with the password."),
        )

    @form_post("/{user_id:int}/reset-link", refused=_refused_action)
    def reset_link(self, console: CurrentConsole, user_id: int) -> Redirect:
        user = _user(console, user_id)
        if not user.active:
            raise InputError(N_("this account is not active: activate it first"))
        mail_reset_link(console.request, console.db, user)
        console.db.add(
            AuditEntry(
                actor=console.user.email,
                action="password.reset.link",
                data={"user": user.email},
            )
        )
        return console.redirect(
            f"/admin/users/{user_id}",
            console.gettext("A password-reset link is mailed to %(email)s.")
            % {"email": user.email},
        )


handlers = [UsersPage]
