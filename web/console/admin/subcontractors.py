"""Admin console: subcontractors (issue 13). A list with search, and a detail form: the
contracts the company serves (a checkbox each: a box unticked is sent under ``remove:
contracts``) and its users (links to the users screen).

Every save is the YAML fragment ``{"subcontractors": [{...}]}`` applied like ``pulpit config
apply`` (``web.console.admin.common.save``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from litestar import Controller, get
from litestar.response import Redirect, Template
from sqlalchemy import func, select

from core.configuration.delete import delete_object
from core.configuration.errors import ConfigError, Problem
from core.contracts.models import Contract
from core.directory.models import Subcontractor, User
from core.errors import N_, InputError, NotFound
from web.console.admin.common import admin_console, history, problems, save
from web.console.common import form_list, form_str
from web.console.forms import Console, CurrentConsole, FormDict, form_post


def _subcontractor(console: Console, name: str) -> Subcontractor:
    found = console.db.scalar(select(Subcontractor).where(Subcontractor.name == name))
    if found is None:
        raise NotFound(N_("there is no subcontractor %(name)s"), name=name)
    return found


def subcontractor_page(
    console: Console,
    sub: Subcontractor | None,
    *,
    form: Mapping[str, Any] | None = None,
    found: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    """The detail form (``sub`` None: a new one), refilled with ``form`` after a refusal."""
    if form is not None:
        name = form_str(form, "name")
        served = set(form_list(form, "contracts"))
    else:
        name = sub.name if sub is not None else ""
        served = {c.code for c in sub.contracts} if sub is not None else set()
    users = (
        list(
            console.db.scalars(
                select(User).where(User.subcontractor_id == sub.id).order_by(User.email)
            )
        )
        if sub is not None
        else []
    )
    return console.render(
        "admin/subcontractors_detail.html",
        status_code=status_code,
        sub=sub,
        name=name,
        served=served,
        contracts=list(console.db.scalars(select(Contract).order_by(Contract.code))),
        users=users,
        problems=found or {},
        entries=history(console.db, "subcontractor", sub.name) if sub is not None else [],
    )


def subcontractor_fragment(data: Mapping[str, Any], stored: Subcontractor | None) -> dict[str, Any]:
    """The YAML fragment equivalent to the form."""
    spec: dict[str, Any] = {"name": stored.name if stored is not None else form_str(data, "name")}
    served = list(dict.fromkeys(form_list(data, "contracts")))
    spec["contracts"] = served
    if stored is not None:
        gone = [c.code for c in stored.contracts if c.code not in served]
        if gone:
            spec["remove"] = {"contracts": gone}
    return {"subcontractors": [spec]}


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    name = kwargs.get("name")
    sub = (
        console.db.scalar(select(Subcontractor).where(Subcontractor.name == name)) if name else None
    )
    found = problems(exc, console)
    return subcontractor_page(
        console, sub, form=kwargs["data"], found=found, status_code=exc.status_code
    )


def _delete_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    """A deletion refused (something refers to the object): the page as stored, saying why."""
    name = kwargs["name"]
    return subcontractor_page(
        console,
        _subcontractor(console, name),
        found={"": console.refusal(exc)},
        status_code=exc.status_code,
    )


def _path(name: str) -> str:
    return "/admin/subcontractors/" + quote(name, safe="")


class SubcontractorsAdmin(Controller):
    path = "/admin/subcontractors"
    dependencies = {"console": admin_console}

    @get("/", sync_to_thread=True, name="admin_subcontractors")
    def index(self, console: CurrentConsole, q: str = "") -> Template:
        q = q.strip()[:200]
        stmt = select(Subcontractor).order_by(Subcontractor.name)
        if q:
            stmt = stmt.where(func.lower(Subcontractor.name).like(f"%{q.lower()}%"))
        subs = list(console.db.scalars(stmt.limit(500)))
        users = dict(
            console.db.execute(
                select(User.subcontractor_id, func.count())
                .where(User.subcontractor_id.is_not(None))
                .group_by(User.subcontractor_id)
            ).all()
        )
        return console.render("admin/subcontractors.html", q=q, subs=subs, users=users)

    @get("/new", sync_to_thread=True, name="admin_subcontractor_new")
    def new(self, console: CurrentConsole) -> Template:
        return subcontractor_page(console, None)

    @form_post("/new", refused=_refused)
    def create(self, console: CurrentConsole, data: FormDict) -> Template | Redirect:
        name = form_str(data, "name")
        if not name:
            raise ConfigError(
                [
                    Problem.of(
                        0, "console", "subcontractors[0].name", N_("a subcontractor needs a name")
                    )
                ]
            )
        if console.db.scalar(select(Subcontractor.id).where(Subcontractor.name == name)):
            raise ConfigError(
                [
                    Problem.of(
                        0,
                        "console",
                        "subcontractors[0].name",
                        N_("%(name)r exists already"),
                        name=name,
                    )
                ]
            )
        save(console, subcontractor_fragment(data, None))
        return console.redirect(_path(name), console.gettext("Subcontractor created."))

    @form_post("/{name:str}/delete", refused=_delete_refused)
    def delete(self, console: CurrentConsole, name: str, data: FormDict) -> Template | Redirect:
        """Only what nothing refers to (``core.configuration.delete``); otherwise a 409 saying
        what refers to it."""
        found = _subcontractor(console, name)
        delete_object(console.db, "subcontractor", found.name, console.user)
        return console.redirect("/admin/subcontractors", console.gettext("Subcontractor deleted."))

    @get("/{name:str}", sync_to_thread=True, name="admin_subcontractor")
    def show(self, console: CurrentConsole, name: str) -> Template:
        return subcontractor_page(console, _subcontractor(console, name))

    @form_post("/{name:str}", refused=_refused)
    def update(self, console: CurrentConsole, name: str, data: FormDict) -> Template | Redirect:
        sub = _subcontractor(console, name)
        save(console, subcontractor_fragment(data, sub))
        return console.redirect(_path(name), console.gettext("Subcontractor saved."))


handlers = [SubcontractorsAdmin]
