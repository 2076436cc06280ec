"""Admin console: roles (issue 13). See web/console/admin/__init__.py.

One page: the permission matrix, a row per public action
(``core.access.permissions.ROLE_ACTIONS``), a column per built-in role (its defaults, read
only) and per custom role (a checkbox per action, checked = allowed), and a form to add a role
(name, base, label in Polish and English). A custom role's column is one form (its checkboxes
carry ``form=``): saving it stores the differences from its base's defaults as the role's
``grant`` and ``deny`` (``{"roles": [{"name": ..., "grant": [...], "deny": [...]}]}`` through
``common.save``, as ``pulpit config apply`` would). Which tickets a role sees (``see``) is its
base's and is not set here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Controller, get
from litestar.response import Redirect, Template
from sqlalchemy import select

from core.access.permissions import ROLE_ACTIONS, SCOPE_ACTIONS, role_allowed
from core.configuration.delete import delete_object
from core.directory.models import ROLES, Role, User
from core.errors import N_, InputError, NotFound
from web.console.admin.common import admin_console, history, problems, save
from web.console.common import form_list, form_str
from web.console.forms import Console, CurrentConsole, FormDict, form_post

#: The built-in roles, in the matrix's column order.
BUILTIN = ("admin", "coordinator", "technician", "subcontractor", "client")
#: What a custom role may be built on, in the add form's order.
BASES = ("technician", "coordinator", "subcontractor", "client", "admin")
NEW_FIELDS = ("name", "base", "label")


def defaults(base: str) -> set[str]:
    """The public actions a built-in role has."""
    return {row.name for row in ROLE_ACTIONS if row.defaults.get(base)}


def allowed(role: Role) -> set[str]:
    """The public actions a custom role has: its base's, plus grants, minus denies."""
    actions = role_allowed(role.base, role.grant or (), role.deny or ())
    return {row.name for row in ROLE_ACTIONS if row.action in actions}


def differences(base: str, checked: set[str]) -> tuple[list[str], list[str]]:
    """``grant`` and ``deny`` for a role on ``base`` allowed exactly ``checked`` (the scope
    actions left out: they follow the base)."""
    own = defaults(base)
    names = [row.name for row in ROLE_ACTIONS if row.name not in SCOPE_ACTIONS]
    grant = [n for n in names if n in checked and n not in own]
    deny = [n for n in names if n in own and n not in checked]
    return grant, deny


def _roles(console: Console) -> list[Role]:
    return list(console.db.scalars(select(Role).order_by(Role.name)))


def _role(console: Console, name: str) -> Role:
    role = console.db.scalar(select(Role).where(Role.name == name))
    if role is None:
        raise NotFound(N_("no such role"))
    return role


def _page(
    console: Console,
    *,
    status_code: int = 200,
    new: Mapping[str, str] | None = None,
    found: Mapping[str, str] | None = None,
    error: str | None = None,
    editing: str | None = None,
    checked: set[str] | None = None,
) -> Template:
    roles = _roles(console)
    columns = {role.name: allowed(role) for role in roles}
    if editing is not None and checked is not None:
        columns[editing] = checked  # a refused save shows what was ticked
    return console.render(
        "admin/roles.html",
        status_code=status_code,
        rows=ROLE_ACTIONS,
        scope_actions=SCOPE_ACTIONS,
        builtin=BUILTIN,
        bases=BASES,
        roles=roles,
        columns=columns,
        new=new or {"name": "", "base": "technician", "label_pl": "", "label_en": ""},
        problems=dict(found or {}),
        error=error,
        editing=editing,
        fields=[f"roles[0].{name}" for name in NEW_FIELDS],
        entries={role.name: history(console.db, "role", role.name, limit=5) for role in roles},
    )


def _new_form(data: Mapping[str, Any]) -> dict[str, str]:
    return {k: form_str(data, k) for k in ("name", "base", "label_pl", "label_en")}


def _label(form: Mapping[str, str]) -> dict[str, str] | None:
    label = {lang: form[f"label_{lang}"] for lang in ("pl", "en") if form.get(f"label_{lang}")}
    return label or None


def _refused_new(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    found = problems(exc, console)
    return _page(
        console,
        status_code=exc.status_code,
        new=_new_form(kwargs["data"]),
        found=found,
        error=console.refusal(exc) if not found else None,
    )


def _refused_matrix(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    found = problems(exc, console)
    sentence = "; ".join(found.values()) if found else console.refusal(exc)
    if form_str(kwargs["data"], "back") == "role":
        role = _role(console, kwargs["name"])
        return _detail(console, role, status_code=exc.status_code, error=sentence)
    return _page(
        console,
        status_code=exc.status_code,
        error=sentence,
        editing=kwargs["name"],
        checked=set(form_list(kwargs["data"], "allow")),
    )


def _detail(
    console: Console,
    role: Role,
    *,
    status_code: int = 200,
    labels: Mapping[str, str] | None = None,
    found: Mapping[str, str] | None = None,
    error: str | None = None,
) -> Template:
    holders = list(
        console.db.scalars(select(User).where(User.custom_role_id == role.id).order_by(User.email))
    )
    return console.render(
        "admin/roles_detail.html",
        status_code=status_code,
        role=role,
        rows=ROLE_ACTIONS,
        scope_actions=SCOPE_ACTIONS,
        on=allowed(role),
        holders=holders,
        bases=BASES,
        labels=labels
        or {
            "label_pl": (role.labels or {}).get("pl", ""),
            "label_en": (role.labels or {}).get("en", ""),
        },
        problems=dict(found or {}),
        error=error,
        entries=history(console.db, "role", role.name),
    )


def _refused_detail(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    role = _role(console, kwargs["name"])
    data = kwargs.get("data") or {}
    found = problems(exc, console)
    return _detail(
        console,
        role,
        status_code=exc.status_code,
        labels={k: form_str(data, k) for k in ("label_pl", "label_en", "base")} if data else None,
        found=found,
        error=console.refusal(exc) if not found else None,
    )


class RolesPage(Controller):
    """Administrators only (``configure``)."""

    path = "/admin/roles"
    dependencies = {"console": admin_console}

    @get("/", sync_to_thread=True, name="admin_roles")
    def index(self, console: CurrentConsole) -> Template:
        return _page(console)

    @form_post("/new", refused=_refused_new)
    def create(self, console: CurrentConsole, data: FormDict) -> Redirect:
        form = _new_form(data)
        if not form["name"]:
            raise InputError(N_("enter the role's name"))
        if form["name"].lower() in ROLES:
            raise InputError(N_("this is the name of a built-in role: choose another"))
        if console.db.scalar(select(Role.id).where(Role.name == form["name"])):
            raise InputError(N_("a role with this name exists already"))
        entry: dict[str, Any] = {"name": form["name"], "base": form["base"]}
        label = _label(form)
        if label:
            entry["label"] = label
        save(console, {"roles": [entry]})
        return console.redirect(
            f"/admin/roles#role-{form['name']}", console.gettext("The role is added.")
        )

    @get("/{name:str}", sync_to_thread=True, name="admin_role")
    def show(self, console: CurrentConsole, name: str) -> Template:
        return _detail(console, _role(console, name))

    # The role's base and labels (the matrix is its own form).
    @form_post("/{name:str}/label", refused=_refused_detail)
    def relabel(self, console: CurrentConsole, name: str, data: FormDict) -> Redirect:
        role = _role(console, name)
        form = _new_form(data)
        entry: dict[str, Any] = {"name": role.name, "label": _label(form)}
        if form["base"] and form["base"] != role.base:
            entry["base"] = form["base"]  # its users' role follows (core.configuration.apply)
        save(console, {"roles": [entry]})
        return console.redirect(f"/admin/roles/{role.name}", console.gettext("Saved."))

    @form_post("/{name:str}/delete", refused=_refused_detail)
    def delete(self, console: CurrentConsole, name: str) -> Redirect:
        role = _role(console, name)
        delete_object(console.db, "role", role.name, console.user)
        return console.redirect("/admin/roles", console.gettext("The role is deleted."))

    @form_post("/{name:str}", refused=_refused_matrix)
    def update(self, console: CurrentConsole, name: str, data: FormDict) -> Redirect:
        role = _role(console, name)
        checked = set(form_list(data, "allow"))
        grant, deny = differences(role.base, checked)
        entry: dict[str, Any] = {"name": role.name, "grant": grant, "deny": deny}
        form = _new_form(data)
        if "label_pl" in data or "label_en" in data:
            entry["label"] = _label(form)
        save(console, {"roles": [entry]})
        back = "/admin/roles/" + role.name if form_str(data, "back") == "role" else "/admin/roles"
        return console.redirect(f"{back}#role-{role.name}", console.gettext("Saved."))


handlers = [RolesPage]
