"""The ticket page's form for contacts copied on a ticket (core.tickets.contacts).

Same shape as the other ticket-page forms (``web.console.forms``): a form body, a service
call and a redirect back; a refusal shows the page again with what was typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar.response import Redirect, Template

from core.access.permissions import can
from core.errors import Forbidden, InputError, NotFound
from core.tickets import contacts
from web.console.forms import URLENCODED, ActingTicket, CurrentConsole, Form, form_post
from web.console.ticket_detail import ticket_done, ticket_refused


@dataclass
class CopyForm(Form):
    email: str = ""
    action: str = "add"


@form_post(
    "/tickets/{number:int}/cc", refused=ticket_refused(lambda data: {"cc_email": data.email})
)
def post_cc(
    console: CurrentConsole, ticket: ActingTicket, data: Annotated[CopyForm, URLENCODED]
) -> Template | Redirect:
    """``email`` with ``action=add`` (the default) copies a contact; ``action=remove`` stops."""
    tr, email = console.tr, data.email
    if not email:
        raise InputError(tr.gettext("Enter the e-mail address of the contact."))
    if not can(console.user, "cc", ticket):
        raise Forbidden(tr.gettext("You may not change who is copied on this ticket."))
    if data.action == "remove":
        event = contacts.remove_contact(console.db, ticket, email, actor=console.user)
        if event is None:
            raise NotFound(tr.gettext("%(email)s is not copied.") % {"email": email})
        message = tr.gettext("%(email)s is no longer copied.") % {"email": email}
    else:
        person = contacts.contact_for(console.db, ticket, email)
        event = contacts.add_contact(console.db, ticket, person, actor=console.user)
        if event is None:
            message = tr.gettext("%(email)s is copied already.") % {"email": person.email}
        else:
            message = tr.gettext("%(email)s is copied now.") % {"email": person.email}
    return ticket_done(console, ticket, event, message)
