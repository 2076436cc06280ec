"""Admin console: the instance-wide custom fields (issue 13): the top-level ``custom_fields``
listed in form order, and a detail form for each (labels and help per language, type, options
one per line, number limits, the roles that may set it, visibility, place in the form, and the
field it follows: ``depends_on`` with either the options allowed per parent value or the parent
values that show it). A contract's own fields and a ticket type's checklist are edited on the
contract screen.

Every save is the YAML fragment ``{"custom_fields": [{...}]}`` applied like ``pulpit config
apply`` (``web.console.admin.common.save``); its problems (an unknown parent, an option that
is not the parent's) come back under their fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from litestar import Controller, get
from litestar.response import Redirect, Template
from sqlalchemy import func, or_, select

from core.configuration.delete import delete_object
from core.configuration.errors import ConfigError, Problem
from core.contracts.models import CustomField
from core.errors import N_, InputError, NotFound
from core.tickets.fields import label
from web.console.admin.common import admin_console, history, problems, save
from web.console.common import form_list, form_str
from web.console.forms import Console, CurrentConsole, FormDict, form_post

TYPES = ("text", "textarea", "number", "date", "bool", "select", "multiselect")
ROLES = ("admin", "coordinator", "technician", "subcontractor", "client")
DEFAULT_EDIT = ("admin", "coordinator", "technician")
#: Types a field may follow with ``options`` (and whose values ``when`` lists).
PARENT_TYPES = ("select", "multiselect", "bool")
P = "custom_fields[0]"


def _global_fields(console: Console) -> list[CustomField]:
    return list(
        console.db.scalars(
            select(CustomField)
            .where(CustomField.contract_id.is_(None))
            .order_by(CustomField.position, CustomField.id)
        )
    )


def _field(console: Console, name: str) -> CustomField:
    found = console.db.scalar(
        select(CustomField).where(CustomField.contract_id.is_(None), CustomField.name == name)
    )
    if found is None:
        raise NotFound(N_("there is no custom field %(name)s"), name=name)
    return found


def parent_values(parent: CustomField) -> list[str]:
    """The values a parent field can have, as the form writes them."""
    if parent.type == "bool":
        return ["true", "false"]
    return [str(o) for o in parent.options or []]


def _texts(value: Any, fallback: str | None) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: str(v) for k, v in value.items()}
    if value:
        return {"en": str(value)}
    return {"en": fallback} if fallback else {}


def _values(cf: CustomField | None) -> dict[str, Any]:
    """The form's fields for a stored field (or a new one), named as the form names them."""
    if cf is None:
        return {
            "name": "",
            "type": "text",
            "edit": list(DEFAULT_EDIT),
            "visible_to_client": "1",
            "visible_to_subcontractor": "",
            "dep_field": "",
            "dep_rule": "options",
        }
    labels = _texts(cf.labels, cf.label)
    helps = _texts(cf.help, None)
    values: dict[str, Any] = {
        "name": cf.name,
        "label_pl": labels.get("pl", ""),
        "label_en": labels.get("en", ""),
        "help_pl": helps.get("pl", ""),
        "help_en": helps.get("en", ""),
        "type": cf.type,
        "options": "\n".join(str(o) for o in cf.options or []),
        "min": _plain(cf.min_value),
        "max": _plain(cf.max_value),
        "edit": list(cf.edit) if cf.edit is not None else list(DEFAULT_EDIT),
        "required": "1" if cf.required else "",
        "visible_to_client": "1" if cf.visible_to_client else "",
        "visible_to_subcontractor": {None: "", True: "yes", False: "no"}[
            cf.visible_to_subcontractor
        ],
        "order": str(cf.position),
        "dep_field": "",
        "dep_rule": "options",
    }
    dep = cf.depends_on or {}
    if dep.get("field"):
        parent = str(dep["field"])
        values["dep_field"] = parent
        if dep.get("when") is not None:
            values["dep_rule"] = "when"
            values[f"dwhen:{parent}"] = [_word(v) for v in dep["when"]]
        else:
            for key, allowed in (dep.get("options") or {}).items():
                values[f"dopt:{parent}:{_word(key)}"] = ", ".join(str(a) for a in allowed)
    return values


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _plain(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def field_page(
    console: Console,
    cf: CustomField | None,
    *,
    form: Mapping[str, Any] | None = None,
    found: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    """The detail form (``cf`` None: a new field), refilled with ``form`` after a refusal."""
    values = _values(cf)
    if form is not None:
        values = {k: form_str(form, k) for k in form if k != "csrf_token"}
        values["edit"] = form_list(form, "edit")
        for key in form:
            if key.startswith("dwhen:"):
                values[key] = form_list(form, key)
        if cf is not None:
            values["name"] = cf.name
    lang = console.tr.lang
    others = [f for f in _global_fields(console) if cf is None or f.id != cf.id]
    parents = [
        {"name": f.name, "label": label(f, lang), "values": parent_values(f), "type": f.type}
        for f in others
        if f.type in PARENT_TYPES
    ]
    return console.render(
        "admin/fields_detail.html",
        status_code=status_code,
        cf=cf,
        values=values,
        types=TYPES,
        roles=ROLES,
        parents=parents,
        problems=found or {},
        entries=history(console.db, "custom_field", cf.name) if cf is not None else [],
    )


def _texts_of(data: Mapping[str, Any], key: str) -> dict[str, str]:
    return {
        lang: form_str(data, f"{key}_{lang}")
        for lang in ("pl", "en")
        if form_str(data, f"{key}_{lang}")
    }


def _number(text: str) -> int | float | str | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text.replace(",", "."))
        except ValueError:
            return text  # apply's validation names it


def field_fragment(data: Mapping[str, Any], stored: CustomField | None) -> dict[str, Any]:
    """The YAML fragment equivalent to the form."""
    spec: dict[str, Any] = {"name": stored.name if stored is not None else form_str(data, "name")}
    label = _texts_of(data, "label")
    if label:
        spec["label"] = label
    elif stored is not None and (stored.labels or stored.label):
        spec["label"] = None
    help_ = _texts_of(data, "help")
    if help_:
        spec["help"] = help_
    elif stored is not None and stored.help:
        spec["help"] = None
    spec["type"] = form_str(data, "type") or "text"
    options = [o.strip() for o in form_str(data, "options").splitlines() if o.strip()]
    options = list(dict.fromkeys(options))
    if spec["type"] in ("select", "multiselect"):
        spec["options"] = options
        if stored is not None:
            gone = [o for o in stored.options or [] if o not in options]
            if gone:
                spec["remove"] = {"options": gone}
    elif stored is not None and stored.options:
        spec["options"] = None  # a field that stops being a choice drops its choices
    elif options:
        spec["options"] = options  # apply says that this type takes none
    spec["min"] = _number(form_str(data, "min"))
    spec["max"] = _number(form_str(data, "max"))
    edit = [r for r in ROLES if r in form_list(data, "edit")]
    spec["edit"] = None if set(edit) == set(DEFAULT_EDIT) else edit
    spec["required"] = bool(form_str(data, "required"))
    spec["visible_to_client"] = bool(form_str(data, "visible_to_client"))
    spec["visible_to_subcontractor"] = {"yes": True, "no": False}.get(
        form_str(data, "visible_to_subcontractor")
    )
    order = _number(form_str(data, "order"))
    if order is not None:
        spec["order"] = order
    parent = form_str(data, "dep_field")
    if parent:
        if form_str(data, "dep_rule") == "when":
            bools = {"true": True, "false": False}
            spec["depends_on"] = {
                "field": parent,
                "when": [bools.get(v, v) for v in form_list(data, f"dwhen:{parent}")],
            }
        else:
            prefix = f"dopt:{parent}:"
            allowed: dict[str, list[str]] = {}
            for key in data:
                if key.startswith(prefix):
                    chosen = [c.strip() for c in form_str(data, key).split(",") if c.strip()]
                    if chosen:
                        allowed[key[len(prefix) :]] = chosen
            spec["depends_on"] = {"field": parent, "options": allowed}
    elif stored is not None and stored.depends_on:
        spec["depends_on"] = None
    return {"custom_fields": [spec]}


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    name = kwargs.get("name")
    cf = (
        console.db.scalar(
            select(CustomField).where(CustomField.contract_id.is_(None), CustomField.name == name)
        )
        if name
        else None
    )
    found = problems(exc, console)
    return field_page(console, cf, form=kwargs["data"], found=found, status_code=exc.status_code)


def _delete_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    """A deletion refused (something refers to the object): the page as stored, saying why."""
    name = kwargs["name"]
    return field_page(
        console,
        _field(console, name),
        found={"": console.refusal(exc)},
        status_code=exc.status_code,
    )


def _path(name: str) -> str:
    return "/admin/fields/" + quote(name, safe="")


class FieldsAdmin(Controller):
    path = "/admin/fields"
    dependencies = {"console": admin_console}

    @get("/", sync_to_thread=True, name="admin_fields")
    def index(self, console: CurrentConsole, q: str = "") -> Template:
        q = q.strip()[:200]
        stmt = (
            select(CustomField)
            .where(CustomField.contract_id.is_(None))
            .order_by(CustomField.position, CustomField.id)
        )
        if q:
            like = f"%{q.lower()}%"
            stmt = stmt.where(
                or_(
                    func.lower(CustomField.name).like(like),
                    func.lower(CustomField.label).like(like),
                )
            )
        return console.render("admin/fields.html", q=q, fields=list(console.db.scalars(stmt)))

    @get("/new", sync_to_thread=True, name="admin_field_new")
    def new(self, console: CurrentConsole) -> Template:
        return field_page(console, None)

    @form_post("/new", refused=_refused)
    def create(self, console: CurrentConsole, data: FormDict) -> Template | Redirect:
        name = form_str(data, "name")
        where = f"{P}.name"
        if not name:
            raise ConfigError([Problem.of(0, "console", where, N_("a custom field needs a name"))])
        exists = select(CustomField.id).where(
            CustomField.contract_id.is_(None), CustomField.name == name
        )
        if console.db.scalar(exists) is not None:
            raise ConfigError(
                [Problem.of(0, "console", where, N_("%(name)r exists already"), name=name)]
            )
        save(console, field_fragment(data, None))
        return console.redirect(_path(name), console.gettext("Custom field created."))

    @form_post("/{name:str}/delete", refused=_delete_refused)
    def delete(self, console: CurrentConsole, name: str, data: FormDict) -> Template | Redirect:
        """Only what nothing refers to (``core.configuration.delete``); otherwise a 409 saying
        what refers to it."""
        found = _field(console, name)
        delete_object(console.db, "custom_field", found.name, console.user)
        return console.redirect("/admin/fields", console.gettext("Custom field deleted."))

    @get("/{name:str}", sync_to_thread=True, name="admin_field")
    def show(self, console: CurrentConsole, name: str) -> Template:
        return field_page(console, _field(console, name))

    @form_post("/{name:str}", refused=_refused)
    def update(self, console: CurrentConsole, name: str, data: FormDict) -> Template | Redirect:
        cf = _field(console, name)
        save(console, field_fragment(data, cf))
        return console.redirect(_path(name), console.gettext("Custom field saved."))


handlers = [FieldsAdmin]
