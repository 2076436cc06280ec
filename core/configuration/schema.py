"""The shape of a configuration file, as pydantic models that refuse unknown keys.

This module checks shape only: which keys exist, their types, allowed words. Whether a name
refers to something that exists, whether a duration fits the calendar and the other rules
that need the whole file (or the database) live in ``checks``. Pydantic's errors are turned
into ``file:line: key.path: sentence`` problems here, with the allowed keys named for a typo.

Fields of people (contacts and users) default to ``None``, meaning "not given": on an
existing user such a field is left as it is (see ``apply``).
"""

from __future__ import annotations

import types
import typing
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.configuration.errors import Problem
from core.configuration.loader import Lines

Category = Literal["new", "open", "paused", "closed"]
FieldType = Literal["text", "number", "date", "bool", "select"]
Source = Literal["web", "email", "phone", "api"]


class Section(BaseModel):
    # Numbers are accepted where text is expected (a product called 3000, a password 1234):
    # YAML reads them as numbers, and refusing them would only puzzle the operator.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class CalendarSpec(Section):
    name: str
    description: str | None = None  # a note for the reader, as core.sla.calendar allows; not stored
    timezone: str = "Europe/Warsaw"
    holidays: str | None = None
    extra_holidays: list[date] = []
    # "24/7" or {weekday: [intervals]}; core.sla.calendar checks the details, naming the weekday.
    hours: Any
    day_length: Any = None

    @field_validator("holidays", mode="before")
    @classmethod
    def _norway(cls, value: Any) -> Any:
        if value is False:  # YAML 1.1 reads a bare NO (Norway) as false
            raise ValueError(
                'write the country code in quotes ("NO"): YAML reads a bare NO as false'
            )
        return value


class ContactSpec(Section):
    email: str
    name: str | None = None
    language: str | None = None
    manager: bool | None = None
    password: str | None = None
    active: bool | None = None


class ClientSpec(Section):
    name: str
    language: str = "pl"
    domains: list[str] = []
    contacts: list[ContactSpec] = []


class ProductSpec(Section):
    name: str


class TicketTypeSpec(Section):
    name: str
    default: bool = False
    reaction: str | None = None
    resolution: str | None = None
    subject_keywords: list[str] = []


class StatusSpec(Section):
    name: str
    category: Category
    visible_to_client: bool = True
    visible_to_subcontractor: bool = True
    client_can_set: bool = False


class CustomFieldSpec(Section):
    name: str
    label: str | None = None
    type: FieldType = "text"
    options: list[str] = []
    required: bool = False
    visible_to_client: bool = True


class ContractSpec(Section):
    code: str
    client: str
    name: str | None = None
    key: bool = False
    calendar: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    products: list[str] = []
    mailboxes: list[str] = []
    warning_threshold: float = Field(0.8, ge=0, le=1)
    # Told about SLA warnings and breaches; none named means every coordinator.
    coordinators: list[str] = []
    ticket_types: list[TicketTypeSpec] = []
    statuses: list[StatusSpec] = []
    custom_fields: list[CustomFieldSpec] = []


class ImapSpec(Section):
    """Where the IMAP poller (``mailgw.imap``) fetches this mailbox's mail, every
    ``poll_seconds``. The password is never written in the file: ``password_env`` names the
    environment variable that holds it."""

    host: str
    port: int = 993
    tls: bool = True
    user: str
    password_env: str | None = None
    folder: str = "INBOX"
    processed_folder: str | None = None
    poll_seconds: float | None = Field(None, gt=0)  # without IDLE; mailgw.imap's default: 60


class MailboxSpec(Section):
    address: str
    contract: str | None = None
    imap: ImapSpec | None = None


class SubcontractorSpec(Section):
    name: str
    contracts: list[str] = []


class UserSpec(Section):
    email: str
    role: str
    name: str | None = None
    password: str | None = None
    client: str | None = None
    subcontractor: str | None = None
    language: str | None = None
    manager: bool | None = None
    active: bool | None = None


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
        if len(given) != 1:
            raise ValueError(
                "each timeline entry needs exactly one of comment, status, assign or worklog"
                + (f" (this one has {', '.join(given)})" if given else "")
            )
        if "public" in self.model_fields_set and given != ["comment"]:
            raise ValueError("'public' goes with a comment")
        if "subcontractor" in self.model_fields_set and given != ["assign"]:
            raise ValueError("'subcontractor' goes with assign (use assign: null to hand over)")
        if self.note is not None and given[0] not in ("status", "worklog"):
            raise ValueError("'note' goes with a status change or a work log")
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
                problems.append(lines.problem(loc[:-1], f"the key {loc[-1]!r} is missing"))
            else:
                problems.append(lines.problem(loc, _explain(error, loc)))
        return None, problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _explain(error: Any, loc: tuple[str | int, ...]) -> str:
    kind, value, message = error["type"], error.get("input"), str(error["msg"])
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc[:-1]))
        hint = ""
        if loc[-1] == "password" and "password_env" in allowed:
            hint = "; keep the password out of the file and name its variable in password_env"
        return f"unknown key {loc[-1]!r}; allowed keys: {allowed}{hint}"
    if kind == "literal_error":
        return f"{_short(value)} is not allowed; use {error['ctx']['expected']}"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind in ("list_type", "tuple_type"):
        return f"this should be a list ([a, b] or one '- item' per line), not {_short(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"this should be a mapping of keys and values, not {_short(value)}"
    if kind.startswith("date_"):
        return f"{_short(value)} is not a date; write it as YYYY-MM-DD"
    if message.startswith("Input should be"):
        return f"{_short(value)} should be" + message.removeprefix("Input should be")
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
