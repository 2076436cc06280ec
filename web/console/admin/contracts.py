"""Admin console: contracts (issue 13). See web/console/admin/__init__.py.

The form is one contract's YAML entry (``contracts: [{code, client, ..., ticket_types,
statuses, required_fields, custom_fields, worklog_billable, hourly_rate, currency,
worklog_visible_to_client, work_types}]``), saved through ``common.save``; a problem's key
path in that fragment is mapped back to the form's field (``contracts[0].ticket_types[1]
.reaction`` -> the reaction of the second row shown). Apply merges lists and never removes by
omission, so what is unticked (a product, a coordinator) is said with ``remove:``.

Saving a change that moves SLA deadlines (targets, calendar) asks first: the save button's
first press runs ``what_it_would_do`` and, when open tickets would get new deadlines, shows
how many with a button that confirms; only then is it applied. A contract is ended with
``valid_to``: there is no delete.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from litestar import Controller, get
from litestar.response import Redirect, Template
from sqlalchemy import or_, select
from sqlalchemy.orm import object_session, selectinload

from core.configuration.delete import delete_object
from core.configuration.errors import ConfigError
from core.contracts.models import Client, Contract, CustomField, Product
from core.directory.models import Subcontractor, User
from core.errors import N_, InputError, NotFound
from core.sla.models import Calendar
from core.worklog.models import WorkType
from web.console.admin.calendars import refusal
from web.console.admin.common import (
    admin_console,
    history,
    problems,
    save,
    saved_message,
    what_it_would_do,
)
from web.console.forms import Console, CurrentConsole, FormDict, form_post

PATH = "contracts[0]"
CATEGORIES = ("new", "open", "paused", "closed")
CATEGORY_WORDS = {
    "new": N_("New"),
    "open": N_("Open"),
    "paused": N_("Paused"),
    "closed": N_("Closed"),
}
FIELD_TYPES = ("text", "textarea", "number", "date", "bool", "select", "multiselect")
TOP_KEYS = (
    "code",
    "client",
    "name",
    "key",
    "calendar",
    "valid_from",
    "valid_to",
    "products",
    "mailboxes",
    "warning_threshold",
    "coordinators",
    "technicians",
    "required_fields",
    "ticket_types",
    "statuses",
    "custom_fields",
    "worklog_billable",
    "hourly_rate",
    "currency",
    "worklog_visible_to_client",
    "work_types",
)
# Offered as you type the currency; any ISO 4217 code is accepted (core.configuration.schema).
CURRENCIES = ("PLN", "EUR", "USD", "GBP", "CHF", "CZK")
# A work type's billable: the contract's default, or said for the type.
BILLABLE = {"": None, "yes": True, "no": False}
# A problem deeper in a row (checklist.items[2]) is shown under the row's field.
ROW_KEYS = {"subject_keywords": "keywords", "checklist": "checklist"}


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value.strip() if isinstance(value, str) else ""


def _texts(data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key)
    values = value if isinstance(value, list) else [] if value is None else [value]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _count(data: Mapping[str, Any], key: str) -> int:
    try:
        return max(0, min(int(_text(data, key) or 0), 200))
    except ValueError:
        return 0


def _keywords(text: str) -> list[str]:
    return [k.strip() for k in re.split(r"[,\n]", text) if k.strip()]


def _amount(minor: int | None) -> str:
    """An amount stored in minor units as typed in the form (15000 -> 150.00)."""
    return "" if minor is None else f"{minor / 100:.2f}"


def _work_types(contract: Contract) -> list[dict[str, Any]]:
    session = object_session(contract)
    if session is None or contract.id is None:
        return []
    rows = session.scalars(
        select(WorkType)
        .where(WorkType.contract_id == contract.id)
        .order_by(WorkType.position, WorkType.id)
    )
    return [
        {
            "name": wt.name,
            "existing": True,
            "label_pl": (wt.labels or {}).get("pl", ""),
            "label_en": (wt.labels or {}).get("en", ""),
            "rate": _amount(wt.rate),
            "billable": "" if wt.billable is None else ("yes" if wt.billable else "no"),
        }
        for wt in rows
    ]


def form_from_contract(contract: Contract | None) -> dict[str, Any]:
    """The form's values for a stored contract (None: a new one)."""
    if contract is None:
        return {
            "code": "",
            "client": "",
            "name": "",
            "key": False,
            "calendar": "",
            "valid_from": "",
            "valid_to": "",
            "warning_threshold": "0.8",
            "products": [],
            "coordinators": [],
            "technicians": [],
            "types": [],
            "statuses": [],
            "required": {},
            "field": {},
            "default_type": "",
            "worklog_billable": True,
            "hourly_rate": "",
            "currency": "PLN",
            "worklog_visible_to_client": False,
            "work_types": [],
        }
    types: list[dict[str, Any]] = []
    default = ""
    for i, tt in enumerate(contract.ticket_types):
        checklist = tt.checklist or {}
        if tt.default:
            default = str(i)
        types.append(
            {
                "name": tt.name,
                "existing": True,
                "reaction": tt.reaction or "",
                "resolution": tt.resolution or "",
                "keywords": ", ".join(str(k) for k in tt.subject_keywords or []),
                "checklist": "\n".join(checklist.get("items") or []),
                "required_to_close": bool(checklist.get("required_to_close")),
            }
        )
    statuses = [
        {
            "name": s.name,
            "existing": True,
            "category": s.category,
            "visible_to_client": s.visible_to_client,
            "client_can_set": s.client_can_set,
            "visible_to_subcontractor": s.visible_to_subcontractor,
            "resume": ""
            if s.resume_on_client_reply is None
            else ("yes" if s.resume_on_client_reply else "no"),
        }
        for s in contract.statuses
    ]
    return {
        "code": contract.code,
        "client": contract.client.name,
        "name": contract.name or "",
        "key": contract.key,
        "calendar": contract.calendar.name if contract.calendar else "",
        "valid_from": contract.valid_from.isoformat() if contract.valid_from else "",
        "valid_to": contract.valid_to.isoformat() if contract.valid_to else "",
        "warning_threshold": f"{contract.warning_threshold:g}",
        "products": [p.name for p in contract.products],
        "coordinators": [u.email for u in contract.coordinators],
        "technicians": [u.email for u in contract.technicians],
        "types": types,
        "statuses": statuses,
        "required": dict(contract.required_fields or {}),
        "field": {},
        "default_type": default,
        "worklog_billable": contract.worklog_billable,
        "hourly_rate": _amount(contract.hourly_rate),
        "currency": contract.currency,
        "worklog_visible_to_client": contract.worklog_visible_to_client,
        "work_types": _work_types(contract),
    }


def form_from_data(data: Mapping[str, Any], contract: Contract | None) -> dict[str, Any]:
    """The form as typed (refilled after a refusal; the fragment is built from it)."""
    stored = form_from_contract(contract)
    old_types = {t["name"] for t in stored["types"]}
    old_statuses = {s["name"] for s in stored["statuses"]}
    types: list[dict[str, Any]] = []
    for i in range(_count(data, "tt_count")):
        p = f"tt{i}."
        name = _text(data, p + "name")
        types.append(
            {
                "name": name,
                "existing": name in old_types,
                "reaction": _text(data, p + "reaction"),
                "resolution": _text(data, p + "resolution"),
                "keywords": _text(data, p + "keywords"),
                "checklist": _text(data, p + "checklist"),
                "required_to_close": bool(_text(data, p + "required_to_close")),
            }
        )
    statuses: list[dict[str, Any]] = []
    for i in range(_count(data, "st_count")):
        p = f"st{i}."
        name = _text(data, p + "name")
        statuses.append(
            {
                "name": name,
                "existing": name in old_statuses,
                "category": _text(data, p + "category"),
                "visible_to_client": bool(_text(data, p + "visible_to_client")),
                "client_can_set": bool(_text(data, p + "client_can_set")),
                "visible_to_subcontractor": bool(_text(data, p + "visible_to_subcontractor")),
                "resume": _text(data, p + "resume"),
            }
        )
    old_work_types = {w["name"] for w in stored["work_types"]}
    work_types: list[dict[str, Any]] = []
    for i in range(_count(data, "wt_count")):
        p = f"wt{i}."
        name = _text(data, p + "name")
        row = {
            "name": name,
            "existing": name in old_work_types,
            "label_pl": _text(data, p + "label_pl"),
            "label_en": _text(data, p + "label_en"),
            "rate": _text(data, p + "rate"),
            "billable": _text(data, p + "billable"),
        }
        # A row left blank is the page's spare one: the page adds it again.
        if any(row[k] for k in ("name", "label_pl", "label_en", "rate", "billable")):
            work_types.append(row)
    required = {
        key[4:]: _text(data, key)
        for key in data
        if isinstance(key, str) and key.startswith("req.") and _text(data, key)
    }
    return {
        "code": contract.code if contract is not None else _text(data, "code"),
        "client": _text(data, "client"),
        "name": _text(data, "name"),
        "key": bool(_text(data, "key")),
        "calendar": _text(data, "calendar"),
        "valid_from": _text(data, "valid_from"),
        "valid_to": _text(data, "valid_to"),
        "warning_threshold": _text(data, "warning_threshold"),
        "products": _texts(data, "products"),
        "coordinators": _texts(data, "coordinators"),
        "technicians": _texts(data, "technicians"),
        "types": types,
        "statuses": statuses,
        "required": required,
        "field": {
            k: _text(data, f"cf.{k}") for k in ("name", "label_pl", "label_en", "type", "options")
        },
        "default_type": _text(data, "default_type"),
        "worklog_billable": bool(_text(data, "worklog_billable")),
        "hourly_rate": _text(data, "hourly_rate"),
        "currency": _text(data, "currency"),
        "worklog_visible_to_client": bool(_text(data, "worklog_visible_to_client")),
        "work_types": work_types,
        "_stored": stored,
    }


def fragment(
    form: dict[str, Any], contract: Contract | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The contract's YAML entry, and the map from its key paths to the form's fields."""
    stored = form.get("_stored") or form_from_contract(contract)
    paths: dict[str, str] = {}
    entry: dict[str, Any] = {"code": form["code"]}
    if form["client"]:
        entry["client"] = form["client"]
    entry["name"] = form["name"] or None
    entry["key"] = form["key"]
    entry["calendar"] = form["calendar"] or None
    entry["valid_from"] = form["valid_from"] or None
    entry["valid_to"] = form["valid_to"] or None
    threshold: Any = form["warning_threshold"] or None
    if threshold is not None:
        try:
            threshold = float(threshold.replace(",", "."))
        except ValueError:
            pass  # refused by the schema, under its field
    entry["warning_threshold"] = threshold
    entry["products"] = form["products"]
    entry["coordinators"] = form["coordinators"]
    entry["technicians"] = form["technicians"]
    remove = {
        "products": [p for p in stored["products"] if p not in form["products"]],
        "coordinators": [c for c in stored["coordinators"] if c not in form["coordinators"]],
        "technicians": [t for t in stored["technicians"] if t not in form["technicians"]],
    }
    types: list[dict[str, Any]] = []
    for i, row in enumerate(form["types"]):
        if not row["name"]:
            continue
        paths[f"{PATH}.ticket_types[{len(types)}]"] = f"tt{i}"
        tt: dict[str, Any] = {
            "name": row["name"],
            "reaction": row["reaction"] or None,
            "resolution": row["resolution"] or None,
            "subject_keywords": _keywords(row["keywords"]),
        }
        if form["default_type"]:
            tt["default"] = form["default_type"] == str(i)
        items = [line.strip() for line in row["checklist"].splitlines() if line.strip()]
        if items:
            tt["checklist"] = {"items": items, "required_to_close": row["required_to_close"]}
        elif row["existing"]:
            tt["checklist"] = None
        types.append(tt)
    if types:
        entry["ticket_types"] = types
    statuses: list[dict[str, Any]] = []
    for i, row in enumerate(form["statuses"]):
        if not row["name"]:
            continue
        paths[f"{PATH}.statuses[{len(statuses)}]"] = f"st{i}"
        statuses.append(
            {
                "name": row["name"],
                "category": row["category"] or None,
                "visible_to_client": row["visible_to_client"],
                "client_can_set": row["client_can_set"],
                "visible_to_subcontractor": row["visible_to_subcontractor"],
                "resume_on_client_reply": {"yes": True, "no": False}.get(row["resume"]),
            }
        )
    if statuses:
        entry["statuses"] = statuses
    field = form["field"]
    if field.get("name"):
        paths[f"{PATH}.custom_fields[0]"] = "cf"
        new_field: dict[str, Any] = {"name": field["name"], "type": field["type"] or "text"}
        labels = {k: field[f"label_{k}"] for k in ("pl", "en") if field.get(f"label_{k}")}
        if labels:
            new_field["label"] = labels
        if field.get("options"):
            new_field["options"] = _keywords(field["options"])
        entry["custom_fields"] = [new_field]
    required: dict[str, Any] = {}
    for name in set(form["required"]) | set(stored["required"]):
        value = form["required"].get(name) or None
        if value != stored["required"].get(name):
            required[name] = value
    if required:
        entry["required_fields"] = required
    entry["worklog_billable"] = form["worklog_billable"]
    entry["hourly_rate"] = form["hourly_rate"] or None
    entry["currency"] = form["currency"] or None
    entry["worklog_visible_to_client"] = form["worklog_visible_to_client"]
    work_types: list[dict[str, Any]] = []
    for i, row in enumerate(form["work_types"]):
        # A row with a label or a rate but no name is sent as it is: refused under its name.
        paths[f"{PATH}.work_types[{len(work_types)}]"] = f"wt{i}"
        labels = {k: row[f"label_{k}"] for k in ("pl", "en") if row[f"label_{k}"]}
        work_types.append(
            {
                "name": row["name"],
                "label": labels or None,
                "rate": row["rate"] or None,
                "billable": BILLABLE.get(row["billable"]),
            }
        )
    if work_types:
        entry["work_types"] = work_types
    removal = {k: v for k, v in remove.items() if v}
    if removal:
        entry["remove"] = removal
    return {"contracts": [entry]}, paths


def place(found: dict[str, str], paths: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Problems by the form's field names (``tt1.reaction``, ``valid_to``), and the rest."""
    placed: dict[str, str] = {}
    rest: dict[str, str] = {}
    for path, text in found.items():
        name = None
        for prefix, row in sorted(paths.items(), key=lambda p: -len(p[0])):
            if path.startswith(prefix + "."):
                key = re.split(r"[.\[]", path[len(prefix) + 1 :])[0]
                name = f"{row}.{ROW_KEYS.get(key, key)}"
                break
            if path == prefix:
                name = f"{row}.name"
                break
        if name is None and path.startswith(PATH + "."):
            key = re.split(r"[.\[]", path[len(PATH) + 1 :])[0]
            if key == "required_fields" and "." in path[len(PATH) + 1 :]:
                name = "req." + path.rsplit(".", 1)[-1]
            elif key in TOP_KEYS:
                name = key
        if name is None or name in placed:
            rest[path] = text
        else:
            placed[name] = text
    return placed, rest


def _contract(console: Console, contract_id: int) -> Contract:
    contract = console.db.get(Contract, contract_id)
    if contract is None:
        raise NotFound(N_("no such contract"))
    return contract


def detail_page(
    console: Console,
    contract: Contract | None,
    form: dict[str, Any],
    *,
    status_code: int = 200,
    found: dict[str, str] | None = None,
    paths: dict[str, str] | None = None,
    error: str | None = None,
    deadlines: int | None = None,
) -> Template:
    db = console.db
    translated = {path: console.gettext(text) for path, text in (found or {}).items()}
    placed, rest = place(translated, paths or {})
    fields = list(
        db.scalars(
            select(CustomField)
            .where(
                or_(
                    CustomField.contract_id.is_(None),
                    CustomField.contract_id == (contract.id if contract else -1),
                )
            )
            .order_by(CustomField.contract_id.is_not(None), CustomField.position, CustomField.name)
        )
    )
    staff = list(
        db.scalars(
            select(User)
            .where(User.role.in_(("admin", "coordinator")), User.active.is_(True))
            .order_by(User.email)
        )
    )
    serving = (
        list(
            db.scalars(
                select(Subcontractor)
                .where(Subcontractor.contracts.any(Contract.id == contract.id))
                .order_by(Subcontractor.name)
            )
        )
        if contract is not None
        else []
    )
    return console.render(
        "admin/contracts_detail.html",
        status_code=status_code,
        contract=contract,
        form=form,
        problems=placed,
        rest=rest,
        error=error,
        deadlines=deadlines,
        clients=list(db.scalars(select(Client).order_by(Client.name))),
        calendars=list(db.scalars(select(Calendar).order_by(Calendar.name))),
        products=list(db.scalars(select(Product).order_by(Product.name))),
        staff=staff,
        # Who may serve the contract's queue (core.tickets.queue): anyone assignable.
        assignable=list(
            db.scalars(
                select(User)
                .where(User.role.in_(("admin", "coordinator", "technician")), User.active.is_(True))
                .order_by(User.email)
            )
        ),
        fields=fields,
        serving=serving,
        mailboxes=list(contract.mailboxes) if contract is not None else [],
        categories=CATEGORIES,
        category_words=CATEGORY_WORDS,
        field_types=FIELD_TYPES,
        currencies=CURRENCIES,
        entries=history(db, "contract", contract.code) if contract is not None else [],
    )


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    contract_id = kwargs.get("contract_id")
    contract = _contract(console, contract_id) if contract_id is not None else None
    form = form_from_data(kwargs["data"], contract)
    _, paths = fragment(form, contract)
    if isinstance(exc, ConfigError):
        return detail_page(
            console, contract, form, status_code=400, found=problems(exc, console), paths=paths
        )
    return detail_page(
        console, contract, form, status_code=exc.status_code, error=console.refusal(exc)
    )


def _delete_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    """A type or status something uses: the contract as stored, saying why not (409)."""
    contract = _contract(console, kwargs["contract_id"])
    return detail_page(
        console,
        contract,
        form_from_contract(contract),
        status_code=exc.status_code,
        error=console.refusal(exc),
    )


def _save(console: Console, contract: Contract | None, data: Mapping[str, Any]) -> Any:
    form = form_from_data(data, contract)
    if not form["code"]:
        raise refusal(f"{PATH}.code", N_("a contract needs a code"))
    if contract is None and console.db.scalar(
        select(Contract.id).where(Contract.code == form["code"])
    ):
        raise refusal(f"{PATH}.code", N_("a contract with this code exists already"))
    change, paths = fragment(form, contract)
    if contract is not None and _text(data, "action") != "confirm":
        effect = what_it_would_do(console, change)
        if effect.recomputed_tickets:
            return detail_page(
                console, contract, form, paths=paths, deadlines=effect.recomputed_tickets
            )
    result = save(console, change)
    console.db.flush()
    saved = console.db.scalar(select(Contract).where(Contract.code == form["code"]))
    assert saved is not None
    return console.redirect(f"/admin/contracts/{saved.id}", saved_message(console, result, data))


class ContractsPage(Controller):
    path = "/admin/contracts"
    dependencies = {"console": admin_console}

    @get("/", sync_to_thread=True, name="admin_contracts")
    def index(self, console: CurrentConsole, q: str = "") -> Template:
        query = (
            select(Contract)
            .join(Client, Contract.client_id == Client.id)
            .options(selectinload(Contract.ticket_types), selectinload(Contract.calendar))
            .order_by(Client.name, Contract.code)
        )
        text = q.strip()
        if text:
            like = f"%{text}%"
            query = query.where(
                or_(Contract.code.ilike(like), Contract.name.ilike(like), Client.name.ilike(like))
            )
        return console.render(
            "admin/contracts.html",
            q=text,
            contracts=list(console.db.scalars(query)),
            today=date.today(),
        )

    @get("/new", sync_to_thread=True, name="admin_contract_new")
    def new(self, console: CurrentConsole, client: str = "") -> Template:
        form = form_from_contract(None)
        form["client"] = client
        return detail_page(console, None, form)

    @form_post("/new", refused=_refused)
    def create(self, console: CurrentConsole, data: FormDict) -> Template | Redirect:
        return _save(console, None, data)  # type: ignore[no-any-return]

    @get("/{contract_id:int}", sync_to_thread=True, name="admin_contract")
    def show(self, console: CurrentConsole, contract_id: int) -> Template:
        contract = _contract(console, contract_id)
        return detail_page(console, contract, form_from_contract(contract))

    @form_post("/{contract_id:int}", refused=_refused)
    def update(
        self, console: CurrentConsole, contract_id: int, data: FormDict
    ) -> Template | Redirect:
        return _save(console, _contract(console, contract_id), data)  # type: ignore[no-any-return]

    # A row's Delete button (of the page's separate delete form) posts ``delete`` naming the
    # part: ``ticket_type:NAME``, ``status:NAME`` or ``work_type:NAME``; what tickets or work
    # log entries use is refused (409).
    @form_post("/{contract_id:int}/delete", refused=_delete_refused)
    def delete_part(self, console: CurrentConsole, contract_id: int, data: FormDict) -> Redirect:
        contract = _contract(console, contract_id)
        kind, _, name = _text(data, "delete").partition(":")
        if kind not in ("ticket_type", "status", "work_type") or not name:
            raise InputError(N_("choose what to delete"))
        delete_object(console.db, kind, f"{contract.code}/{name}", console.user)
        return console.redirect(f"/admin/contracts/{contract.id}", console.gettext("Deleted."))


handlers = [ContractsPage]

__all__ = ["handlers"]
