"""The one permission scope: which tickets a user may see, and what they may do there.

Every query that lists or opens tickets goes through :func:`ticket_scope` (or
:func:`scoped_tickets`), whichever door it comes from: console, API, mail, reports,
notifications. The rules:

=============  ==============================================  ===============================
role           sees                                            may
=============  ==============================================  ===============================
admin          every ticket                                    everything
coordinator    every ticket                                    everything but instance config,
                                                               the outbox and personal data
technician     tickets assigned to them, and the open          comment, note, status, log work,
               unassigned tickets of the contracts they serve  custom fields and the ticket type,
               (their queue, ``contracts[].technicians``)      take a ticket of their queue
subcontractor  tickets handed to their company                 comment, note, log work, the
                                                               statuses ``visible_to_subcontractor``
client         tickets they requested or are copied on (while  public comments, statuses with
               they belong to the ticket's client); a          ``client_can_set``; the
               ``manager`` contact sees all of their client's  requester and a manager copy
               tickets                                         contacts (``cc``)
=============  ==============================================  ===============================

Custom roles (``roles:`` in YAML, ``core.directory.models.Role``): a base role plus public
actions granted and denied (:data:`PUBLIC_ACTIONS`, :data:`ROLE_ACTIONS`); a user with one has
the base as ``role``, so the tickets they see are the base role's, and :func:`can` answers
with the base's actions plus the grants minus the denies.

Copied contacts (``core.tickets.contacts``): staff who may see a ticket (admins, coordinators,
its technician) and its requester or a manager of its client add and remove them; a copied
contact sees the ticket but copies nobody. Subcontractors do not copy clients' people.

Substitutions (``core.access.substitutions``): for its window, a substitute also sees every ticket
the absent person sees (chains included); the actions stay those of the substitute's own role.

Timeline (:func:`can_see_event`, :func:`event_scope`): clients see public events only. Staff see
every event. Subcontractor users see public events, the text-less lines of the timeline
(status, assignment, SLA, ...), what their own company wrote, and the internal notes whose
author chose them as audience (``data["audience"] == "subcontractor"``, :data:`AUDIENCES`);
any other internal text (a note, a mail kept internal, an unverified mail, a worklog or
status note of our staff) is for our staff only, which is also what a note without an
audience means. Statuses (:func:`status_visible`): a status a client (``visible_to_client``)
or subcontractor (``visible_to_subcontractor``) may not see is shown to them by its category
only, in every door. Decisions recorded in docs/decisions.md ("Leaks and wrong doors").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select, true
from sqlalchemy.orm import Session, object_session

from core.access.substitutions import represented
from core.clock import utcnow
from core.contracts.models import Status, contract_technicians
from core.directory.models import User
from core.tickets.models import Attachment, Ticket, TicketEvent, ticket_contacts

# "fields": custom fields and the ticket type; "edit": the contract (sorting out of triage).
# "cc": add or remove copied contacts (clients: only the requester or a manager, see can()).
# "hand_over": hand a ticket to a subcontractor (or take it back from one).
# "reports": the SLA and work-time reports. "people": personal data (GDPR export, erasure,
# the people pages and the audit log).
# "outbox": see every outgoing mail (every recipient's address) and send failed mail again.
# "configure": the admin console and `pulpit config apply` (contracts, users, roles, ...).
# "take": take an unassigned ticket of a contract one serves (core.tickets.queue).
ACTIONS = (
    "view",
    "comment",
    "note",
    "status",
    "assign",
    "take",
    "worklog",
    "fields",
    "edit",
    "bulk",
    "cc",
    "hand_over",
    "reports",
    "outbox",
    "people",
    "configure",
)

_ALLOWED: dict[str, frozenset[str]] = {
    "admin": frozenset(ACTIONS),
    "coordinator": frozenset(ACTIONS) - {"outbox", "configure", "people"},
    "technician": frozenset(
        {"view", "comment", "note", "status", "take", "worklog", "fields", "cc"}
    ),
    "subcontractor": frozenset({"view", "comment", "note", "status", "worklog"}),
    "client": frozenset({"view", "comment", "status", "cc"}),
}

#: The actions a custom role names (``roles:`` in YAML, the console's permission matrix), in
#: the matrix's order, with the internal action each stands for. ``edit`` (sorting a ticket out
#: of triage) is not among them: it goes with the base role.
PUBLIC_ACTIONS: dict[str, str] = {
    "see": "view",
    "comment": "comment",
    "note": "note",
    "status": "status",
    "assign": "assign",
    "take": "take",
    "bulk_status": "bulk",
    "hand_over": "hand_over",
    "work_log": "worklog",
    "fields": "fields",
    "cc": "cc",
    "reports": "reports",
    "configure": "configure",
    "outbox": "outbox",
    "people": "people",
}

#: Actions only staff may hold: a custom role on the client or subcontractor base cannot be
#: granted them (``core.configuration.checks``).
STAFF_ONLY_ACTIONS = frozenset(
    {"assign", "take", "bulk_status", "hand_over", "reports", "configure", "outbox", "people"}
)

#: Which tickets a role sees is its base role's; ``see`` is therefore neither granted nor
#: denied by a custom role.
SCOPE_ACTIONS = frozenset({"see"})


@dataclass(frozen=True)
class RoleAction:
    """One row of the permission matrix: the public name, the internal action, and whether
    each base role has it by default."""

    name: str
    action: str
    defaults: dict[str, bool]


#: The permission matrix of the base roles, one row per public action (the roles screen
#: draws its matrix from it).
ROLE_ACTIONS: tuple[RoleAction, ...] = tuple(
    RoleAction(name, action, {role: action in allowed for role, allowed in _ALLOWED.items()})
    for name, action in PUBLIC_ACTIONS.items()
)


def role_allowed(base: str, grant: Iterable[str] = (), deny: Iterable[str] = ()) -> frozenset[str]:
    """The internal actions of a role: its base's, plus the public actions granted, minus
    those denied (unknown names are ignored: the configuration checks refuse them)."""
    allowed = set(_ALLOWED.get(base, frozenset()))
    allowed |= {PUBLIC_ACTIONS[a] for a in grant if a in PUBLIC_ACTIONS}
    allowed -= {PUBLIC_ACTIONS[a] for a in deny if a in PUBLIC_ACTIONS}
    return frozenset(allowed)


def _allowed(user: User) -> frozenset[str]:
    custom = getattr(user, "custom_role", None)  # the layout passes a plain view of the user
    if custom is None:
        return _ALLOWED.get(user.role, frozenset())
    # The user's ``role`` is the custom role's base (kept in step by the configuration).
    return role_allowed(user.role, custom.grant or (), custom.deny or ())


def allowed_actions(user: User) -> list[str]:
    """The public actions this user holds, in the matrix's order (see :data:`ROLE_ACTIONS`)."""
    allowed = _allowed(user)
    return [name for name, action in PUBLIC_ACTIONS.items() if action in allowed]


def ticket_scope(user: User, *, now: datetime | None = None) -> ColumnElement[bool]:
    """A WHERE clause selecting exactly the tickets this user may see.

    Besides their own, a user sees the tickets of everyone they currently substitute for
    (``core.access.substitutions.represented``, chains included), read in the user's own session
    at ``now`` (default: the clock's now); the window closes at once when it ends.
    """
    if not user.active:
        return false()
    if user.role in ("admin", "coordinator"):
        return true()
    people = _represented_users(user, now)
    clauses = [_own_scope(person) for person in people]
    return or_(*clauses) if len(clauses) > 1 else clauses[0]


def _own_scope(user: User) -> ColumnElement[bool]:
    """The tickets this user sees by their own role, without substitutions."""
    role = user.role
    if role in ("admin", "coordinator"):
        return true()
    if role == "technician":
        # Their own, and the queue: open unassigned tickets of the contracts they serve.
        queue = and_(
            Ticket.assignee_id.is_(None),
            Ticket.status_category != "closed",
            Ticket.contract_id.in_(
                select(contract_technicians.c.contract_id).where(
                    contract_technicians.c.user_id == user.id
                )
            ),
        )
        return or_(Ticket.assignee_id == user.id, queue)
    if role == "subcontractor":
        if user.subcontractor_id is None:
            return false()
        return Ticket.subcontractor_id == user.subcontractor_id
    if role == "client":
        if user.manager and user.client_id is not None:
            return Ticket.client_id == user.client_id
        # Copied only counts while the contact belongs to the ticket's client (a ticket moved
        # to another client's contract, or a contact moved to another client, ends it).
        copied = Ticket.id.in_(
            select(ticket_contacts.c.ticket_id).where(ticket_contacts.c.user_id == user.id)
        )
        same_client = (
            Ticket.client_id == user.client_id
            if user.client_id is not None
            else Ticket.client_id.is_(None)
        )
        return or_(Ticket.requester_id == user.id, and_(copied, same_client))
    return false()


def _represented_users(user: User, now: datetime | None) -> list[User]:
    """The user plus everyone they currently substitute for (clients never substitute)."""
    session = object_session(user)
    if session is None or user.role == "client" or user.id is None:
        return [user]
    ids = represented(session, user, now or utcnow()) - {user.id}
    if not ids:
        return [user]
    others = session.scalars(select(User).where(User.id.in_(ids)).order_by(User.id))
    return [user, *others]


def scoped_tickets(user: User, *, now: datetime | None = None) -> Select[Ticket]:
    return select(Ticket).where(ticket_scope(user, now=now))


def can_view(user: User, ticket: Ticket, *, now: datetime | None = None) -> bool:
    """May this user see this ticket (by their own role, or as someone's substitute)?"""
    if not user.active:
        return False
    if user.role in ("admin", "coordinator"):
        return True
    if _own_view(user, ticket):
        return True
    return any(_own_view(p, ticket) for p in _represented_users(user, now)[1:])


def _own_view(user: User, ticket: Ticket) -> bool:
    role = user.role
    if role in ("admin", "coordinator"):
        return True
    if role == "technician":
        return ticket.assignee_id == user.id or in_queue(user, ticket)
    if role == "subcontractor":
        return (
            user.subcontractor_id is not None and ticket.subcontractor_id == user.subcontractor_id
        )
    if role == "client":
        if user.manager and user.client_id is not None:
            return ticket.client_id == user.client_id
        return ticket.requester_id == user.id or is_copied(user, ticket)
    return False


def serves(user: User, ticket: Ticket) -> bool:
    """Does this user serve the ticket's contract (``contracts[].technicians``)?"""
    if ticket.contract_id is None or user.id is None:
        return False
    session = object_session(ticket) or object_session(user)
    if session is None:
        return False
    found = session.scalar(
        select(contract_technicians.c.user_id).where(
            contract_technicians.c.contract_id == ticket.contract_id,
            contract_technicians.c.user_id == user.id,
        )
    )
    return found is not None


def in_queue(user: User, ticket: Ticket) -> bool:
    """Is this ticket in the user's queue to take: open, unassigned, of a contract they serve?"""
    return (
        ticket.assignee_id is None and ticket.status_category != "closed" and serves(user, ticket)
    )


def is_copied(user: User, ticket: Ticket) -> bool:
    """Is this contact copied on the ticket, and still of the ticket's client?"""
    if user.role != "client" or user.client_id != ticket.client_id:
        return False
    return any(person.id == user.id for person in ticket.cc)


def can(user: User, action: str, ticket: Ticket | None = None) -> bool:
    """May this user do ``action`` (one of ACTIONS) on this ticket (or in general)?

    A user's actions are their role's, or with a custom role (``User.custom_role``) its
    base's plus its grants minus its denies; the tickets they see stay the base role's."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if action not in _allowed(user):
        return False
    if action == "cc" and user.role == "client" and ticket is not None:
        # The requester and a manager of the ticket's client, not a copied contact.
        if ticket.requester_id != user.id and not (
            user.manager and user.client_id is not None and user.client_id == ticket.client_id
        ):
            return False
    return ticket is None or can_view(user, ticket)


# Who an internal note is for: our own staff (the default, also of every note written before
# audiences existed) or also the subcontractor working the ticket.
AUDIENCES = ("staff", "subcontractor")


def note_audience(event: TicketEvent) -> str | None:
    """Who an internal event's text is for (:data:`AUDIENCES`); None for a public event."""
    if event.public:
        return None
    value = (event.data or {}).get("audience")
    return value if value in AUDIENCES else "staff"


def _has_text(event: TicketEvent) -> bool:
    return bool((event.body_text or "").strip() or event.body_html or event.attachments)


def event_scope(user: User) -> ColumnElement[bool]:
    """A WHERE clause on TicketEvent for the events of a visible ticket this user may read
    (the same rule as :func:`can_see_event`, for queries)."""
    if user.role == "client":
        return TicketEvent.public.is_(True)
    if user.role != "subcontractor":
        return true()
    no_text = and_(
        func.coalesce(func.trim(TicketEvent.body_text), "") == "",
        TicketEvent.body_html.is_(None),
        ~exists().where(Attachment.event_id == TicketEvent.id),
    )
    clauses: list[ColumnElement[bool]] = [
        TicketEvent.public.is_(True),
        no_text,
        TicketEvent.data["audience"].as_string() == "subcontractor",
    ]
    if user.subcontractor_id is not None:
        clauses.append(
            TicketEvent.author_id.in_(
                select(User.id).where(User.subcontractor_id == user.subcontractor_id)
            )
        )
    return or_(*clauses)


def can_see_event(user: User, event: TicketEvent) -> bool:
    """May this user read this event of a ticket they may see? See the module's docstring."""
    if user.role == "client":
        return bool(event.public)
    if user.role != "subcontractor" or event.public:
        return True
    author = event.author
    if (
        author is not None
        and user.subcontractor_id is not None
        and author.subcontractor_id == user.subcontractor_id
    ):
        return True  # what their own company wrote
    if note_audience(event) == "subcontractor":
        return True
    return not _has_text(event)


def status_visible(user: User, status: Status) -> bool:
    """May this user see this status by its name (else only by its category)?"""
    if user.role == "client":
        return bool(status.visible_to_client)
    if user.role == "subcontractor":
        return bool(status.visible_to_subcontractor)
    return True


def settable_statuses(user: User, statuses: Sequence[Status]) -> list[Status]:
    """The statuses, of those a ticket offers, that this user may move it into."""
    if user.role in ("admin", "coordinator", "technician"):
        return list(statuses)
    if user.role == "subcontractor":
        return [s for s in statuses if s.visible_to_subcontractor]
    if user.role == "client":
        return [s for s in statuses if s.client_can_set and s.visible_to_client]
    return []


def visible_tickets_count(session: Session, user: User) -> int:
    return int(session.scalar(select(func.count(Ticket.id)).where(ticket_scope(user))) or 0)


def scope_and(user: User, *clauses: ColumnElement[bool]) -> ColumnElement[bool]:
    return and_(ticket_scope(user), *clauses)


CATEGORY_LABELS = {"new": "New", "open": "In progress", "paused": "Waiting", "closed": "Closed"}


def visible_status_name(user: User, status: Status) -> str:
    """What this user is shown as the status: clients see a status that is not
    ``visible_to_client`` (subcontractors one not ``visible_to_subcontractor``) only by its
    category, so internal workflow stays internal."""
    if not status_visible(user, status):
        return CATEGORY_LABELS.get(status.category, status.category)
    return status.name
