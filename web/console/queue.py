"""The ticket list's forms that come back to the list: the "Take" button (``POST
/tickets/{n}/take``: a technician takes a ticket of their queue, ``core.tickets.queue``, from
the list's row or the ticket page) and "Save view" (``POST /views``, ``core.desk.views``). A
refusal shows the list again with the sentence (and the view's name as typed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from litestar.response import Redirect, Template
from sqlalchemy import select

from core.access.permissions import can_view
from core.desk import views
from core.errors import InputError
from core.tickets.models import Ticket
from core.tickets.queue import take_ticket
from core.tickets.services import get_ticket
from web.console.common import clean_query, form_list, form_str
from web.console.forms import Console, CurrentConsole, FormDict, form_post
from web.console.ticket_detail import detail_page
from web.console.tickets_list import list_page
from web.console.views import view_url


def _take_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    """Back to the list (or the ticket) with the sentence, e.g. someone took it first."""
    data = kwargs["data"]
    back = form_str(data, "back")
    number = int(console.request.path_params["number"])
    if "back" not in data:
        ticket = console.db.scalar(select(Ticket).where(Ticket.number == number))
        if ticket is not None and can_view(console.user, ticket):
            return detail_page(
                console, number, status_code=exc.status_code, error=console.refusal(exc)
            )
    return list_page(
        console,
        dict(parse_qsl(clean_query(back))),
        status_code=exc.status_code,
        bulk_error={"message": console.refusal(exc), "reasons": [], "status": None},
    )


@form_post("/tickets/{number:int}/take", refused=_take_refused)
def post_take(console: CurrentConsole, number: int, data: FormDict) -> Redirect:
    """Take the ticket; back to the list it was taken from (``back``), else to the ticket."""
    ticket = get_ticket(console.db, number, console.user)
    take_ticket(console.db, console.user, ticket)
    message = console.gettext("You took ticket #%(number)s.") % {"number": number}
    if "back" in data:
        return console.redirect(_back(data), message)
    return console.redirect(f"/tickets/{number}", message)


def _back(data: Mapping[str, Any]) -> str:
    back = clean_query(form_str(data, "back"))
    return "/tickets" + (f"?{back}" if back else "")


def _view_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    data = kwargs["data"]
    return list_page(
        console,
        dict(parse_qsl(clean_query(form_str(data, "query")))),
        status_code=exc.status_code,
        bulk_error={"message": console.refusal(exc), "reasons": [], "status": None},
        view_draft={"name": form_str(data, "name")},
    )


@form_post("/views", refused=_view_refused)
def post_view(console: CurrentConsole, data: FormDict) -> Redirect:
    """Save the list as a view (``query``: the list's query string; ``show``: the standard
    columns ticked; admins: ``publish=1`` and ``roles``)."""
    query = form_str(data, "query")
    shown = set(form_list(data, "show"))
    hidden = [c for c in views.HIDEABLE if c not in shown] if form_str(data, "columns_set") else []
    publish = form_str(data, "publish") == "1"
    view = views.create_view(
        console.db,
        console.user,
        form_str(data, "name"),
        query,
        hidden,
        publish_to=form_list(data, "roles") if publish else None,
    )
    message = console.gettext("View %(name)s saved.") % {"name": view.name}
    return console.redirect(view_url(view), message)
