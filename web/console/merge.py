"""The ticket page's "Merge into…" and "Split into a new ticket" (``core.tickets.merge``).

Merging asks twice: the first post names the target (``into``) and answers with the page again,
naming both tickets with their subjects and asking to confirm (after every check, so a refusal
shows at once); the second (``confirm=1``) merges and goes to the target. Splitting a received
mail out is one post from the mail on the timeline (the browser asks first: ``merge.js``) and
goes to the new ticket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from litestar.response import Redirect, Template

from core.errors import InputError
from core.tickets.merge import merge_target, merge_tickets, split_event
from web.console.forms import URLENCODED, ActingTicket, CurrentConsole, Form, form_post
from web.console.ticket_detail import detail_page, ticket_done, ticket_refused


@dataclass
class MergeForm(Form):
    into: str = ""
    # "1" once the person confirmed the merge the page named.
    confirm: str = ""


def _merge_draft(data: Any) -> Mapping[str, Any]:
    return {"merge_into": data.into, "merge_open": "1"}


def _number(console: CurrentConsole, text: str) -> int:
    digits = text.strip().lstrip("#").strip()
    if not digits.isdigit() or not 1 <= int(digits) <= 2**31 - 1:
        raise InputError(console.gettext("Enter the number of the ticket to merge into."))
    return int(digits)


@form_post("/tickets/{number:int}/merge", refused=ticket_refused(_merge_draft))
def post_merge(
    console: CurrentConsole, ticket: ActingTicket, data: Annotated[MergeForm, URLENCODED]
) -> Template | Redirect:
    into = _number(console, data.into)
    if data.confirm != "1":
        target = merge_target(console.db, ticket, into, actor=console.user)
        return detail_page(
            console,
            ticket.number,
            draft={
                "merge_into": str(target.number),
                "merge_open": "1",
                "merge_target": target.number,
                "merge_target_subject": target.subject,
            },
        )
    target = merge_tickets(console.db, ticket, into, actor=console.user)
    message = console.gettext("Ticket #%(source)s merged into this ticket.") % {
        "source": ticket.number
    }
    event = next((e for e in reversed(target.events) if e.type == "merge"), None)
    return ticket_done(console, target, event, message)


@dataclass
class SplitForm(Form):
    event: str = ""


@form_post("/tickets/{number:int}/split", refused=ticket_refused())
def post_split(
    console: CurrentConsole, ticket: ActingTicket, data: Annotated[SplitForm, URLENCODED]
) -> Template | Redirect:
    if not data.event.isdigit():
        raise InputError(console.gettext("Choose the e-mail to split out."))
    new = split_event(console.db, ticket, int(data.event), actor=console.user)
    message = console.gettext("The e-mail now opens ticket #%(number)s.") % {"number": new.number}
    return ticket_done(console, new, new.events[0] if new.events else None, message)


merge_handlers = [post_merge, post_split]
