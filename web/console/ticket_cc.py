"""The ticket page's form for contacts copied on a ticket (core.tickets.contacts).

Same pattern as the other ticket-page forms (``web.console.ticket_detail``): CSRF-checked POST,
redirect back on success, the page re-rendered with core's sentence and status on a refusal.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, post
from litestar.response import Redirect, Template

from core.access.permissions import can
from core.errors import Forbidden, InputError, NotFound
from core.tickets import contacts
from web.console.common import form_str
from web.console.ticket_detail import URLENCODED, acting_on, form_done, form_refused
from web.deps import DB, CurrentUser


@post("/tickets/{number:int}/cc", sync_to_thread=True, status_code=303)
def post_cc(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    number: int,
    data: Annotated[dict[str, Any], URLENCODED],
) -> Template | Redirect:
    """``email`` with ``action=add`` (the default) copies a contact; ``action=remove`` stops."""
    web_session, ticket, tr = acting_on(request, db, user, number, data)
    email = form_str(data, "email")
    try:
        if not email:
            raise InputError(tr.gettext("Enter the e-mail address of the contact."))
        if not can(user, "cc", ticket):
            raise Forbidden(tr.gettext("You may not change who is copied on this ticket."))
        if form_str(data, "action") == "remove":
            event = contacts.remove_contact(db, ticket, email, actor=user)
            if event is None:
                raise NotFound(tr.gettext("%(email)s is not copied.") % {"email": email})
            message = tr.gettext("%(email)s is no longer copied.") % {"email": email}
        else:
            person = contacts.contact_for(db, ticket, email)
            event = contacts.add_contact(db, ticket, person, actor=user)
            if event is None:
                message = tr.gettext("%(email)s is copied already.") % {"email": person.email}
            else:
                message = tr.gettext("%(email)s is copied now.") % {"email": person.email}
    except InputError as exc:
        return form_refused(request, db, user, web_session, number, exc, {"cc_email": email})
    return form_done(request, db, user, ticket, event, message)
