"""The work log card of the ticket page: log work (minutes, or start and end), change and
delete entries, the timer, and the totals.

The page's forms post here and come back to ``#worklog`` (POST/redirect/GET); a refusal
re-renders the ticket page with the sentence and what was typed. Times typed into the
form are wall-clock times in the console's zone (``web.filters.DISPLAY_TZ``); the rules are
``core.worklog.services``'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from litestar import get
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import can_view
from core.clock import utcnow
from core.directory.models import User
from core.errors import InputError
from core.tickets.models import Ticket
from core.tickets.services import get_ticket
from core.worklog import services as wl
from core.worklog.models import WorkLogEntry
from web.console.forms import URLENCODED, ActingTicket, Console, CurrentConsole, Form, form_post
from web.console.worklog_view import (
    FORM_TIME,
    hours_minutes,
    worklog_context,
)
from web.filters import DISPLAY_TZ
from web.i18n import Translator

# --- The forms --------------------------------------------------------------------------------


@dataclass
class EntryForm(Form):
    # "minutes" (how long, finished at "when") or "span" (from "start" to "end").
    mode: str = "minutes"
    minutes: str = ""
    when: str = ""
    start: str = ""
    end: str = ""
    description: str = ""
    # The note of the first form (the API's name); the same as the description.
    note: str = ""
    billable: str = ""
    work_type: str = ""
    worker: str = ""
    action: str = ""  # the timer's buttons: start, stop, cancel


def _local(value: str, label: str, tr: Translator) -> datetime:
    try:
        return datetime.strptime(value, FORM_TIME).replace(tzinfo=DISPLAY_TZ)
    except ValueError:
        try:  # a browser without datetime-local, or seconds typed by hand
            return datetime.fromisoformat(value).replace(tzinfo=DISPLAY_TZ)
        except ValueError:
            raise InputError(
                tr.gettext("Enter %(field)s as a date and time, e.g. 2026-03-02 09:15.")
                % {"field": label}
            ) from None


def form_work(db: Session, data: EntryForm, tr: Translator, now: datetime) -> wl.Work:
    """The form as a ``Work``: every field given (an edit sends the whole entry)."""
    work = wl.Work(
        description=data.description or data.note,
        billable=data.billable == "1",
        work_type=data.work_type or None,
        given={"description", "billable", "work_type"},
    )
    if data.mode == "span":
        if not data.start or not data.end:
            raise InputError(tr.gettext("Enter both the start and the end of the work."))
        work.started_at = _local(data.start, tr.gettext("the start"), tr)
        work.ended_at = _local(data.end, tr.gettext("the end"), tr)
        work.given |= {"started_at", "ended_at"}
    else:
        if not data.minutes.isdigit():
            raise InputError(tr.gettext("Enter the work time in whole minutes, e.g. 45."))
        work.minutes = int(data.minutes)
        ended = _local(data.when, tr.gettext("when"), tr) if data.when else now
        work.started_at = ended - timedelta(minutes=work.minutes)
        work.given |= {"minutes", "started_at", "ended_at"}
    if data.worker:
        person = db.scalar(select(User).where(User.email == data.worker))
        if person is None:
            raise InputError(tr.gettext("Choose who did the work."))
        work.user = person
        work.given.add("user")
    return work


def edit_days(console: Console) -> int:
    return int(console.request.app.state.settings.worklog_edit_days)


def _draft(data: EntryForm) -> dict[str, str]:
    """What was typed, for the form shown again (``wl_typed`` says it was)."""
    draft = {"wl_" + k: str(getattr(data, k)) for k in EntryForm.__dataclass_fields__}
    draft["wl_description"] = data.description or data.note
    return draft | {"wl_typed": "1"}


def logged(tr: Translator, minutes: int) -> str:
    return tr.ngettext("Logged %(n)d minute of work.", "Logged %(n)d minutes of work.", minutes) % {
        "n": minutes
    }


def _refused_on_ticket(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    from web.console.ticket_detail import detail_page

    return detail_page(
        console,
        int(console.request.path_params["number"]),
        status_code=exc.status_code,
        error=console.refusal(exc),
        draft=_draft(kwargs["data"]),
    )


def _back(console: Console, ticket: Ticket, message: str) -> Redirect:
    if not can_view(console.user, ticket):
        return console.redirect("/tickets", message)
    return console.redirect(f"/tickets/{ticket.number}#worklog", message)


@form_post("/tickets/{number:int}/worklog", refused=_refused_on_ticket)
def post_worklog(
    console: CurrentConsole, ticket: ActingTicket, data: Annotated[EntryForm, URLENCODED]
) -> Template | Redirect:
    """Log an entry; the timer's buttons post here too (``action``), so that stopping the
    timer takes the description, billable flag and work type typed in the same form."""
    if data.action:
        return _timer(console, ticket, data)
    now = utcnow()
    work = form_work(console.db, data, console.tr, now)
    entry = wl.log_work(console.db, ticket, actor=console.user, work=work, at=now)
    return _back(console, ticket, logged(console.tr, entry.minutes))


def _timer(console: Console, ticket: Ticket, data: EntryForm) -> Redirect:
    db, user, tr = console.db, console.user, console.tr
    if data.action == "start":
        wl.start_timer(db, ticket, actor=user)
        return _back(console, ticket, tr.gettext("Timer started."))
    if data.action == "stop":
        entry = wl.stop_timer(
            db,
            ticket,
            actor=user,
            work=wl.Work(
                description=data.description or data.note,
                billable=data.billable == "1",
                work_type=data.work_type or None,
            ),
        )
        return _back(console, ticket, logged(tr, entry.minutes))
    if data.action == "cancel":
        if wl.cancel_timer(db, ticket, actor=user):
            return _back(console, ticket, tr.gettext("Timer cancelled; nothing was logged."))
        return _back(console, ticket, tr.gettext("No timer of yours runs on this ticket."))
    raise InputError(tr.gettext("Choose start, stop or cancel for the timer."))


@get("/tickets/{number:int}/worklog/{entry_id:int}", sync_to_thread=True)
def edit_entry_page(console: CurrentConsole, number: int, entry_id: int) -> Template:
    """A small page to change one entry (the ticket page lists them)."""
    return _edit_page(console, number, entry_id)


def _edit_page(
    console: Console,
    number: int,
    entry_id: int,
    *,
    status_code: int = 200,
    error: str | None = None,
    draft: Mapping[str, str] | None = None,
) -> Template:
    ticket = get_ticket(console.db, number, console.user)
    entry = wl.get_entry(console.db, ticket, entry_id)
    now = utcnow()
    context = worklog_context(
        console.db, console.user, ticket, now, console.tr.lang, edit_days(console)
    )
    wl.check_change(console.user, ticket, entry, now, edit_days(console))
    return console.render(
        "worklog_edit.html",
        status_code=status_code,
        ticket=ticket,
        entry=entry,
        error=error,
        draft=draft or {},
        **context,
    )


def _refused_on_entry(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    params = console.request.path_params
    return _edit_page(
        console,
        int(params["number"]),
        int(params["entry_id"]),
        status_code=exc.status_code,
        error=console.refusal(exc),
        draft=_draft(kwargs["data"]),
    )


@form_post("/tickets/{number:int}/worklog/{entry_id:int}", refused=_refused_on_entry)
def post_entry_change(
    console: CurrentConsole,
    ticket: ActingTicket,
    entry_id: int,
    data: Annotated[EntryForm, URLENCODED],
) -> Template | Redirect:
    entry = wl.get_entry(console.db, ticket, entry_id)
    now = utcnow()
    changes = wl.change_entry(
        console.db,
        ticket,
        entry,
        actor=console.user,
        work=form_work(console.db, data, console.tr, now),
        at=now,
        edit_days=edit_days(console),
    )
    message = (
        console.gettext("Work log entry saved.")
        if changes
        else console.gettext("The entry has not changed.")
    )
    return _back(console, ticket, message)


def _refused_delete(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    from web.console.ticket_detail import detail_page

    return detail_page(
        console,
        int(console.request.path_params["number"]),
        status_code=exc.status_code,
        error=console.refusal(exc),
    )


@form_post("/tickets/{number:int}/worklog/{entry_id:int}/delete", refused=_refused_delete)
def post_entry_delete(
    console: CurrentConsole, ticket: ActingTicket, entry_id: int
) -> Template | Redirect:
    entry: WorkLogEntry = wl.get_entry(console.db, ticket, entry_id)
    minutes = entry.minutes
    wl.delete_entry(console.db, ticket, entry, actor=console.user, edit_days=edit_days(console))
    message = console.gettext("Deleted the entry of %(duration)s.") % {
        "duration": hours_minutes(minutes)
    }
    return _back(console, ticket, message)


worklog_handlers = [post_worklog, edit_entry_page, post_entry_change, post_entry_delete]
