"""Custom fields in the console's forms (issue 12): the ticket page's inline form, the new
ticket form and the timeline's field changes. The rules are ``core.tickets.fields``; this
module turns them into form rows (with the JSON ``web/static/fields.js`` applies live) and
reads the posted ``field.<name>`` inputs back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from core.access.permissions import can_view
from core.contracts.models import Contract, CustomField
from core.directory.models import STAFF_ROLES, User
from core.tickets import checklists
from core.tickets import fields as field_rules
from core.tickets.models import Ticket, TicketEvent
from web.console.common import form_list, form_str
from web.i18n import Translator


def _text(value: Any) -> str:
    """A stored value as a form control holds it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def input_value(f: CustomField, value: Any) -> str | list[str]:
    if f.type == "multiselect":
        return [_text(v) for v in (value if isinstance(value, list) else [value]) if v is not None]
    return _text(value)


def field_rows(
    defs: Sequence[CustomField],
    user: User,
    values: Mapping[str, Any],
    *,
    contract: Contract | None,
    lang: str,
    opening: bool = False,
    draft: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The custom fields of a form as the template draws them: every one this user may read,
    editable or not, with what it holds now (``draft``: what the person sent, after a
    refusal), the options its parent allows now, and whether it applies (a field that exists
    only for some of its parent's values is hidden, one whose options wait for its parent is
    disabled; ``web/static/fields.js`` keeps both up to date as the person chooses)."""
    by_name = {f.name: f for f in defs}
    missing = {
        f.name
        for phase in ("open", "close")
        for f in field_rules.missing_fields(defs, contract, values, phase)
    }
    rows = []
    for f in defs:
        if not field_rules.field_visible(user, f):
            continue
        editable = field_rules.may_edit(user, f, contract=contract, opening=opening)
        current: str | list[str] = input_value(f, values.get(f.name))
        if draft is not None and editable:
            sent = draft.get(f"field.{f.name}")
            if sent is not None:
                current = sent
        applies = field_rules.applies(f, values, by_name)
        allowed = field_rules.allowed_options(f, values, by_name)
        options = [str(o) for o in f.options or []]
        dep = f.depends_on or {}
        rows.append(
            {
                "name": f.name,
                "label": field_rules.label(f, lang),
                "help": field_rules.help_text(f, lang),
                "type": f.type,
                "options": options,
                "allowed": options if allowed is None else allowed,
                "min": _text(f.min_value) if f.min_value is not None else "",
                "max": _text(f.max_value) if f.max_value is not None else "",
                "value": current,
                "stored": values.get(f.name),
                "editable": editable,
                "required": field_rules.required_when(f, contract),
                "missing": f.name in missing,
                "hidden": not applies and "options" not in dep,
                "waiting": not applies and "options" in dep,
            }
        )
    return rows


def form_context(
    db: Session,
    user: User,
    ticket: Ticket,
    lang: str,
    contracts: Sequence[Contract] = (),
    draft: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ticket page's custom fields form, checklist and type-change prompt."""
    defs = field_rules.definitions(db, ticket.contract)
    values = dict(ticket.custom_fields or {})
    rows = field_rows(
        defs,
        user,
        values,
        contract=ticket.contract,
        lang=lang,
        draft=draft if draft is not None and draft.get("fields") else None,
    )
    known = {f.name for f in defs}
    missing_open = (
        [
            field_rules.label(f, lang)
            for f in field_rules.missing_fields(defs, ticket.contract, values, "open")
        ]
        if user.role in STAFF_ROLES
        else []
    )
    items: list[dict[str, Any]] = []
    if checklists.may_tick(user, ticket):
        items = [
            {
                "id": i.id,
                "text": i.text,
                "required": i.required,
                "done": i.done,
                "done_by": i.done_by.display if i.done_by is not None else None,
                "done_at": i.done_at,
            }
            for i in sorted(ticket.checklist, key=lambda i: (i.position, i.id))
        ]
    tr = Translator(lang)
    type_checklists: dict[int, tuple[int, str]] = {}
    for contract in contracts:
        for tt in contract.ticket_types:
            texts, _required = checklists.template_items(tt)
            if texts:
                type_checklists[tt.id] = (
                    len(texts),
                    tr.ngettext(
                        "Add the %(num)d checklist item of %(type)s?",
                        "Add the %(num)d checklist items of %(type)s?",
                        len(texts),
                    )
                    % {"num": len(texts), "type": tt.name},
                )
    return {
        "field_defs": rows,
        "field_editable": any(r["editable"] for r in rows),
        "field_rules": field_rules.form_rules(defs, user, contract=ticket.contract, lang=lang),
        "field_values": {r["name"]: r["stored"] for r in rows},
        # Values stored under names no definition has (a field removed since): staff read them.
        "field_orphans": sorted((k, v) for k, v in values.items() if k not in known)
        if user.role in STAFF_ROLES
        else [],
        "missing_open": missing_open,
        "checklist": items,
        "can_tick": checklists.may_tick(user, ticket),
        "can_add_item": user.role in checklists.ADDING_ROLES and can_view(user, ticket),
        "type_checklists": type_checklists,
        "field_changes": lambda e: field_changes(e, lang, defs),
    }


def _shown(value: Any, tr: Translator) -> str:
    """A value on the timeline: lists joined, yes/no in words, empty as a dash."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return tr.gettext("yes") if value else tr.gettext("no")
    if isinstance(value, list):
        return ", ".join(_shown(v, tr) for v in value)
    return _text(value)


def field_changes(
    event: TicketEvent, lang: str, defs: Sequence[CustomField]
) -> list[dict[str, str]]:
    """A ``field`` event's changes as the timeline shows them: by label in the reader's
    language (the event keeps the labels of its day), old → new, and for a value cleared by
    its dependency, which parent's change cleared it."""
    tr = Translator(lang)
    data = event.data or {}
    labels = data.get("labels") or {}
    by_name = {f.name: f for f in defs}

    def label_of(name: str) -> str:
        if name == "ticket_type":
            return tr.gettext("Type")
        kept = field_rules.localized(labels.get(name), lang)
        if kept:
            return kept
        f = by_name.get(name)
        return field_rules.label(f, lang) if f is not None else name

    cleared = set(data.get("cleared") or [])
    rows = []
    for name, change in (data.get("changes") or {}).items():
        old, new = (list(change) + [None, None])[:2] if isinstance(change, list) else (None, change)
        parent = ""
        if name in cleared:
            f = by_name.get(name)
            parent_name = str((f.depends_on or {}).get("field") or "") if f is not None else ""
            parent = label_of(parent_name) if parent_name else tr.gettext("another field")
        rows.append(
            {
                "name": name,
                "label": label_of(name),
                "old": _shown(old, tr),
                "new": _shown(new, tr),
                "parent": parent,
            }
        )
    return rows


def _posted(data: Mapping[str, Any], name: str, f: CustomField) -> str | list[str] | None:
    """What the form sent for a field (None: not on the form). A multiselect's and a bool's
    hidden companion input makes "none ticked" arrive as ""."""
    key = f"field.{name}"
    if key not in data:
        return None
    if f.type == "multiselect":
        return form_list(data, key)
    return form_str(data, key)


def posted_fields(
    defs: Sequence[CustomField],
    user: User,
    current: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    contract: Contract | None,
    opening: bool = False,
) -> dict[str, Any]:
    """The values a fields form asks to change: those the person may set and changed. A
    dependent value the form emptied because its parent changed is left for the rules to clear,
    so the timeline says why it went."""
    by_name = {f.name: f for f in defs}
    requested: dict[str, Any] = {}
    for f in defs:
        if not field_rules.may_edit(user, f, contract=contract, opening=opening):
            continue
        sent = _posted(data, f.name, f)
        if sent is None or sent == input_value(f, current.get(f.name)):
            continue
        if f.type == "bool" and sent == "false" and current.get(f.name) is None:
            continue  # an unset yes/no drawn unticked and left so is no answer
        requested[f.name] = sent if sent not in ("", []) else None
    after = {**current, **requested}
    for name, value in list(requested.items()):
        f = by_name[name]
        if value is not None or field_rules.is_empty(current.get(name)) or not f.depends_on:
            continue
        rest = {**after, name: current.get(name)}
        if not field_rules.applies(f, rest, by_name) or any(
            v not in (field_rules.allowed_options(f, rest, by_name) or [v])
            for v in (current[name] if isinstance(current[name], list) else [current[name]])
        ):
            del requested[name]
    return requested


def fields_draft(data: Mapping[str, Any]) -> dict[str, Any]:
    draft: dict[str, Any] = {"fields": "1"}
    for key, value in data.items():
        if key.startswith("field."):
            values = value if isinstance(value, list) else [value]
            texts = [v.strip() for v in values if isinstance(v, str)]
            draft[key] = [t for t in texts if t] if len(texts) > 1 else (texts[-1] if texts else "")
    return draft
