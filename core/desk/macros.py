"""Macros: one click applies a reply, a status, an assignment and field values to a ticket.

Owned like canned replies (``core.desk.replies``): personal (``owner_id``) or the desk's,
shared with roles and managed by admins and coordinators; staff only.

What a macro holds (every part optional, at least one):

- ``reply``: a text with the placeholders of canned replies, sent as a public comment
  (``reply_public``) or kept as an internal note, through ``core.tickets.services.add_comment``;
- ``status``: a status name, set through ``change_status`` (so the contract must have it and
  the user must be allowed to set it);
- ``assignee``: ``"me"``, ``"none"`` or a staff member's e-mail, through ``assign`` (a
  technician without the right to assign who applies a "me" macro to an unassigned ticket of
  their queue takes it, ``core.tickets.queue.take_ticket``);
- ``custom_fields``: ``{name: value}`` set through ``set_fields`` (types, rights and
  dependencies checked by ``core.tickets.fields``).

Applying (:func:`apply_macro`) runs the parts in this order: fields, assignment, reply,
status (fields first, so a status that closes the ticket sees them filled; the reply before
the status, so "reply and wait for the client" pauses after the reply). It never commits:
the caller's transaction holds all of it, and a part refused raises :class:`MacroRefused`
naming the macro, the part and the reason, so the caller rolls everything back.

Checked when saved: the name (unique per owner), the reply's placeholders, that some
contract (or the default set) has a status of that name, that the assignee is "me", "none"
or an active staff member, and that the fields exist. Whether a status or value fits a given
ticket is known only when applying.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.access.permissions import can
from core.clock import utcnow
from core.contracts.models import CustomField, Status
from core.desk import replies
from core.desk.models import Macro
from core.directory.models import User
from core.directory.services import staff_user
from core.errors import N_, Forbidden, InputError, NotFound, Phrase
from core.tickets import services
from core.tickets.models import Ticket, TicketEvent

MAX_NAME = 100
MAX_PER_OWNER = 100
ASSIGNEE_WORDS = ("me", "none")


class MacroRefused(InputError):
    """A part of a macro was refused; nothing of the macro is kept. The status is the part's."""

    def __init__(self, macro: Macro, part: str, exc: InputError) -> None:
        super().__init__(
            N_("macro %(macro)r was not applied (%(part)s): %(reason)s"),
            macro=macro.name,
            part=Phrase(part),
            reason=Phrase(exc.template or str(exc), exc.params) if exc.template else str(exc),
        )
        self.status_code = exc.status_code
        self.cause = exc


# The names of the parts, for the sentence above.
PART_REPLY = N_("the reply")
PART_STATUS = N_("the status")
PART_ASSIGNEE = N_("the assignment")
PART_FIELDS = N_("the fields")


@dataclass
class Applied:
    """What a macro did: the events written (the last one to jump to)."""

    events: list[TicketEvent] = field(default_factory=list)

    @property
    def last(self) -> TicketEvent | None:
        return self.events[-1] if self.events else None


# --- Listing ---------------------------------------------------------------------------------


def usable_macros(session: Session, user: User) -> list[Macro]:
    """The user's own macros, then the desk's shared with them, by position and name."""
    if not replies.may_use(user) or user.id is None:
        return []
    rows = session.scalars(
        select(Macro)
        .where(or_(Macro.owner_id == user.id, Macro.owner_id.is_(None)))
        .order_by(Macro.owner_id.is_(None), Macro.position, Macro.name, Macro.id)
    )
    return [m for m in rows if m.owner_id == user.id or replies.shared_with(m.roles, user)]


def managed_macros(session: Session, user: User) -> list[Macro]:
    if not replies.may_use(user):
        return []
    clause = Macro.owner_id == user.id
    if replies.may_share(user):
        clause = or_(clause, Macro.owner_id.is_(None))
    return list(
        session.scalars(
            select(Macro)
            .where(clause)
            .order_by(Macro.owner_id.is_(None), Macro.position, Macro.name, Macro.id)
        )
    )


def get_macro(session: Session, user: User, macro_id: int) -> Macro:
    """A macro this user may use or manage (else not found)."""
    macro = session.get(Macro, macro_id) if 1 <= macro_id <= replies.MAX_ID else None
    if macro is None or not (
        replies.may_manage(user, macro.owner_id)
        or (macro.owner_id is None and replies.shared_with(macro.roles, user))
    ):
        raise NotFound(N_("there is no macro %(id)s"), id=macro_id)
    return macro


def _managed(session: Session, user: User, macro_id: int) -> Macro:
    macro = get_macro(session, user, macro_id)
    if not replies.may_manage(user, macro.owner_id):
        raise Forbidden(N_("you may not change the shared macro %(name)r"), name=macro.name)
    return macro


def status_names(session: Session) -> list[str]:
    """Every status name some contract (or the default set) has, for the macro form."""
    services.ensure_default_statuses(session)
    names: dict[str, str] = {}
    for name in session.scalars(select(Status.name).order_by(Status.position, Status.name)):
        names.setdefault(name.casefold(), name)
    return list(names.values())


def field_names(session: Session) -> list[str]:
    return list(dict.fromkeys(session.scalars(select(CustomField.name).order_by(CustomField.name))))


def fields_from_text(session: Session, text: str) -> dict[str, Any]:
    """The console's "one per line: name = value" field values as a dict (a multiselect's
    values separated by commas); 400 for a line without "="."""
    types = {
        name: kind for name, kind in session.execute(select(CustomField.name, CustomField.type))
    }
    values: dict[str, Any] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if "=" not in line:
            raise InputError(N_("write each field value as name = value, not %(line)r"), line=line)
        name, value = (part.strip() for part in line.split("=", 1))
        values[name] = (
            [v.strip() for v in value.split(",") if v.strip()]
            if types.get(name) == "multiselect"
            else value
        )
    return values


def fields_as_text(values: Mapping[str, Any] | None) -> str:
    return "\n".join(
        f"{k} = {', '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in (values or {}).items()
    )


# --- Saving ----------------------------------------------------------------------------------


@dataclass
class MacroSpec:
    """What a macro form or API call gives."""

    name: str = ""
    reply: str = ""
    reply_public: bool = True
    status: str = ""
    assignee: str = ""
    custom_fields: Mapping[str, Any] = field(default_factory=dict)
    roles: Sequence[str] = ()


def _clean(session: Session, spec: MacroSpec) -> dict[str, Any]:
    name = " ".join(spec.name.split())
    if not name:
        raise InputError(N_("give the macro a name"))
    if len(name) > MAX_NAME:
        raise InputError(N_("a macro's name is at most %(n)d characters"), n=MAX_NAME)
    reply = spec.reply.replace("\r\n", "\n")
    if reply.strip():
        if len(reply) > replies.MAX_BODY:
            raise InputError(N_("a reply's text is at most %(n)d characters"), n=replies.MAX_BODY)
        replies.check_template(reply)
    status = spec.status.strip()
    if status:
        known = status_names(session)
        match = next((s for s in known if s.casefold() == status.casefold()), None)
        if match is None:
            raise InputError(
                N_("no contract has a status %(name)r; statuses: %(names)s"),
                name=status,
                names=", ".join(known),
            )
        status = match
    assignee = spec.assignee.strip()
    if assignee.lower() in ASSIGNEE_WORDS:
        assignee = assignee.lower()
    elif assignee:
        assignee = staff_user(session, assignee).email
    values: dict[str, Any] = {}
    known_fields = set(field_names(session))
    for key, value in (spec.custom_fields or {}).items():
        key = str(key).strip()
        if not key:
            continue
        if key not in known_fields:
            raise InputError(
                N_("there is no custom field %(name)r; fields: %(names)s"),
                name=key,
                names=", ".join(sorted(known_fields)) or "—",
            )
        values[key] = value
    if not (reply.strip() or status or assignee or values):
        raise InputError(N_("a macro needs a reply, a status, an assignment or a field value"))
    return {
        "name": name,
        "reply": reply if reply.strip() else None,
        "reply_public": bool(spec.reply_public),
        "status": status or None,
        "assignee": assignee or None,
        "custom_fields": values,
    }


def _check_unique(
    session: Session, owner_id: int | None, name: str, besides: int | None = None
) -> None:
    owner = Macro.owner_id.is_(None) if owner_id is None else Macro.owner_id == owner_id
    clash = session.scalar(
        select(Macro.id).where(
            owner, func.lower(Macro.name) == name.lower(), Macro.id != (besides or -1)
        )
    )
    if clash is not None:
        raise InputError(N_("there is already a macro named %(name)r"), name=name)


def create_macro(session: Session, user: User, spec: MacroSpec, *, shared: bool = False) -> Macro:
    if not replies.may_use(user):
        raise Forbidden(N_("canned replies and macros are for staff"))
    if shared and not replies.may_share(user):
        raise Forbidden(N_("only administrators and coordinators share replies and macros"))
    owner_id = None if shared else user.id
    values = _clean(session, spec)
    if owner_id is not None:
        count = session.scalar(select(func.count(Macro.id)).where(Macro.owner_id == owner_id))
        if (count or 0) >= MAX_PER_OWNER:
            raise InputError(N_("you have %(n)d macros already; delete one first"), n=MAX_PER_OWNER)
    _check_unique(session, owner_id, values["name"])
    now = utcnow()
    macro = Macro(
        owner_id=owner_id,
        roles=replies.clean_roles(session, spec.roles) if owner_id is None else [],
        position=0,
        created_at=now,
        updated_at=now,
        **values,
    )
    session.add(macro)
    session.flush()
    return macro


def update_macro(session: Session, user: User, macro_id: int, spec: MacroSpec) -> Macro:
    macro = _managed(session, user, macro_id)
    values = _clean(session, spec)
    _check_unique(session, macro.owner_id, values["name"], besides=macro.id)
    for key, value in values.items():
        setattr(macro, key, value)
    if macro.owner_id is None:
        macro.roles = replies.clean_roles(session, spec.roles)
    macro.updated_at = utcnow()
    session.flush()
    return macro


def delete_macro(session: Session, user: User, macro_id: int) -> str:
    macro = _managed(session, user, macro_id)
    name = macro.name
    session.delete(macro)
    session.flush()
    return name


# --- Applying --------------------------------------------------------------------------------


def _assign(session: Session, ticket: Ticket, user: User, assignee: str) -> TicketEvent | None:
    from core.tickets.queue import take_ticket

    if assignee == "me" and not can(user, "assign", ticket) and ticket.assignee_id is None:
        return take_ticket(session, user, ticket)
    target = None
    if assignee == "me":
        target = user
    elif assignee != "none":
        target = staff_user(session, assignee)
    return services.assign(
        session, ticket, actor=user, assignee=target, subcontractor=ticket.subcontractor
    )


def apply_macro(session: Session, user: User, ticket: Ticket, macro_id: int) -> Applied:
    """Apply the macro to the ticket as ``user`` may, all or nothing (see the module's
    docstring); the caller commits, or rolls back on :class:`MacroRefused`."""
    if not replies.may_use(user):
        raise Forbidden(N_("canned replies and macros are for staff"))
    macro = get_macro(session, user, macro_id)
    done = Applied()

    def step(part: str, fn: Any) -> None:
        try:
            event = fn()
        except InputError as exc:
            raise MacroRefused(macro, part, exc) from exc
        if event is not None:
            done.events.append(event)

    if macro.custom_fields:
        step(
            PART_FIELDS,
            lambda: services.set_fields(
                session, ticket, actor=user, custom_fields=dict(macro.custom_fields)
            ),
        )
    if macro.assignee:
        step(PART_ASSIGNEE, lambda: _assign(session, ticket, user, str(macro.assignee)))
    if macro.reply and macro.reply.strip():
        step(
            PART_REPLY,
            lambda: services.add_comment(
                session,
                ticket,
                author=user,
                body=replies.render(str(macro.reply), ticket, user),
                public=bool(macro.reply_public),
            ),
        )
    if macro.status:
        step(
            PART_STATUS,
            lambda: services.change_status(session, ticket, str(macro.status), actor=user),
        )
    return done
