"""Custom fields: what a ticket's form holds, who may fill it in, and how fields depend on each
other. One set of rules for every door (the API, the console, the portal, YAML seeds); the
console's live form (``web/static/pulpit.js``) applies the same rules from :func:`form_rules`
and the server checks them again here.

- **Definitions** (:func:`definitions`): the instance's fields and the ticket's contract's, by
  name (a contract's field of the same name replaces the instance's), in ``position`` order.
- **Rights** (:func:`may_edit`): a field's ``edit`` roles (default admin, coordinator,
  technician). A client filling in a new ticket in the portal may also set the fields they can
  see that the contract requires on open: they are asked for them.
- **Reading** (:func:`field_visible`): staff read every field; clients the ones
  ``visible_to_client``; subcontractors the ones ``visible_to_subcontractor`` (unset: as
  ``visible_to_client``).
- **Dependencies** (``depends_on``): ``{field, options: {parent value: [options]}}`` limits a
  select's options by its parent's value (a parent value the map does not list, or an empty
  parent, leaves no option: the field does not apply yet); ``{field, when: [values]}`` makes a
  field exist only while its parent has one of the values. A field whose parent does not apply
  does not apply either. A value set now that a rule refuses is a 400 naming the field; a
  stored value that a change of its parent made invalid is cleared, and the ``field`` event
  says so (``cleared``).
- **Required** (:func:`missing_fields`): ``contracts[].required_fields`` says ``open`` or
  ``close`` per field, and a field's own ``required`` means ``close`` on every ticket. A field
  that does not apply (its dependency) is never missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.contracts.models import Contract, CustomField
from core.directory.models import User
from core.errors import N_, Forbidden, InputError

TYPES = ("text", "textarea", "number", "date", "bool", "select", "multiselect")
CHOICE_TYPES = ("select", "multiselect")
STAFF_ROLES = ("admin", "coordinator", "technician")
DEFAULT_EDITORS = STAFF_ROLES
EDITOR_ROLES = ("admin", "coordinator", "technician", "subcontractor", "client")
PHASES = ("open", "close")
TEXT_LIMITS = {"text": 500, "textarea": 20000}


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


# --- Definitions and their words -------------------------------------------------------------


def _scope(contract_ids: Iterable[int | None]) -> Any:
    ids = [i for i in contract_ids if i is not None]
    clause = CustomField.contract_id.is_(None)
    return clause | CustomField.contract_id.in_(ids) if ids else clause


def _merge(rows: Iterable[CustomField], contract_id: int | None) -> list[CustomField]:
    by_name: dict[str, CustomField] = {}
    for f in rows:
        if f.contract_id is None:
            by_name.setdefault(f.name, f)
        elif f.contract_id == contract_id:
            by_name[f.name] = f
    return sorted(by_name.values(), key=lambda f: (f.position or 0, f.name))


def definitions(session: Session, contract: Contract | int | None) -> list[CustomField]:
    """The custom fields of a ticket under ``contract`` (None: in triage), in form order."""
    contract_id = contract.id if isinstance(contract, Contract) else contract
    rows = session.scalars(select(CustomField).where(_scope([contract_id])))
    return _merge(rows, contract_id)


def definitions_by_contract(
    session: Session, contract_ids: Iterable[int | None]
) -> dict[int | None, list[CustomField]]:
    """:func:`definitions` for several contracts in one query (a page of the list)."""
    wanted = set(contract_ids)
    rows = list(session.scalars(select(CustomField).where(_scope(wanted))))
    return {cid: _merge(rows, cid) for cid in wanted}


def localized(value: Any, lang: str) -> str | None:
    """A text written once (a string) or per language (``{pl: ..., en: ...}``) in ``lang``,
    else English, else any."""
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):
        for key in (lang, "en", "pl"):
            if value.get(key):
                return str(value[key])
        return next((str(v) for v in value.values() if v), None)
    return str(value)


def label(f: CustomField, lang: str = "en") -> str:
    return localized(f.labels, lang) or f.label or f.name


def help_text(f: CustomField, lang: str = "en") -> str | None:
    return localized(f.help, lang)


def labels_of(f: CustomField) -> dict[str, str] | str:
    """The label to keep on an event, so the timeline shows it after the field is renamed or
    gone: per language when it has them."""
    if f.labels:
        return {str(k): str(v) for k, v in f.labels.items() if v}
    return f.label or f.name


# --- Rights ---------------------------------------------------------------------------------


def field_visible(viewer: User, f: CustomField) -> bool:
    """May this viewer read this field? (See the module's docstring.)"""
    if viewer.role in STAFF_ROLES:
        return True
    if viewer.role == "subcontractor" and f.visible_to_subcontractor is not None:
        return bool(f.visible_to_subcontractor)
    return bool(f.visible_to_client)


def editors(f: CustomField) -> Sequence[str]:
    return tuple(f.edit) if f.edit is not None else DEFAULT_EDITORS


def may_edit(
    user: User, f: CustomField, *, contract: Contract | None = None, opening: bool = False
) -> bool:
    """May ``user`` set this field (``opening``: on the ticket they are opening now)?"""
    if user.role in editors(f):
        return field_visible(user, f)
    if opening and user.role == "client" and field_visible(user, f):
        return required_when(f, contract) == "open"
    return False


def required_when(f: CustomField, contract: Contract | None) -> str | None:
    """``open``, ``close`` or None: when this field must be filled on ``contract``'s tickets."""
    when = (contract.required_fields or {}).get(f.name) if contract is not None else None
    if when in PHASES:
        return str(when)
    return "close" if f.required else None


# --- Values ---------------------------------------------------------------------------------


def _key(value: Any) -> str:
    """A value as the keys of ``depends_on`` write it (YAML keys are strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_list(value: Any) -> list[Any]:
    if is_empty(value):
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def coerce(f: CustomField, value: Any, lang: str = "en") -> Any:
    """A value given for ``f`` as stored (JSON), or None for empty; 400 when its type refuses."""
    if is_empty(value):
        return None
    name = label(f, lang)
    kind = f.type
    if kind == "number":
        number: float
        try:
            if isinstance(value, bool):
                raise ValueError
            number = (
                float(str(value).strip().replace(",", "."))
                if isinstance(value, str)
                else float(value)
            )
            if not math.isfinite(number):
                raise ValueError
        except (TypeError, ValueError):
            raise InputError(
                N_("%(field)s needs a number, not %(value)r"), field=name, value=value
            ) from None
        if f.min_value is not None and number < f.min_value:
            raise InputError(
                N_("%(field)s must be at least %(min)s"), field=name, min=_number_text(f.min_value)
            )
        if f.max_value is not None and number > f.max_value:
            raise InputError(
                N_("%(field)s must be at most %(max)s"), field=name, max=_number_text(f.max_value)
            )
        return int(number) if number.is_integer() else number
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "tak", "on"):
            return True
        if text in ("false", "0", "no", "nie", "off"):
            return False
        raise InputError(N_("%(field)s needs yes or no, not %(value)r"), field=name, value=value)
    if kind == "date":
        try:
            return date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise InputError(
                N_("%(field)s needs a date as YYYY-MM-DD, not %(value)r"), field=name, value=value
            ) from None
    options = [str(o) for o in f.options or []]
    if kind == "select":
        if isinstance(value, list | dict) or str(value) not in options:
            raise InputError(
                N_("%(field)s must be one of: %(options)s"), field=name, options=", ".join(options)
            )
        return str(value)
    if kind == "multiselect":
        given = [str(v) for v in _as_list(value)] if not isinstance(value, dict) else None
        if given is None or any(v not in options for v in given):
            raise InputError(
                N_("%(field)s takes values from: %(options)s"),
                field=name,
                options=", ".join(options),
            )
        return [o for o in options if o in given] or None
    if isinstance(value, list | dict):
        raise InputError(N_("%(field)s needs text, not %(value)r"), field=name, value=value)
    text = str(value).strip()
    if kind == "text":
        text = " ".join(text.split())
    limit = TEXT_LIMITS.get(kind, 500)
    if len(text) > limit:
        raise InputError(
            N_("%(field)s takes at most %(limit)s characters"), field=name, limit=limit
        )
    return text or None


def _parent(f: CustomField, by_name: Mapping[str, CustomField]) -> CustomField | None:
    dep = f.depends_on or {}
    return by_name.get(str(dep.get("field"))) if dep.get("field") else None


def applies(
    f: CustomField,
    values: Mapping[str, Any],
    by_name: Mapping[str, CustomField],
    _seen: frozenset[str] = frozenset(),
) -> bool:
    """Does ``f`` exist on a ticket with these values (its ``depends_on.when`` and its parent's)?"""
    parent = _parent(f, by_name)
    if parent is None or f.name in _seen:
        return True
    if not applies(parent, values, by_name, _seen | {f.name}):
        return False
    dep = f.depends_on or {}
    if "when" in dep:
        wanted = {_key(v) for v in dep.get("when") or []}
        return any(_key(v) in wanted for v in _as_list(values.get(parent.name)))
    if "options" in dep:
        return bool(allowed_options(f, values, by_name))
    return True


def allowed_options(
    f: CustomField, values: Mapping[str, Any], by_name: Mapping[str, CustomField]
) -> list[str] | None:
    """The options ``f`` offers with these values (None: not a choice field)."""
    if f.type not in CHOICE_TYPES:
        return None
    options = [str(o) for o in f.options or []]
    dep = f.depends_on or {}
    parent = _parent(f, by_name)
    if parent is None or "options" not in dep:
        return options
    mapping = {_key(k): {str(o) for o in v or []} for k, v in (dep.get("options") or {}).items()}
    allowed: set[str] = set()
    for value in _as_list(values.get(parent.name)):
        allowed |= mapping.get(_key(value), set())
    return [o for o in options if o in allowed]


def _parent_words(f: CustomField, by_name: Mapping[str, CustomField], lang: str) -> dict[str, str]:
    parent = _parent(f, by_name)
    dep = f.depends_on or {}
    return {
        "parent": label(parent, lang) if parent is not None else str(dep.get("field")),
        "values": ", ".join(_key(v) for v in dep.get("when") or []),
    }


def _refusal(
    f: CustomField, value: Any, values: Mapping[str, Any], by_name: Mapping[str, CustomField]
) -> str | None:
    """Why the dependency rules refuse ``value`` for ``f`` now: "applies" or "option"."""
    if not applies(f, values, by_name):
        return "applies"
    allowed = allowed_options(f, values, by_name)
    if allowed is not None and any(v not in allowed for v in _as_list(value)):
        return "option"
    return None


@dataclass
class FieldUpdate:
    """What a change does to a ticket's values: ``values`` after it, ``changes`` as
    ``{name: [old, new]}`` (set now and cleared), ``cleared`` the names its dependency rules
    emptied."""

    values: dict[str, Any]
    changes: dict[str, list[Any]] = field(default_factory=dict)
    cleared: list[str] = field(default_factory=list)


def update(
    defs: Sequence[CustomField],
    current: Mapping[str, Any] | None,
    requested: Any,
    *,
    actor: User | None,
    contract: Contract | None = None,
    opening: bool = False,
    lang: str = "en",
) -> FieldUpdate:
    """Check and apply ``requested`` (``{name: value}``) over ``current``: 400 for an unknown
    field or a value its type or dependency refuses, 403 for a field ``actor`` may not set
    (None: no one to check, a seed)."""
    current = dict(current or {})
    if requested is None:
        requested = {}
    if not isinstance(requested, Mapping):
        raise InputError(N_("custom_fields must be an object of field names and values"))
    by_name = {f.name: f for f in defs}
    clean: dict[str, Any] = {}
    for name, raw in requested.items():
        f = by_name.get(str(name))
        if f is None:
            raise InputError(
                N_("unknown custom field %(name)r; known fields: %(known)s"),
                name=name,
                known=", ".join(sorted(by_name)) or "-",
            )
        if actor is not None and not may_edit(actor, f, contract=contract, opening=opening):
            raise Forbidden(N_("you may not edit the field %(field)s"), field=label(f, lang))
        clean[f.name] = coerce(f, raw, lang)
    values = {**current, **clean}
    cleared: list[str] = []
    for _ in range(len(defs) + 1):
        changed = False
        for f in defs:
            value = values.get(f.name)
            if is_empty(value):
                continue
            why = _refusal(f, value, values, by_name)
            if why is None:
                continue
            if f.name in clean:
                words = _parent_words(f, by_name, lang)
                if why == "applies" and words["values"]:
                    raise InputError(
                        N_("%(field)s applies only when %(parent)s is %(values)s"),
                        field=label(f, lang),
                        **words,
                    )
                raise InputError(
                    N_("%(value)s is not an option of %(field)s when %(parent)s is %(given)s"),
                    value=", ".join(map(str, _as_list(value))),
                    field=label(f, lang),
                    parent=words["parent"],
                    given=", ".join(_key(v) for v in _as_list(values.get(_parent_name(f)))) or "-",
                )
            values[f.name] = None
            cleared.append(f.name)
            changed = True
        if not changed:
            break
    values = {k: v for k, v in values.items() if not is_empty(v)}
    changes = {
        name: [current.get(name), values.get(name)]
        for name in [*clean, *cleared]
        if current.get(name) != values.get(name)
    }
    return FieldUpdate(values=values, changes=changes, cleared=cleared)


def _parent_name(f: CustomField) -> str:
    return str((f.depends_on or {}).get("field") or "")


def missing_fields(
    defs: Sequence[CustomField],
    contract: Contract | None,
    values: Mapping[str, Any] | None,
    phase: str,
) -> list[CustomField]:
    """The fields that must be filled ``phase`` (``open``: those required on open; ``close``:
    every required one) and are empty, leaving out those that do not apply."""
    values = values or {}
    by_name = {f.name: f for f in defs}
    missing = []
    for f in defs:
        when = required_when(f, contract)
        if when is None or (phase == "open" and when != "open"):
            continue
        if is_empty(values.get(f.name)) and applies(f, values, by_name):
            missing.append(f)
    return missing


def form_rules(
    defs: Sequence[CustomField],
    viewer: User,
    *,
    contract: Contract | None,
    lang: str,
    opening: bool = False,
) -> list[dict[str, Any]]:
    """The fields of a form as the viewer may see and set them, with the dependency rules the
    browser applies as the user types (``data-field-rules`` of the console's forms)."""
    rules = []
    for f in defs:
        if not field_visible(viewer, f):
            continue
        rules.append(
            {
                "name": f.name,
                "label": label(f, lang),
                "help": help_text(f, lang),
                "type": f.type,
                "options": [str(o) for o in f.options or []],
                "min": f.min_value,
                "max": f.max_value,
                "depends_on": f.depends_on or None,
                "required": required_when(f, contract),
                "editable": may_edit(viewer, f, contract=contract, opening=opening),
            }
        )
    return rules
