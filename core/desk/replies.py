"""Canned replies (text modules): saved texts with placeholders, inserted into a reply.

Who has which (Pulpit has no teams, so "per team" is "shared by the desk with roles"):

- a personal reply belongs to its author (``owner_id``); only they see, use and change it;
- a shared reply belongs to the desk (``owner_id`` NULL) and is offered to the staff whose
  role or custom role is among its ``roles`` (an empty list: every staff member). Admins and
  coordinators manage shared replies and macros (:func:`may_share`): coordinators run the
  desk day to day, as Zammad's text-module editors or a Jira service project's admins do.

Only staff (admin, coordinator, technician) have canned replies: clients and subcontractors
never see them, in any door.

Placeholders (:data:`PLACEHOLDERS`): a fixed, documented set, ``{{ ticket.number }}``,
``{{ requester.name }}`` and so on, nothing else. A text is checked when it is saved
(:func:`check_template`): any other placeholder, a ``{% ... %}`` statement, a filter or a
syntax error is refused with a sentence naming it. Rendering (:func:`render`) runs Jinja's
``SandboxedEnvironment`` over a context of plain strings built for the ticket (never the
ticket's objects), so a text can reach no other attribute; a value the ticket lacks (no
contract) renders as an empty string.

Conflicts while writing (:func:`changed_since`): the reply form carries the id of the newest
event the page showed; the events after it that another person caused and this user may read
are what "changed while you were writing" lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from core.access.permissions import can, can_see_event
from core.clock import utcnow
from core.desk.models import CannedReply
from core.desk.roles import pick_roles
from core.directory.models import STAFF_ROLES, Role, User
from core.errors import N_, Forbidden, InputError, NotFound
from core.tickets.models import Ticket, TicketEvent
from core.tickets.search import fold

MAX_SHORTCUT = 64
MAX_TITLE = 200
MAX_BODY = 20_000
MAX_PER_OWNER = 200
BASE_ROLES = ("admin", "coordinator", "technician")
MAX_ID = 2**31 - 1  # ids are PostgreSQL integers: a larger one would overflow the query

#: The placeholders a canned reply or a macro's reply may use, with what each is.
PLACEHOLDERS: dict[str, str] = {
    "ticket.number": "the ticket's number, without #",
    "ticket.subject": "the ticket's subject",
    "ticket.status": "the ticket's status",
    "ticket.type": "the ticket's type",
    "requester.name": "the requester's name (their e-mail address when no name is known)",
    "requester.first_name": "the first word of the requester's name",
    "requester.email": "the requester's e-mail address",
    "client.name": "the ticket's client",
    "contract.code": "the contract's code",
    "contract.name": "the contract's name",
    "assignee.name": "the ticket's assignee",
    "me.name": "the person inserting the reply",
    "me.email": "the e-mail address of the person inserting the reply",
}

_env = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


# --- Who may do what -------------------------------------------------------------------------


def may_use(user: User) -> bool:
    """Canned replies and macros are staff tools."""
    return user.role in STAFF_ROLES and user.active is not False


def may_share(user: User) -> bool:
    """Admins and coordinators manage the desk's shared replies and macros."""
    return may_use(user) and (can(user, "configure") or user.role == "coordinator")


def role_names(user: User) -> set[str]:
    names = {user.role}
    custom = getattr(user, "custom_role", None)
    if custom is not None:
        names.add(custom.name)
    return names


def shared_with(roles: Sequence[Any] | None, user: User) -> bool:
    """Is a desk item with these ``roles`` offered to ``user`` (none: every staff member)?"""
    if not may_use(user):
        return False
    wanted = {str(r) for r in roles or []}
    return not wanted or bool(role_names(user) & wanted)


def known_roles(session: Session) -> list[str]:
    """The roles a shared item may name: the staff base roles, then the custom roles on a
    staff base."""
    custom = session.scalars(
        select(Role.name).where(Role.base.in_(STAFF_ROLES)).order_by(Role.name)
    )
    return [*BASE_ROLES, *custom]


def clean_roles(session: Session, roles: Iterable[str]) -> list[str]:
    return pick_roles(
        roles, known_roles(session), N_("there is no staff role %(role)r; roles: %(known)s")
    )


# --- Placeholders ----------------------------------------------------------------------------


def _placeholder_name(node: nodes.Node) -> str | None:
    if (
        isinstance(node, nodes.Getattr)
        and isinstance(node.node, nodes.Name)
        and node.node.ctx == "load"
    ):
        return f"{node.node.name}.{node.attr}"
    return None


def check_template(text: str) -> str:
    """``text`` if every placeholder in it is one of :data:`PLACEHOLDERS`; else 400 with a
    sentence naming the first one that is not (or the syntax error)."""
    known = ", ".join("{{ " + name + " }}" for name in PLACEHOLDERS)
    try:
        tree = _env.parse(text)
    except TemplateSyntaxError as exc:
        raise InputError(
            N_("the text has a broken placeholder on line %(line)s (%(reason)s); use: %(known)s"),
            line=exc.lineno,
            reason=exc.message or "syntax error",
            known=known,
        ) from None
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            raise InputError(
                N_(
                    "a text may hold only placeholders such as {{ ticket.number }}, no %(statement)s"
                ),
                statement="{% … %}",
            )
        for part in node.nodes:
            if isinstance(part, nodes.TemplateData):
                continue
            name = _placeholder_name(part)
            if name is None or name not in PLACEHOLDERS:
                shown = name or _source_of(part)
                raise InputError(
                    N_("there is no placeholder {{ %(name)s }}; use: %(known)s"),
                    name=shown,
                    known=known,
                )
    return text


def _source_of(node: nodes.Node) -> str:
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Filter):
        inner = _placeholder_name(node.node) if node.node is not None else None
        return f"{inner or '…'}|{node.name}"
    return "…"


def placeholder_values(ticket: Ticket | None, me: User) -> dict[str, dict[str, str]]:
    """The context a text is rendered with: plain strings only."""
    values: dict[str, dict[str, str]] = {
        "ticket": {"number": "", "subject": "", "status": "", "type": ""},
        "requester": {"name": "", "first_name": "", "email": ""},
        "client": {"name": ""},
        "contract": {"code": "", "name": ""},
        "assignee": {"name": ""},
        "me": {"name": me.display, "email": me.email},
    }
    if ticket is None:
        return values
    values["ticket"] = {
        "number": str(ticket.number),
        "subject": ticket.subject or "",
        "status": ticket.status.name if ticket.status else "",
        "type": ticket.ticket_type.name if ticket.ticket_type else "",
    }
    requester = ticket.requester
    if requester is not None and not requester.is_unknown_sender:
        name = (requester.name or "").strip() or requester.email
        values["requester"] = {
            "name": name,
            "first_name": name.split()[0] if (requester.name or "").strip() else name,
            "email": requester.email,
        }
    if ticket.client is not None:
        values["client"] = {"name": ticket.client.name}
    if ticket.contract is not None:
        values["contract"] = {"code": ticket.contract.code, "name": ticket.contract.name or ""}
    if ticket.assignee is not None:
        values["assignee"] = {"name": ticket.assignee.display}
    return values


def render(text: str, ticket: Ticket | None, me: User) -> str:
    """``text`` with its placeholders filled from the ticket (and ``me``, the agent)."""
    if "{" not in text:
        return text
    check_template(text)
    return _env.from_string(text).render(placeholder_values(ticket, me))


# --- Canned replies --------------------------------------------------------------------------


def usable_replies(session: Session, user: User) -> list[CannedReply]:
    """The user's own replies, then the desk's shared with them, each by shortcut."""
    if not may_use(user) or user.id is None:
        return []
    rows = session.scalars(
        select(CannedReply)
        .where(or_(CannedReply.owner_id == user.id, CannedReply.owner_id.is_(None)))
        .order_by(CannedReply.owner_id.is_(None), CannedReply.shortcut, CannedReply.id)
    )
    return [r for r in rows if r.owner_id == user.id or shared_with(r.roles, user)]


def managed_replies(session: Session, user: User) -> list[CannedReply]:
    """The replies this user may change: their own and, for admins and coordinators, the
    desk's."""
    if not may_use(user):
        return []
    clause = CannedReply.owner_id == user.id
    if may_share(user):
        clause = or_(clause, CannedReply.owner_id.is_(None))
    return list(
        session.scalars(
            select(CannedReply)
            .where(clause)
            .options(selectinload(CannedReply.owner))
            .order_by(CannedReply.owner_id.is_(None), CannedReply.shortcut, CannedReply.id)
        )
    )


def matches(reply: CannedReply, query: str) -> bool:
    """Does the reply's shortcut or title contain ``query`` (case- and accent-insensitive)?"""
    q = fold(query.strip())
    return not q or q in fold(reply.shortcut) or q in fold(reply.title)


def replies_for_ticket(
    session: Session, user: User, ticket: Ticket, query: str = ""
) -> list[dict[str, Any]]:
    """What the reply box offers: each usable reply matching ``query``, rendered for the
    ticket. Shortcut matches come first."""
    found = [r for r in usable_replies(session, user) if matches(r, query)]
    q = fold(query.strip())
    found.sort(key=lambda r: (not fold(r.shortcut).startswith(q), fold(r.shortcut)))
    return [
        {
            "id": r.id,
            "shortcut": r.shortcut,
            "title": r.title,
            "shared": r.owner_id is None,
            "body": render(r.body, ticket, user),
        }
        for r in found
    ]


def _clean_shortcut(text: str) -> str:
    shortcut = text.strip().lstrip(":").strip()
    if not shortcut:
        raise InputError(N_("give the reply a shortcut, the letters typed after ::"))
    if len(shortcut) > MAX_SHORTCUT or any(c.isspace() for c in shortcut):
        raise InputError(
            N_("a shortcut is one word of at most %(n)d characters, not %(shortcut)r"),
            n=MAX_SHORTCUT,
            shortcut=shortcut,
        )
    return shortcut


def _clean_text(title: str, body: str) -> tuple[str, str]:
    title = " ".join(title.split())
    if not title:
        raise InputError(N_("give the reply a title"))
    if len(title) > MAX_TITLE:
        raise InputError(N_("a title is at most %(n)d characters"), n=MAX_TITLE)
    body = body.replace("\r\n", "\n")
    if not body.strip():
        raise InputError(N_("the reply's text is empty"))
    if len(body) > MAX_BODY:
        raise InputError(N_("a reply's text is at most %(n)d characters"), n=MAX_BODY)
    return title, check_template(body)


def _check_unique(
    session: Session, owner_id: int | None, shortcut: str, besides: int | None = None
) -> None:
    owner = CannedReply.owner_id.is_(None) if owner_id is None else CannedReply.owner_id == owner_id
    clash = session.scalar(
        select(CannedReply.id).where(
            owner,
            func.lower(CannedReply.shortcut) == shortcut.lower(),
            CannedReply.id != (besides or -1),
        )
    )
    if clash is not None:
        raise InputError(
            N_("there is already a reply with the shortcut %(shortcut)r"), shortcut=shortcut
        )


def _owner_for(session: Session, user: User, shared: bool) -> int | None:
    if not may_use(user):
        raise Forbidden(N_("canned replies and macros are for staff"))
    if shared:
        if not may_share(user):
            raise Forbidden(N_("only administrators and coordinators share replies and macros"))
        return None
    return user.id


def create_reply(
    session: Session,
    user: User,
    *,
    shortcut: str,
    title: str,
    body: str,
    shared: bool = False,
    roles: Sequence[str] = (),
) -> CannedReply:
    owner_id = _owner_for(session, user, shared)
    shortcut = _clean_shortcut(shortcut)
    title, body = _clean_text(title, body)
    if owner_id is not None:
        count = session.scalar(
            select(func.count(CannedReply.id)).where(CannedReply.owner_id == owner_id)
        )
        if (count or 0) >= MAX_PER_OWNER:
            raise InputError(
                N_("you have %(n)d replies already; delete one first"), n=MAX_PER_OWNER
            )
    _check_unique(session, owner_id, shortcut)
    now = utcnow()
    reply = CannedReply(
        owner_id=owner_id,
        roles=clean_roles(session, roles) if owner_id is None else [],
        shortcut=shortcut,
        title=title,
        body=body,
        created_at=now,
        updated_at=now,
    )
    session.add(reply)
    session.flush()
    return reply


def may_manage(user: User, owner_id: int | None) -> bool:
    if owner_id is None:
        return may_share(user)
    return may_use(user) and owner_id == user.id


def get_reply(session: Session, user: User, reply_id: int) -> CannedReply:
    """A reply this user may use or manage (else not found)."""
    reply = session.get(CannedReply, reply_id) if 1 <= reply_id <= MAX_ID else None
    if reply is None or not (
        may_manage(user, reply.owner_id)
        or reply.owner_id == user.id
        or (reply.owner_id is None and shared_with(reply.roles, user))
    ):
        raise NotFound(N_("there is no canned reply %(id)s"), id=reply_id)
    return reply


def _managed_reply(session: Session, user: User, reply_id: int) -> CannedReply:
    reply = get_reply(session, user, reply_id)
    if not may_manage(user, reply.owner_id):
        raise Forbidden(
            N_("you may not change the shared reply %(shortcut)r"), shortcut=reply.shortcut
        )
    return reply


def update_reply(
    session: Session,
    user: User,
    reply_id: int,
    *,
    shortcut: str,
    title: str,
    body: str,
    roles: Sequence[str] = (),
) -> CannedReply:
    reply = _managed_reply(session, user, reply_id)
    shortcut = _clean_shortcut(shortcut)
    title, body = _clean_text(title, body)
    _check_unique(session, reply.owner_id, shortcut, besides=reply.id)
    reply.shortcut, reply.title, reply.body = shortcut, title, body
    if reply.owner_id is None:
        reply.roles = clean_roles(session, roles)
    reply.updated_at = utcnow()
    session.flush()
    return reply


def delete_reply(session: Session, user: User, reply_id: int) -> str:
    reply = _managed_reply(session, user, reply_id)
    shortcut = reply.shortcut
    session.delete(reply)
    session.flush()
    return shortcut


# --- Changed while writing -------------------------------------------------------------------


def latest_event_id(events: Iterable[Any]) -> int:
    return max((int(e.id) for e in events), default=0)


def changed_since(
    session: Session, user: User, ticket: Ticket, seen: int | str | None
) -> list[TicketEvent]:
    """The events after ``seen`` (an event id) that someone else caused and ``user`` may read
    (SLA warnings are the clock's, not a person's change). Nothing when ``seen`` is missing or
    not a number: a form without it (an old page, the API) is not checked."""
    try:
        last = int(str(seen).strip())
    except (TypeError, ValueError):
        return []
    if not 1 <= last <= MAX_ID:
        return []
    events = session.scalars(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.id > last)
        .options(selectinload(TicketEvent.author))
        .order_by(TicketEvent.id)
    )
    return [
        e for e in events if e.author_id != user.id and e.type != "sla" and can_see_event(user, e)
    ]


def describe_change(event: TicketEvent) -> Mapping[str, str]:
    """Who and what, for the warning (the console translates ``what``)."""
    who = event.author.display if event.author is not None else ""
    return {"who": who, "type": event.type}
