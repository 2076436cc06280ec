"""Saved views: the ticket list's filters, sort and columns under a name, with their counts.

A view is the list's query string (``SavedView.query``, without the page) plus the standard
columns it hides (``SavedView.columns``: the names of :data:`HIDEABLE` the view does not show;
the custom-field columns travel in the query as ``columns=``). Anyone may save their own views
(owner = them). An admin (``configure``) publishes a view to roles: it becomes the desk's
(``owner_id`` NULL) with ``roles``, base role names or custom role names; an empty list means
every staff member. Everyone sees their own views and the published ones meant for their role
or custom role (:func:`visible_views`).

Counts (:func:`view_counts`): one COUNT per view through the same conditions and permission
scope as the list (``core.tickets.queries``), so a published view counts, for each user, only
the tickets that user may see. A view whose filter cannot apply to the user (e.g. a custom
field they may not read) counts as None, shown "—".

Decisions: view names are unique per owner (and among the desk's views); the owner or, for
a published view, an admin may rename or delete it; publishing moves a view to the desk; admins
see every desk view in their bar (they manage them), others those published to their role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.access.permissions import can
from core.clock import utcnow
from core.desk.models import SavedView
from core.desk.roles import pick_roles
from core.directory.models import STAFF_ROLES, Role, User
from core.errors import N_, Forbidden, InputError, NotFound
from core.tickets import queries

MAX_NAME = 100
MAX_VIEWS = 50  # per owner; the sidebar stays readable
BASE_ROLES = ("admin", "coordinator", "technician", "subcontractor", "client")
#: The standard list columns a view may hide (the subject and number always show).
HIDEABLE = ("client", "type", "status", "assignee", "reaction", "resolution", "updated")
#: The list's query keys a view keeps (``field.<name>`` too); the page is never kept.
VIEW_KEYS = (
    "state",
    "status",
    "client",
    "contract",
    "assignee",
    "key",
    "overdue",
    "q",
    "sort",
    "per_page",
    "columns",
)
FIELD_PREFIX = "field."


def clean_query(raw: str) -> str:
    """The list's query string as a view keeps it: only the list's own keys, no page, no
    empty values, in a stable order."""
    pairs = [
        (k, v.strip())
        for k, v in parse_qsl(raw.lstrip("?"), keep_blank_values=False)
        if (k in VIEW_KEYS or (k.startswith(FIELD_PREFIX) and len(k) > len(FIELD_PREFIX)))
        and v.strip()
    ]
    seen: dict[str, str] = {}
    for k, v in pairs:
        seen.setdefault(k, v)
    ordered = [(k, seen[k]) for k in VIEW_KEYS if k in seen]
    ordered += sorted((k, v) for k, v in seen.items() if k.startswith(FIELD_PREFIX))
    return urlencode(ordered)


def clean_hidden(names: Iterable[str]) -> list[str]:
    """The hideable columns among ``names``, in the list's order."""
    wanted = {n.strip() for n in names}
    return [n for n in HIDEABLE if n in wanted]


def _flag(value: str | None) -> bool | None:
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def view_filter(query: str) -> queries.TicketFilter:
    """The search a view's query stands for, forgiving like the list (an odd value is left
    out rather than refused: a view must always count)."""
    params: Mapping[str, str] = dict(parse_qsl(query))
    state = params.get("state", "open")
    sort = params.get("sort", "-number")
    return queries.TicketFilter(
        state=state if state in ("open", "closed", "all") else "open",
        status=params.get("status") or None,
        client=params.get("client") or None,
        contract=params.get("contract") or None,
        assignee=params.get("assignee") or None,
        key=_flag(params.get("key")),
        overdue=_flag(params.get("overdue")),
        q=params.get("q") or None,
        fields={
            k[len(FIELD_PREFIX) :]: v
            for k, v in params.items()
            if k.startswith(FIELD_PREFIX) and len(k) > len(FIELD_PREFIX)
        },
        sort=sort if sort in queries.SORTS else "-number",
        per_page=1,
    )


def _role_names(user: User) -> set[str]:
    names = {user.role}
    custom = getattr(user, "custom_role", None)
    if custom is not None:
        names.add(custom.name)
    return names


def is_published_to(view: SavedView, user: User) -> bool:
    """Is this desk view meant for this user (their role or custom role, or every staff
    member when it names none)?"""
    if view.owner_id is not None:
        return False
    roles = [str(r) for r in view.roles or []]
    if not roles:
        return user.role in STAFF_ROLES
    return bool(_role_names(user) & set(roles))


def visible_views(session: Session, user: User) -> list[SavedView]:
    """The user's own views, then the desk's views published to them (an admin, who manages
    them, sees every one), each by position and name."""
    if user.id is None:
        return []
    rows = session.scalars(
        select(SavedView)
        .where(or_(SavedView.owner_id == user.id, SavedView.owner_id.is_(None)))
        .order_by(SavedView.owner_id.is_(None), SavedView.position, SavedView.name)
    )
    admin = can(user, "configure")
    return [v for v in rows if v.owner_id == user.id or admin or is_published_to(v, user)]


def managed_views(session: Session, user: User) -> list[SavedView]:
    """The views this user may change: their own, and for an admin every desk view."""
    clause = SavedView.owner_id == user.id
    if can(user, "configure"):
        clause = or_(clause, SavedView.owner_id.is_(None))
    return list(
        session.scalars(
            select(SavedView)
            .where(clause)
            .order_by(SavedView.owner_id.is_(None), SavedView.position, SavedView.name)
        )
    )


def get_view(session: Session, user: User, view_id: int) -> SavedView:
    """A view this user may see (else not found)."""
    view = session.get(SavedView, view_id)
    if view is None or not (
        view.owner_id == user.id or is_published_to(view, user) or may_manage(user, view)
    ):
        raise NotFound(N_("there is no view %(id)s"), id=view_id)
    return view


def may_manage(user: User, view: SavedView) -> bool:
    if view.owner_id is None:
        return can(user, "configure")
    return view.owner_id == user.id


def _managed(session: Session, user: User, view_id: int) -> SavedView:
    view = get_view(session, user, view_id)
    if not may_manage(user, view):
        raise Forbidden(N_("you may not change the view %(name)r"), name=view.name)
    return view


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InputError(N_("give the view a name"))
    if len(name) > MAX_NAME:
        raise InputError(N_("a view's name is at most %(n)d characters"), n=MAX_NAME)
    return name


def _check_unique(
    session: Session, owner_id: int | None, name: str, besides: int | None = None
) -> None:
    owner = SavedView.owner_id.is_(None) if owner_id is None else SavedView.owner_id == owner_id
    clash = session.scalar(
        select(SavedView.id).where(
            owner, func.lower(SavedView.name) == name.lower(), SavedView.id != (besides or -1)
        )
    )
    if clash is not None:
        raise InputError(N_("there is already a view named %(name)r"), name=name)


def known_roles(session: Session) -> list[str]:
    """The role names a view may be published to: the base roles, then the custom roles."""
    return [*BASE_ROLES, *session.scalars(select(Role.name).order_by(Role.name))]


def _clean_roles(session: Session, roles: Sequence[str]) -> list[str]:
    return pick_roles(
        roles, known_roles(session), N_("there is no role %(role)r; roles: %(known)s")
    )


def create_view(
    session: Session,
    user: User,
    name: str,
    query: str,
    hidden: Iterable[str] = (),
    *,
    publish_to: Sequence[str] | None = None,
) -> SavedView:
    """Save the list's ``query`` (and the standard columns it hides) under ``name``: the
    user's own view, or with ``publish_to`` (admins) the desk's, shown to those roles."""
    name = _clean_name(name)
    owner_id: int | None = user.id
    roles: list[str] = []
    if publish_to is not None:
        if not can(user, "configure"):
            raise Forbidden(N_("only an administrator may publish a view"))
        owner_id = None
        roles = _clean_roles(session, publish_to)
    else:
        count = session.scalar(
            select(func.count(SavedView.id)).where(SavedView.owner_id == user.id)
        )
        if (count or 0) >= MAX_VIEWS:
            raise InputError(N_("you have %(n)d views already; delete one first"), n=MAX_VIEWS)
    _check_unique(session, owner_id, name)
    now = utcnow()
    view = SavedView(
        owner_id=owner_id,
        name=name,
        query=clean_query(query),
        columns=clean_hidden(hidden),
        roles=roles,
        position=0,
        created_at=now,
        updated_at=now,
    )
    session.add(view)
    session.flush()
    return view


def rename_view(session: Session, user: User, view_id: int, name: str) -> SavedView:
    view = _managed(session, user, view_id)
    name = _clean_name(name)
    _check_unique(session, view.owner_id, name, besides=view.id)
    view.name = name
    view.updated_at = utcnow()
    session.flush()
    return view


def publish_view(session: Session, user: User, view_id: int, roles: Sequence[str]) -> SavedView:
    """Admins: make the view the desk's, shown to ``roles`` (none: every staff member)."""
    if not can(user, "configure"):
        raise Forbidden(N_("only an administrator may publish a view"))
    view = _managed(session, user, view_id)
    cleaned = _clean_roles(session, roles)
    if view.owner_id is not None:
        _check_unique(session, None, view.name, besides=view.id)
    view.owner_id = None
    view.roles = cleaned
    view.updated_at = utcnow()
    session.flush()
    return view


def delete_view(session: Session, user: User, view_id: int) -> str:
    view = _managed(session, user, view_id)
    name = view.name
    session.delete(view)
    session.flush()
    return name


def count_view(session: Session, user: User, view: SavedView, now: datetime) -> int | None:
    """How many tickets this user sees in the view (one COUNT); None when its filter cannot
    apply to them."""
    f = view_filter(view.query)
    try:
        total, _ = queries.count_tickets(session, user, f, now)
    except InputError:
        return None
    return total


def view_counts(
    session: Session, user: User, views: Sequence[SavedView], now: datetime | None = None
) -> dict[int, int | None]:
    now = now or utcnow()
    return {v.id: count_view(session, user, v, now) for v in views}
