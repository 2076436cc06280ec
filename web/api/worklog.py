"""The work log of the JSON API (docs/worklog.md): entries, their totals, changes and the timer.

``POST /tickets/{number}/worklog`` keeps its first contract (``minutes`` and ``note``; the
answer is the timeline event) and adds the entry; everything else says what
``core.worklog.services`` says, refusals included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Request, delete, get, patch, post
from sqlalchemy.orm import Session

from core.access.accounts import get_user_by_email
from core.access.permissions import can
from core.clock import utcnow
from core.directory.models import User
from core.errors import N_, Conflict, Forbidden, InputError
from core.tickets import services as tickets
from core.tickets.models import Ticket, TicketEvent
from core.worklog import services as wl
from core.worklog.models import WorkLogEntry, WorkTimer
from web.api.params import Id
from web.api.serializers import event_json, iso
from web.deps import DB, CurrentUser

# What PATCH may change; ``note`` is the first contract's name of ``description``.
CHANGEABLE = ("minutes", "started_at", "ended_at", "description", "billable", "work_type", "user")


@dataclass
class NewWork:
    """``minutes``, or ``started_at`` and ``ended_at`` (ISO 8601 with a zone); ``started_at``
    with ``minutes`` dates the work, neither: it ended now. ``billable`` defaults from the
    work type, else the contract; ``user`` (an e-mail) is for coordinators and admins."""

    minutes: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    note: str | None = None
    description: str | None = None
    billable: bool | None = None
    work_type: str | None = None
    user: str | None = None


@dataclass
class TimerAction:
    """``start``, ``stop`` (writes the entry, with the optional fields of an entry) or
    ``cancel``."""

    action: str
    description: str | None = None
    note: str | None = None
    billable: bool | None = None
    work_type: str | None = None


def utc(value: datetime | None) -> str | None:
    """In UTC, as stored (an entry just written still holds the zone it was given in)."""
    return iso(value.astimezone(UTC)) if value is not None else None


def edit_days(request: Request[Any, Any, Any]) -> int:
    return int(request.app.state.settings.worklog_edit_days)


def entry_json(entry: WorkLogEntry, viewer: User, now: datetime, days: int) -> dict[str, Any]:
    return {
        "id": entry.id,
        "user": entry.user.email,
        "user_name": entry.user.display,
        "started_at": utc(entry.started_at),
        "ended_at": utc(entry.ended_at),
        "minutes": entry.minutes,
        "description": entry.description,
        "billable": entry.billable,
        "work_type": entry.work_type.name if entry.work_type else None,
        # Our contract's prices are not a subcontractor's business.
        "rate": entry.rate if viewer.role != "subcontractor" else None,
        "amount": entry.amount if viewer.role != "subcontractor" else None,
        "created_at": iso(entry.created_at),
        "updated_at": iso(entry.updated_at),
        "event_id": entry.event_id,
        "may_change": wl.may_change(viewer, entry, now, days),
    }


def client_entry_json(entry: WorkLogEntry) -> dict[str, Any]:
    """What a client reads of an entry: when, how long, what was done."""
    return {
        "id": entry.id,
        "started_at": utc(entry.started_at),
        "minutes": entry.minutes,
        "description": entry.description,
    }


def totals_json(totals: wl.Totals, *, priced: bool = True) -> dict[str, Any]:
    return {
        "minutes": totals.minutes,
        "billable_minutes": totals.billable_minutes,
        "non_billable_minutes": totals.non_billable_minutes,
        "amount": totals.amount if priced else None,
        "people": [
            {"user": p.user.email, "minutes": p.minutes, "billable_minutes": p.billable_minutes}
            for p in totals.people
        ],
    }


def timer_json(db: Session, timer: WorkTimer | None) -> dict[str, Any] | None:
    if timer is None:
        return None
    ticket = db.get(Ticket, timer.ticket_id)
    return {"ticket": ticket.number if ticket else None, "started_at": iso(timer.started_at)}


def worker(db: Session, email: str | None) -> User | None:
    if not email:
        return None
    person = get_user_by_email(db, email)
    if person is None:
        raise InputError(N_("no user with e-mail %(email)r"), email=email)
    return person


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            N_("%(name)s must be an ISO 8601 time such as 2026-03-02T09:15:00+01:00"), name=name
        ) from None
    return parsed


def changed_work(db: Session, data: Mapping[str, Any]) -> wl.Work:
    """A PATCH body as a ``Work`` naming only what it gives; unknown keys and wrong types
    are refused with a sentence."""
    data = dict(data)
    if "note" in data:
        data.setdefault("description", data.pop("note"))
    unknown = sorted(set(data) - set(CHANGEABLE))
    if unknown:
        raise InputError(
            N_("unknown field %(name)s; known: %(known)s"),
            name=unknown[0],
            known=", ".join(CHANGEABLE),
        )
    minutes = data.get("minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)):
        raise InputError(N_("work time must be a whole number of minutes between 1 and 1440"))
    billable = data.get("billable")
    if "billable" in data and not isinstance(billable, bool):
        raise InputError(N_("billable must be true or false"))
    for key in ("description", "work_type", "user"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise InputError(N_("%(name)s must be text"), name=key)
    return wl.Work(
        minutes=minutes,
        started_at=_time(data.get("started_at"), "started_at"),
        ended_at=_time(data.get("ended_at"), "ended_at"),
        description=data.get("description"),
        billable=billable,
        work_type=data.get("work_type"),
        user=worker(db, data.get("user")),
        given=set(data),
    )


@post(
    "/tickets/{number:int}/worklog", sync_to_thread=True, status_code=201, summary="Log work time"
)
def add_worklog(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: NewWork
) -> dict[str, Any]:
    """The timeline event of the new entry (the first contract), with ``entry``."""
    ticket = tickets.get_ticket(db, number, user)
    entry = wl.log_work(
        db,
        ticket,
        actor=user,
        work=wl.Work(
            minutes=data.minutes,
            started_at=data.started_at,
            ended_at=data.ended_at,
            description=data.description if data.description is not None else data.note,
            billable=data.billable,
            work_type=data.work_type,
            user=worker(db, data.user),
        ),
    )
    event = db.get(TicketEvent, entry.event_id)
    assert event is not None
    db.commit()
    return {**event_json(event), "entry": entry_json(entry, user, utcnow(), edit_days(request))}


@get("/tickets/{number:int}/worklog", sync_to_thread=True, summary="The ticket's work log")
def list_worklog(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id
) -> dict[str, Any]:
    """Entries (newest work first) and totals; a client reads the billable entries when the
    contract shows them (``worklog_visible_to_client``), without who or at what rate."""
    ticket = tickets.get_ticket(db, number, user)
    if can(user, "worklog", ticket):
        rows = wl.entries(db, ticket)
        now, days = utcnow(), edit_days(request)
        timer = wl.running_timer(db, user)
        return {
            "entries": [entry_json(e, user, now, days) for e in rows],
            "totals": totals_json(wl.totals(rows), priced=user.role != "subcontractor"),
            "currency": ticket.contract.currency if ticket.contract else None,
            "timer": timer_json(db, timer),
        }
    if user.role == "client":
        shown = wl.client_entries(db, ticket)
        return {
            "entries": [client_entry_json(e) for e in shown],
            "totals": {"minutes": sum(e.minutes for e in shown)},
        }
    raise Forbidden(N_("you may not read the work log of ticket #%(number)s"), number=number)


@patch(
    "/tickets/{number:int}/worklog/{entry_id:int}",
    sync_to_thread=True,
    summary="Change a work log entry",
)
def change_worklog(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    number: Id,
    entry_id: Id,
    data: dict[str, Any],
) -> dict[str, Any]:
    """Change the fields given; ``changes`` lists them as ``{field: [before, after]}``."""
    ticket = tickets.get_ticket(db, number, user)
    entry = wl.get_entry(db, ticket, entry_id)
    days = edit_days(request)
    changes = wl.change_entry(
        db, ticket, entry, actor=user, work=changed_work(db, data), edit_days=days
    )
    db.commit()
    return {"entry": entry_json(entry, user, utcnow(), days), "changes": changes}


@delete(
    "/tickets/{number:int}/worklog/{entry_id:int}",
    sync_to_thread=True,
    status_code=204,
    summary="Delete a work log entry",
)
def delete_worklog(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, entry_id: Id
) -> None:
    ticket = tickets.get_ticket(db, number, user)
    entry = wl.get_entry(db, ticket, entry_id)
    wl.delete_entry(db, ticket, entry, actor=user, edit_days=edit_days(request))
    db.commit()


@post(
    "/tickets/{number:int}/timer",
    sync_to_thread=True,
    status_code=200,
    summary="Start, stop or cancel your timer",
)
def worklog_timer(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, data: TimerAction
) -> dict[str, Any]:
    """``timer`` is the one running after the action (null when none); ``stop`` also answers
    with the ``entry`` it wrote."""
    ticket = tickets.get_ticket(db, number, user)
    answer: dict[str, Any] = {}
    if data.action == "start":
        wl.start_timer(db, ticket, actor=user)
    elif data.action == "stop":
        entry = wl.stop_timer(
            db,
            ticket,
            actor=user,
            work=wl.Work(
                description=data.description if data.description is not None else data.note,
                billable=data.billable,
                work_type=data.work_type,
            ),
        )
        answer["entry"] = entry_json(entry, user, utcnow(), edit_days(request))
    elif data.action == "cancel":
        if not wl.cancel_timer(db, ticket, actor=user):
            raise Conflict(N_("no timer of yours runs on this ticket"))
    else:
        raise InputError(
            N_("action must be start, stop or cancel, not %(action)r"), action=data.action
        )
    answer["timer"] = timer_json(db, wl.running_timer(db, user))
    db.commit()
    return answer


worklog_handlers = [add_worklog, list_worklog, change_worklog, delete_worklog, worklog_timer]
