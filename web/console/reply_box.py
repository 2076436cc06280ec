"""The ticket page's reply box helpers (issue 15): what ``web.console.ticket_detail`` adds to
the page for canned replies, macros, drafts and the "changed while you were writing" check.

Kept apart from ``web.console.replies`` (the pages and endpoints, which render the ticket
page) so that ``ticket_detail`` imports this module and nothing imports back.

- ``reply_seen``: the newest event id the page shows; the comment form posts it as ``seen``.
  :func:`changes_while_writing` answers the events after it that someone else caused (the
  comment handler then shows the page again with the warning, the kept text and a "send
  anyway" button, which posts ``send_anyway=1``).
- ``reply_macros``: the macros this user may apply here (buttons above the reply box).
- ``reply_tools``: staff get the ``::`` canned replies (``/static/replies.js``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from core.access.permissions import can
from core.desk import macros, replies
from core.directory.models import User
from core.tickets.models import Ticket, TicketEvent
from web.console.common import form_str
from web.i18n import Translator


def reply_box_context(
    db: Session, user: User, ticket: Ticket, events: Iterable[Any]
) -> dict[str, Any]:
    tools = replies.may_use(user)
    return {
        "reply_seen": replies.latest_event_id(events),
        "reply_tools": tools,
        "reply_macros": macros.usable_macros(db, user)
        if tools and can(user, "comment", ticket)
        else [],
    }


def change_words(tr: Translator, event: TicketEvent, staff: bool = True) -> str:
    """What an event did, in a few words, for the warning and the banner."""
    data = event.data or {}
    if event.type == "comment":
        return tr.gettext("a public comment")
    if event.type == "note":
        return tr.gettext("an internal note")
    if event.type == "email_in":
        return tr.gettext("an e-mail from the client")
    if event.type == "email_out":
        return tr.gettext("an e-mail sent")
    if event.type == "status" and not staff:
        return tr.gettext("the status")  # a client may not know a status by its name
    if event.type == "status":
        return tr.gettext("the status: %(status)s") % {"status": data.get("to", "")}
    if event.type == "assignment":
        return tr.gettext("the assignment")
    if event.type == "field":
        return tr.gettext("the fields")
    if event.type == "worklog":
        return tr.gettext("the work log")
    if event.type == "checklist":
        return tr.gettext("the checklist")
    return tr.gettext("the ticket")


def describe(
    tr: Translator, events: Iterable[TicketEvent], staff: bool = True
) -> list[dict[str, Any]]:
    return [
        {
            "id": e.id,
            "who": e.author.display if e.author is not None else tr.gettext("System"),
            "what": change_words(tr, e, staff),
        }
        for e in events
    ]


def changes_while_writing(
    db: Session, user: User, ticket: Ticket, data: Mapping[str, Any], tr: Translator
) -> list[dict[str, Any]]:
    """The changes to warn about before sending this comment form (none once the person
    chose "send anyway")."""
    if form_str(data, "send_anyway") == "1":
        return []
    changed = replies.changed_since(db, user, ticket, form_str(data, "seen"))
    return describe(tr, changed, user.is_staff)
