"""The shape of a configuration file, as pydantic models that refuse unknown keys.

This module checks shape only: which keys exist, their types, allowed words. Whether a name
refers to something that exists, whether a duration fits the calendar and the other rules
that need the whole file (or the database) live in ``checks``. Pydantic's errors are turned
into ``file:line: key.path: sentence`` problems here, with the allowed keys named for a typo.

A file changes exactly the keys it writes (``apply``): every model records which keys were
given (pydantic's ``model_fields_set``; ``Section.stated``), and a key written as ``null``
stands for its default, so ``calendar: null`` resets a contract to 24/7. That is why nearly
every type here admits None. Keys an object cannot do without (a calendar's ``hours``, a
contract's ``client``, a status's ``category``, a user's ``role``) may be left out of an entry
for an object that exists already; ``checks`` requires them of a new one. Lists of things
tickets refer to (contacts, ticket types, statuses, custom fields) refuse ``null``: apply
never deletes them.
"""

from __future__ import annotations

import types
import typing
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from babel.numbers import list_currencies
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.configuration.errors import Problem, format_path, template_of
from core.configuration.loader import Lines
from core.errors import N_, Invalid, localize

Category = Literal["new", "open", "paused", "closed"]
FieldType = Literal["text", "textarea", "number", "date", "bool", "select", "multiselect"]
Moment = Literal["open", "close"]
# The languages a label or help text may be written in (web.i18n.LANGUAGES).
TEXT_LANGUAGES = ("pl", "en")
Source = Literal["web", "email", "phone", "api"]


class Section(BaseModel):
    # Numbers are accepted where text is expected (a product called 3000, a password 1234):
    # YAML reads them as numbers, and refusing them would only puzzle the operator.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    def states(self, key: str) -> bool:
        """Whether the file writes this key (``null`` included)."""
        return key in self.model_fields_set

    def value(self, key: str) -> Any:
        """The key's value, a ``null`` standing for the key's default."""
        value = getattr(self, key)
        if value is None:
            return type(self).model_fields[key].get_default(call_default_factory=True)
        return value

    def stated(self, *keys: str) -> dict[str, Any]:
        """The keys among ``keys`` that the file writes, with their values: what an update of
        an existing object changes (a key left out keeps its stored value)."""
        return {key: self.value(key) for key in keys if key in self.model_fields_set}

    def full(self, *keys: str) -> dict[str, Any]:
        """Every key among ``keys``, the ones left out at their defaults: a new object."""
        return {key: self.value(key) for key in keys}


def _no_null_list(value: Any) -> Any:
    if value is None:
        raise Invalid(
            N_(
                "a list of things tickets refer to cannot be emptied with null; apply never "
                "deletes them (leave the key out to keep it as it is)"
            )
        )
    return value


class Removal(Section):
    """``remove:`` on an entry: values to take out of its lists, by name. Removing what is
    not there changes nothing, as applying twice must."""


class CalendarSpec(Section):
    name: str
    description: str | None = None  # a note for the reader, as core.sla.calendar allows; not stored
    timezone: str | None = "Europe/Warsaw"
    holidays: str | None = None
    extra_holidays: list[date] | None = []
    # "24/7" or {weekday: [intervals]}; core.sla.calendar checks the details, naming the weekday.
    # Required for a new calendar (checks): None here means "not given" or "null".
    hours: Any = None
    day_length: Any = None

    @field_validator("holidays", mode="before")
    @classmethod
    def _norway(cls, value: Any) -> Any:
        if value is False:  # YAML 1.1 reads a bare NO (Norway) as false
            raise Invalid(
                N_('write the country code in quotes ("NO"): YAML reads a bare NO as false')
            )
        return value


PERSON_KEYS = ("name", "language", "manager", "active")


class ContactSpec(Section):
    email: str
    name: str | None = None
    language: str | None = "pl"
    manager: bool | None = False
    password: str | None = None
    active: bool | None = True


class ClientRemoval(Removal):
    domains: list[str] = []


class ClientSpec(Section):
    name: str
    language: str | None = "pl"
    domains: list[str] | None = []
    contacts: list[ContactSpec] = []
    remove: ClientRemoval | None = None

    @field_validator("contacts", mode="before")
    @classmethod
    def _contacts(cls, value: Any) -> Any:
        return _no_null_list(value)


class ProductSpec(Section):
    name: str


TICKET_TYPE_KEYS = ("default", "reaction", "resolution", "subject_keywords")


class ChecklistSpec(Section):
    """A ticket type's checklist, copied onto each new ticket of the type."""

    items: list[str]
    required_to_close: bool = False

    def stored(self) -> dict[str, Any]:
        """The value of the ``checklist`` column."""
        return {"items": list(self.items), "required_to_close": self.required_to_close}


class TicketTypeSpec(Section):
    name: str
    default: bool | None = False
    reaction: str | None = None
    resolution: str | None = None
    subject_keywords: list[str] | None = []
    # Replaced as a whole when stated; null removes it.
    checklist: ChecklistSpec | None = None


STATUS_KEYS = (
    "category",
    "visible_to_client",
    "visible_to_subcontractor",
    "client_can_set",
    "resume_on_client_reply",
)


class StatusSpec(Section):
    name: str
    category: Category | None = None  # required for a new status (checks)
    visible_to_client: bool | None = True
    visible_to_subcontractor: bool | None = True
    client_can_set: bool | None = False
    # None: the default rule (Status.resumes_on_client_reply): paused and visible to clients.
    resume_on_client_reply: bool | None = None


FIELD_KEYS = (
    "label",
    "type",
    "required",
    "visible_to_client",
    "visible_to_subcontractor",
    "help",
    "edit",
    "min",
    "max",
    "depends_on",
)


def _per_language(value: Any) -> Any:
    """A text written once, or once per language (``{pl: ..., en: ...}``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, dict):
        raise Invalid(
            N_("write one text, or one per language ({pl: ..., en: ...}), not %(value)r"),
            value=value,
        )
    if not value:
        raise Invalid(N_("name at least one language (pl, en), or write one text"))
    out: dict[str, str] = {}
    for language, text in value.items():
        if language not in TEXT_LANGUAGES:
            raise Invalid(
                N_("unknown language %(language)r; write the text for %(languages)s"),
                language=language,
                languages=", ".join(TEXT_LANGUAGES),
            )
        if isinstance(text, int | float) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str) or not text.strip():
            raise Invalid(
                N_("the %(language)s text should be a non-empty text, not %(text)r"),
                language=language,
                text=text,
            )
        out[language] = text
    return out


class DependsOnSpec(Section):
    """The parent field this one follows: ``options`` narrows a select field's options by the
    parent's value; ``when`` shows the field only while the parent has one of the values."""

    field: str
    options: dict[str, list[str]] | None = None
    when: list[str | bool] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> DependsOnSpec:
        given = [k for k in ("options", "when") if getattr(self, k) is not None]
        if len(given) == 2:
            raise Invalid(
                N_(
                    "depends_on needs exactly one of options (allowed options per parent value) "
                    "or when (the parent values that show the field) (this one has both)"
                )
            )
        if not given:
            raise Invalid(
                N_(
                    "depends_on needs exactly one of options (allowed options per parent value) "
                    "or when (the parent values that show the field)"
                )
            )
        return self

    def stored(self) -> dict[str, Any]:
        """The value of the ``depends_on`` column."""
        if self.options is not None:
            return {"field": self.field, "options": {k: list(v) for k, v in self.options.items()}}
        return {"field": self.field, "when": list(self.when or [])}


class CustomFieldRemoval(Removal):
    options: list[str] = []


class CustomFieldSpec(Section):
    name: str
    # One text, or one per language: {pl: ..., en: ...} (``_per_language``).
    label: str | dict[str, str] | None = None
    type: FieldType | None = "text"
    options: list[str] | None = []
    required: bool | None = False
    visible_to_client: bool | None = True
    # None: as visible_to_client.
    visible_to_subcontractor: bool | None = None
    help: str | dict[str, str] | None = None
    # The place in the form (lower first); a new field left without it: 10 x its index.
    order: int | None = None
    # The roles that may set it; None: admin, coordinator, technician (checks the names).
    edit: list[str] | None = None
    min: float | None = None
    max: float | None = None
    depends_on: DependsOnSpec | None = None
    remove: CustomFieldRemoval | None = None

    @field_validator("label", "help", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return _per_language(value)


CONTRACT_KEYS = ("name", "key", "valid_from", "valid_to", "warning_threshold")
# The work log's keys (core.worklog): they price and show work, and move no SLA deadline.
WORKLOG_KEYS = ("worklog_billable", "hourly_rate", "currency", "worklog_visible_to_client")
WORK_TYPE_KEYS = ("label", "rate", "billable")
# A rate per hour fits the integer column in minor units with room to spare.
MAX_RATE = Decimal(1_000_000)


def _money(value: Any) -> Any:
    """An amount per hour as written (150, 150.00, "150,50"): a Decimal with at most two
    decimal places, kept in minor units (hundredths) by apply. YAML reads 150.10 as a float;
    its shortest text is the number the operator wrote."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid(N_("write an amount like 150 or 150.00, not %(value)r"), value=value)
    try:
        amount = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation:
        raise Invalid(
            N_("write an amount like 150 or 150.00, not %(value)r"), value=value
        ) from None
    if not amount.is_finite():
        raise Invalid(N_("write an amount like 150 or 150.00, not %(value)r"), value=value)
    if amount < 0:
        raise Invalid(N_("an amount cannot be negative (%(value)s)"), value=value)
    if amount != amount.quantize(Decimal("0.01")):
        raise Invalid(
            N_("an amount has at most two decimal places (grosze, cents), not %(value)s"),
            value=value,
        )
    if amount > MAX_RATE:
        raise Invalid(
            N_("%(value)s is more than %(limit)s per hour; check the amount"),
            value=value,
            limit=MAX_RATE,
        )
    return amount


def minor_units(amount: Decimal | None) -> int | None:
    """An amount as stored: whole hundredths (150.00 -> 15000)."""
    return None if amount is None else int(amount * 100)


def _currency(value: Any) -> Any:
    """An ISO 4217 code, as Babel knows them; written in any case, kept in capitals."""
    if value is None:
        return value
    code = str(value).strip().upper()
    if len(code) != 3 or code not in list_currencies():
        raise Invalid(
            N_("%(value)r is not an ISO 4217 currency code (write three letters, like PLN or EUR)"),
            value=value,
        )
    return code


class WorkTypeSpec(Section):
    """A kind of work the contract prices on its own (``core.worklog.models.WorkType``)."""

    name: str
    # One text, or one per language: {pl: ..., en: ...}; none: the name is shown.
    label: str | dict[str, str] | None = None
    # Per hour, in the contract's currency; None: the contract's hourly_rate.
    rate: Decimal | None = None
    # None: the contract's worklog_billable.
    billable: bool | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return _per_language(value)

    @field_validator("rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        return _money(value)


class ContractRemoval(Removal):
    products: list[str] = []
    required_fields: list[str] = []
    mailboxes: list[str] = []
    coordinators: list[str] = []
    technicians: list[str] = []


class ContractSpec(Section):
    code: str
    client: str | None = None  # required for a new contract (checks)
    name: str | None = None
    key: bool | None = False
    calendar: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    products: list[str] | None = []
    mailboxes: list[str] | None = []
    warning_threshold: float | None = Field(0.8, ge=0, le=1)
    # Told about SLA warnings and breaches; none named means every coordinator.
    coordinators: list[str] | None = []
    # Serve its tickets: its unassigned ones are their queue and they may take them.
    technicians: list[str] | None = []
    ticket_types: list[TicketTypeSpec] = []
    statuses: list[StatusSpec] = []
    custom_fields: list[CustomFieldSpec] = []
    # When a field must be filled on this contract's tickets; merged by name: a name set to
    # null (or under remove:) is taken out, ``required_fields: null`` empties it.
    required_fields: dict[str, Moment | None] | None = {}
    # The work log: whether new entries are billable unless the work type or the person says
    # otherwise, the rate per hour, its currency, whether the client sees billable entries.
    worklog_billable: bool | None = True
    hourly_rate: Decimal | None = None
    currency: str | None = "PLN"
    worklog_visible_to_client: bool | None = False
    # Merged by name, ordered as listed; never deleted by apply (entries refer to them).
    work_types: list[WorkTypeSpec] = []
    remove: ContractRemoval | None = None

    @field_validator("ticket_types", "statuses", "custom_fields", "work_types", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _no_null_list(value)

    @field_validator("hourly_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        return _money(value)

    @field_validator("currency", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        return _currency(value)


class ImapSpec(Section):
    """Where the IMAP poller (``mailgw.imap``) fetches this mailbox's mail, every
    ``poll_seconds``. The password is never written in the file: ``password_env`` names the
    environment variable that holds it. ``host`` and ``user`` are required unless the mailbox
    already has them (checks)."""

    host: str | None = None
    port: int | None = 993
    tls: bool | None = True
    user: str | None = None
    password_env: str | None = None
    folder: str | None = "INBOX"
    processed_folder: str | None = None
    poll_seconds: float | None = Field(None, gt=0)  # without IDLE; mailgw.imap's default: 60


class MailboxSpec(Section):
    address: str
    contract: str | None = None
    imap: ImapSpec | None = None


class SubcontractorRemoval(Removal):
    contracts: list[str] = []


class SubcontractorSpec(Section):
    name: str
    contracts: list[str] | None = []
    remove: SubcontractorRemoval | None = None


class UserSpec(Section):
    email: str
    # A built-in role or a custom role's name (``roles:``); required for a new user (checks).
    role: str | None = None
    name: str | None = None
    password: str | None = None
    client: str | None = None
    subcontractor: str | None = None
    language: str | None = "pl"
    manager: bool | None = False
    active: bool | None = True


class RoleSpec(Section):
    """A custom role: a base role plus public actions (``core.access.permissions.PUBLIC_ACTIONS``)
    granted and denied. ``grant`` and ``deny`` are the role's setting: replaced when stated."""

    name: str
    base: str | None = None  # required for a new role (checks)
    grant: list[str] | None = []
    deny: list[str] | None = []
    # One text, or one per language: {pl: ..., en: ...}; none: the name is shown.
    label: str | dict[str, str] | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return _per_language(value)


ROLE_KEYS = ("base", "grant", "deny")


_ACTIONS = ("comment", "status", "assign", "worklog")


class TimelineEntrySpec(Section):
    """One step in a seeded ticket's history: exactly one of comment, status, assign, worklog."""

    after: str
    by: str
    comment: str | None = None
    public: bool = True
    status: str | None = None
    note: str | None = None
    assign: str | None = None  # an e-mail, or null to take the ticket off a technician
    subcontractor: str | None = None
    worklog: int | None = Field(None, ge=1, le=24 * 60)

    @model_validator(mode="after")
    def _one_action(self) -> TimelineEntrySpec:
        given = [a for a in _ACTIONS if a in self.model_fields_set]
        if len(given) > 1:
            raise Invalid(
                N_(
                    "each timeline entry needs exactly one of comment, status, assign or "
                    "worklog (this one has %(given)s)"
                ),
                given=", ".join(given),
            )
        if not given:
            raise Invalid(
                N_("each timeline entry needs exactly one of comment, status, assign or worklog")
            )
        if "public" in self.model_fields_set and given != ["comment"]:
            raise Invalid(N_("'public' goes with a comment"))
        if "subcontractor" in self.model_fields_set and given != ["assign"]:
            raise Invalid(N_("'subcontractor' goes with assign (use assign: null to hand over)"))
        if self.note is not None and given[0] not in ("status", "worklog"):
            raise Invalid(N_("'note' goes with a status change or a work log"))
        return self

    @property
    def action(self) -> str:
        return next(a for a in _ACTIONS if a in self.model_fields_set)


class TicketSpec(Section):
    """A demo or migrated ticket, created once: an existing ``ref`` is skipped."""

    ref: str
    subject: str
    requester: str
    requester_name: str | None = None
    contract: str | None = None
    type: str | None = None
    product: str | None = None
    assignee: str | None = None
    subcontractor: str | None = None
    by: str | None = None
    source: Source = "web"
    created: Any = None  # "3d", "2h40m" before now, or an ISO 8601 timestamp; None is now
    body: str | None = None
    custom_fields: dict[str, Any] = {}
    timeline: list[TimelineEntrySpec] = []


class ConfigDocument(Section):
    calendars: list[CalendarSpec] = []
    clients: list[ClientSpec] = []
    products: list[ProductSpec] = []
    contracts: list[ContractSpec] = []
    statuses: list[StatusSpec] = []
    custom_fields: list[CustomFieldSpec] = []
    mailboxes: list[MailboxSpec] = []
    subcontractors: list[SubcontractorSpec] = []
    roles: list[RoleSpec] = []
    users: list[UserSpec] = []
    tickets: list[TicketSpec] = []


def parse_document(
    data: dict[str, Any], lines: Lines
) -> tuple[ConfigDocument | None, list[Problem]]:
    """Validate the shape; returns the document, or None and every shape problem found."""
    # A section written but left empty (``users:`` with nothing under it) means no entries.
    data = {
        k: ([] if v is None and k in ConfigDocument.model_fields else v) for k, v in data.items()
    }
    try:
        return ConfigDocument.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            if error["type"] == "missing":
                problems.append(
                    lines.problem(loc[:-1], N_("the key %(key)r is missing"), key=loc[-1])
                )
                continue
            explained = _explain(error, loc)
            if isinstance(explained, str):
                # Pydantic's own sentence: English in every language (no template).
                line, path = lines.line_for(loc), format_path(loc)
                problems.append(Problem(line, lines.source, path, explained))
            else:
                template, params = explained
                problems.append(lines.problem(loc, template, **params))
        return None, problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Pydantic's "Input should be ..." sentences said in full, by error type: ``value`` is the
# value refused (shortened), ``limit`` the bound a number broke.
_SHOULD_BE = {
    "string_type": N_("%(value)s should be a valid string"),
    "bool_type": N_("%(value)s should be a valid boolean"),
    "bool_parsing": N_("%(value)s should be a valid boolean, unable to interpret input"),
    "int_type": N_("%(value)s should be a valid integer"),
    "int_parsing": N_("%(value)s should be a valid integer, unable to parse string as an integer"),
    "int_from_float": N_(
        "%(value)s should be a valid integer, got a number with a fractional part"
    ),
    "float_type": N_("%(value)s should be a valid number"),
    "float_parsing": N_("%(value)s should be a valid number, unable to parse string as a number"),
    "greater_than": N_("%(value)s should be greater than %(limit)s"),
    "greater_than_equal": N_("%(value)s should be greater than or equal to %(limit)s"),
    "less_than": N_("%(value)s should be less than %(limit)s"),
    "less_than_equal": N_("%(value)s should be less than or equal to %(limit)s"),
}


def _explain(error: Any, loc: tuple[str | int, ...]) -> tuple[str, dict[str, Any]] | str:
    """Pydantic's error as a template and its values; pydantic's own English sentence (a
    plain ``str``, no template) for a kind of error not said here."""
    kind, value, message = error["type"], error.get("input"), str(error["msg"])
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc[:-1]))
        template = N_("unknown key %(key)r; allowed keys: %(allowed)s")
        if loc[-1] == "password" and "password_env" in allowed:
            template = N_(
                "unknown key %(key)r; allowed keys: %(allowed)s; keep the password out of the "
                "file and name its variable in password_env"
            )
        if len(loc) > 1 and loc[-2] == "remove":
            template = N_(
                "unknown key %(key)r; allowed keys: %(allowed)s; apply never removes contacts, "
                "ticket types, statuses or custom fields"
            )
        return template, {"key": loc[-1], "allowed": allowed}
    if kind == "literal_error":
        expected = str(error["ctx"]["expected"])
        choices, either, last = expected.rpartition(" or ")
        if either:
            template = N_("%(value)s is not allowed; use %(choices)s or %(last)s")
            return template, {"value": _short(value), "choices": choices, "last": last}
        template = N_("%(value)s is not allowed; use %(expected)s")
        return template, {"value": _short(value), "expected": expected}
    if kind == "value_error":
        template, params = template_of(error.get("ctx", {}).get("error"))
        if template:
            return template, dict(params)
        return message.removeprefix("Value error, ")
    if kind in ("list_type", "tuple_type"):
        template = N_("this should be a list ([a, b] or one '- item' per line), not %(value)s")
        return template, {"value": _short(value)}
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        template = N_("this should be a mapping of keys and values, not %(value)s")
        return template, {"value": _short(value)}
    if kind.startswith("date_"):
        return N_("%(value)s is not a date; write it as YYYY-MM-DD"), {"value": _short(value)}
    if message.startswith("Input should be"):
        english = f"{_short(value)} should be" + message.removeprefix("Input should be")
        template = _SHOULD_BE.get(kind, "")
        params = {"value": _short(value)}
        if "%(limit)s" in template:
            params["limit"] = message.rpartition(" ")[2]
        # Templated only when it says exactly what pydantic said (another pydantic may not).
        if template and localize(template, params) == english:
            return template, params
        return english
    return message


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys of the model found at ``loc``, by walking the annotations from the root."""
    model: type[BaseModel] | None = ConfigDocument
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        model = _inner_model(info.annotation) if info is not None else None
    return list(model.model_fields) if model is not None else []


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None
