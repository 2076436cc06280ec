"""Work queues and saved views on the ticket list (issue 15).

- The views bar above the list (``_views_sidebar.html``, :func:`views_bar`): the user's queue
  ("To take": open unassigned tickets of the contracts they serve, ``core.tickets.queue``) and
  their saved views, each with its count; ``/static/views.js`` refreshes the counts every
  minute from ``GET /views/counts`` without reloading the page. At 1280 px the subject column
  needs the room, so the "sidebar" is a strip of links above the filters rather than a column.
- "Save view" (a small form in the bar, posted to ``web.console.queue.post_view``) saves the list as it is: its filters, sort and field
  columns (the query string), and which standard columns it shows (``hide=`` in the list's
  URL, ``SavedView.columns`` in the view). Admins may publish it to roles at once, or later on
  ``/views`` where everyone manages their own views (rename, delete).
- The "Take" button of a queue row and of the ticket page posts to ``web.console.queue``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from litestar import get
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import can
from core.clock import utcnow
from core.contracts.models import contract_technicians
from core.desk import views as desk
from core.desk.models import SavedView
from core.directory.models import User
from core.errors import InputError
from core.tickets.models import Ticket
from core.tickets.queue import queue_count
from web.console.common import form_list, form_str
from web.console.forms import Console, CurrentConsole, FormDict, form_post

QUEUE_QUERY = "assignee=none"


@dataclass
class ViewLink:
    id: int
    name: str
    url: str
    count: int | None
    shared: bool
    active: bool


@dataclass
class ViewsBar:
    """What the list's views bar shows, and which rows offer "Take"."""

    views: list[ViewLink]
    queue_count: int | None  # None: the user serves no contract (no queue shown)
    queue_url: str
    queue_active: bool
    hidden: list[str]  # the standard columns this list hides
    query: str  # the list's query, as a view would keep it
    may_publish: bool
    roles: list[str]
    hideable: tuple[str, ...] = desk.HIDEABLE
    served: set[int] = field(default_factory=set)
    may_take: bool = False

    def takeable(self, ticket: Ticket) -> bool:
        """Does this row offer "Take": an open unassigned ticket of a contract the user serves
        (no query: the served contracts are known)? Coordinators see "Take" on the ticket page
        of any unassigned ticket, but rows offer it only in one's own queue, so the list of
        someone who assigns all day stays quiet."""
        if not self.may_take or ticket.assignee_id is not None:
            return False
        if ticket.status_category == "closed":
            return False
        return ticket.contract_id in self.served


def served_contracts(db: Session, user: User) -> set[int]:
    if user.id is None:
        return set()
    return set(
        db.scalars(
            select(contract_technicians.c.contract_id).where(
                contract_technicians.c.user_id == user.id
            )
        )
    )


def view_url(view: SavedView) -> str:
    """The list showing this view: its query, its field columns (explicitly, even none, so the
    view's columns win over the remembered ones) and the standard columns it hides."""
    pairs = parse_qsl(view.query)
    if not any(k == "columns" for k, _ in pairs):
        pairs.append(("columns", ""))
    if view.columns:
        pairs.append(("hide", ",".join(str(c) for c in view.columns)))
    return "/tickets?" + urlencode(pairs, safe=",")


def hidden_columns(query: Mapping[str, str]) -> list[str]:
    return desk.clean_hidden((query.get("hide") or "").split(","))


def views_bar(console: Console, query: Mapping[str, str], query_string: str) -> ViewsBar:
    """The bar's content for the list page: ``query`` is the request's, ``query_string`` the
    list's cleaned one (as its links keep it)."""
    db, user = console.db, console.user
    now = utcnow()
    views = desk.visible_views(db, user)
    counts = desk.view_counts(db, user, views, now)
    current = desk.clean_query(query_string)
    hidden = hidden_columns(query)
    served = served_contracts(db, user)
    links = [
        ViewLink(
            v.id,
            v.name,
            view_url(v),
            counts.get(v.id),
            v.owner_id is None,
            current == v.query and hidden == list(v.columns or []),
        )
        for v in views
    ]
    return ViewsBar(
        views=links,
        queue_count=queue_count(db, user) if served else None,
        queue_url="/tickets?" + QUEUE_QUERY,
        queue_active=bool(served) and current == QUEUE_QUERY,
        hidden=hidden,
        query=query_string,
        # Clients' lists have no client, type, assignee or deadline columns.
        hideable=desk.HIDEABLE if user.role != "client" else ("status", "updated"),
        may_publish=can(user, "configure"),
        roles=desk.known_roles(db) if can(user, "configure") else [],
        served=served,
        may_take=can(user, "take"),
    )


@get("/views/counts", sync_to_thread=True, name="view_counts")
def counts(console: CurrentConsole) -> dict[str, Any]:
    """The views bar's counts, for ``views.js``: ``{"views": {id: n}, "queue": n|null}``."""
    db, user = console.db, console.user
    views = desk.visible_views(db, user)
    numbers = desk.view_counts(db, user, views)
    queue = queue_count(db, user) if served_contracts(db, user) else None
    return {"views": {str(k): v for k, v in numbers.items()}, "queue": queue}


def _views_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    return manage_page(console, status_code=exc.status_code, error=console.refusal(exc))


def manage_page(console: Console, *, status_code: int = 200, error: str | None = None) -> Template:
    db, user = console.db, console.user
    managed = desk.managed_views(db, user)
    shown = {v.id for v in managed}
    others = [v for v in desk.visible_views(db, user) if v.id not in shown]
    return console.render(
        "views_manage.html",
        status_code=status_code,
        error=error,
        managed=managed,
        others=others,
        view_url=view_url,
        roles=desk.known_roles(db) if can(user, "configure") else [],
        may_publish=can(user, "configure"),
    )


@get("/views", sync_to_thread=True, name="views")
def views_page(console: CurrentConsole) -> Template:
    return manage_page(console)


@form_post("/views/{view_id:int}/rename", refused=_views_refused)
def post_rename(console: CurrentConsole, view_id: int, data: FormDict) -> Redirect:
    view = desk.rename_view(console.db, console.user, view_id, form_str(data, "name"))
    return console.redirect("/views", console.gettext("View %(name)s saved.") % {"name": view.name})


@form_post("/views/{view_id:int}/publish", refused=_views_refused)
def post_publish(console: CurrentConsole, view_id: int, data: FormDict) -> Redirect:
    view = desk.publish_view(console.db, console.user, view_id, form_list(data, "roles"))
    message = console.gettext("View %(name)s published.") % {"name": view.name}
    return console.redirect("/views", message)


@form_post("/views/{view_id:int}/delete", refused=_views_refused)
def post_delete(console: CurrentConsole, view_id: int, data: FormDict) -> Redirect:
    name = desk.delete_view(console.db, console.user, view_id)
    return console.redirect("/views", console.gettext("View %(name)s deleted.") % {"name": name})


views_handlers = [
    counts,
    views_page,
    post_rename,
    post_publish,
    post_delete,
]
