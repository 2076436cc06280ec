"""Writing the work log: entries, their edits and deletions, and the timer.

Every change is told on the ticket's timeline as a ``worklog`` event (``data.action``:
``logged``, ``changed`` with ``{field: [before, after]}``, or ``deleted``), and the ticket's
``worked_minutes``/``billable_minutes`` are kept as the sums of its entries, for the list.

Who may do what:
- log work: whoever may ``worklog`` on the ticket, for themselves; a coordinator or an
  administrator also for another staff or subcontractor user;
- change or delete an entry: its author for ``edit_days`` days after writing it
  (``PULPIT_WORKLOG_EDIT_DAYS``, 7 by default), coordinators and administrators always.

An entry's billable flag defaults to its work type's, else the contract's
(``Contract.worklog_billable``); its rate is copied from the work type, else the contract's
``hourly_rate``, when written (and again when its work type changes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from core.access.permissions import can, can_view
from core.clock import utcnow
from core.directory.models import User
from core.errors import N_, Conflict, Forbidden, InputError, NotFound
from core.tickets.models import Ticket
from core.tickets.timeline import append_event
from core.worklog.models import WorkLogEntry, WorkTimer, WorkType

EDIT_DAYS = 7
MAX_MINUTES = 24 * 60
DESCRIPTION_LIMIT = 4000
# Who changes anyone's entries and logs work for others (by base role).
MANAGERS = ("coordinator", "admin")
# Who may be named as the person who did the work.
WORKERS = ("technician", "coordinator", "admin", "subcontractor")


@dataclass
class Work:
    """What an entry says. For a new entry: ``minutes``, or ``started_at`` and ``ended_at``
    (``started_at`` alone with ``minutes`` dates it; neither: it ended now). For a change,
    only the attributes named in ``given`` are changed."""

    minutes: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    description: str | None = None
    billable: bool | None = None
    work_type: str | None = None
    user: User | None = None
    given: set[str] = field(default_factory=set)


def is_manager(user: User) -> bool:
    return user.role in MANAGERS


def work_types(session: Session, ticket: Ticket) -> list[WorkType]:
    """The ticket's contract's work types, in their order."""
    if ticket.contract_id is None:
        return []
    return list(
        session.scalars(
            select(WorkType)
            .where(WorkType.contract_id == ticket.contract_id)
            .order_by(WorkType.position, WorkType.name)
        )
    )


def _work_type(session: Session, ticket: Ticket, name: str | None) -> WorkType | None:
    if not name:
        return None
    for wt in work_types(session, ticket):
        if wt.name == name:
            return wt
    known = ", ".join(wt.name for wt in work_types(session, ticket))
    if not known:
        raise InputError(
            N_("ticket #%(number)s's contract has no work types"), number=ticket.number
        )
    raise InputError(
        N_("%(name)r is not a work type of this contract; known: %(known)s"),
        name=name,
        known=known,
    )


def _span(work: Work, now: datetime) -> tuple[datetime, datetime | None, int]:
    """(started_at, ended_at, minutes) of what ``work`` says, checked."""
    start, end, minutes = work.started_at, work.ended_at, work.minutes
    for value in (start, end):
        if value is not None and value.tzinfo is None:
            raise InputError(N_("give times with a time zone (2026-03-02T09:15:00+01:00)"))
    if end is not None:
        if start is None:
            raise InputError(N_("an end needs a start (or give minutes)"))
        if end <= start:
            raise InputError(N_("the work must end after it starts"))
        spanned = math.ceil((end - start).total_seconds() / 60)
        if minutes is not None and minutes != spanned:
            raise InputError(
                N_("give minutes, or a start and an end, not both (%(minutes)s ≠ %(spanned)s)"),
                minutes=minutes,
                spanned=spanned,
            )
        minutes = spanned
    if minutes is None:
        raise InputError(N_("say how long the work took: minutes, or a start and an end"))
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 < minutes <= MAX_MINUTES:
        raise InputError(N_("work time must be a whole number of minutes between 1 and 1440"))
    if start is None:
        start = now - timedelta(minutes=minutes)
    if start > now + timedelta(minutes=5):
        raise InputError(N_("work cannot be logged in the future"))
    return start, end, minutes


def _description(text: str | None) -> str | None:
    text = (text or "").strip()
    if len(text) > DESCRIPTION_LIMIT:
        raise InputError(
            N_("a description has at most %(limit)s characters"), limit=DESCRIPTION_LIMIT
        )
    return text or None


def _worker(actor: User, ticket: Ticket, person: User | None) -> User:
    if person is None or person.id == actor.id:
        return actor
    if not is_manager(actor):
        raise Forbidden(N_("only coordinators and administrators log work for someone else"))
    if person.role not in WORKERS or not person.active:
        raise InputError(
            N_("%(email)s is not an active staff or subcontractor user"), email=person.email
        )
    if not can_view(person, ticket):
        raise InputError(
            N_("%(email)s does not see ticket #%(number)s"),
            email=person.email,
            number=ticket.number,
        )
    return person


def pricing(ticket: Ticket, wt: WorkType | None) -> tuple[bool, int | None]:
    """The default billable flag and the rate for work of type ``wt`` on ``ticket``."""
    contract = ticket.contract
    billable = contract.worklog_billable if contract is not None else True
    rate = contract.hourly_rate if contract is not None else None
    if wt is not None:
        billable = wt.billable if wt.billable is not None else billable
        rate = wt.rate if wt.rate is not None else rate
    return billable, rate


def log_work(
    session: Session, ticket: Ticket, *, actor: User, work: Work, at: datetime | None = None
) -> WorkLogEntry:
    """Write one entry (and its timeline event); 403/400 with a sentence otherwise."""
    now = at or utcnow()
    if not can(actor, "worklog", ticket):
        raise Forbidden(N_("you may not log work on ticket #%(number)s"), number=ticket.number)
    person = _worker(actor, ticket, work.user)
    start, end, minutes = _span(work, now)
    wt = _work_type(session, ticket, work.work_type)
    billable, rate = pricing(ticket, wt)
    if work.billable is not None:
        billable = bool(work.billable)
    entry = WorkLogEntry(
        ticket_id=ticket.id,
        user=person,
        started_at=start,
        ended_at=end,
        minutes=minutes,
        description=_description(work.description),
        billable=billable,
        work_type=wt,
        rate=rate,
        created_at=now,
    )
    session.add(entry)
    session.flush()
    data: dict[str, Any] = {
        "action": "logged",
        "entry_id": entry.id,
        "minutes": minutes,
        "billable": billable,
        "started_at": start.isoformat(),
    }
    if wt is not None:
        data["work_type"] = wt.name
    if person.id != actor.id:
        data["for"] = person.email
    event = append_event(
        session, ticket, "worklog", author=actor, at=now, body_text=entry.description, data=data
    )
    session.flush()
    entry.event_id = event.id
    recount(session, ticket)
    return entry


def may_change(actor: User, entry: WorkLogEntry, now: datetime, edit_days: int) -> bool:
    """Whether ``actor`` may change or delete ``entry`` now."""
    if is_manager(actor):
        return True
    return entry.user_id == actor.id and now - entry.created_at <= timedelta(days=edit_days)


def check_change(
    actor: User, ticket: Ticket, entry: WorkLogEntry, now: datetime, edit_days: int
) -> None:
    if not can(actor, "worklog", ticket):
        raise Forbidden(N_("you may not log work on ticket #%(number)s"), number=ticket.number)
    if not may_change(actor, entry, now, edit_days):
        if entry.user_id != actor.id:
            raise Forbidden(N_("only coordinators and administrators change others' work"))
        raise Forbidden(
            N_("an entry can be changed for %(days)s days after it was written; ask a coordinator"),
            days=edit_days,
        )


def get_entry(session: Session, ticket: Ticket, entry_id: int) -> WorkLogEntry:
    entry = session.get(WorkLogEntry, entry_id)
    if entry is None or entry.ticket_id != ticket.id:
        raise NotFound(
            N_("ticket #%(number)s has no work log entry %(id)s"),
            number=ticket.number,
            id=entry_id,
        )
    return entry


def _state(entry: WorkLogEntry) -> dict[str, Any]:
    """What a change of the entry compares, by the names the timeline shows."""
    return {
        "minutes": entry.minutes,
        "started_at": entry.started_at,
        "ended_at": entry.ended_at,
        "description": entry.description,
        "billable": entry.billable,
        "work_type": entry.work_type.name if entry.work_type else None,
        "user": entry.user.email,
    }


def _shown(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def change_entry(
    session: Session,
    ticket: Ticket,
    entry: WorkLogEntry,
    *,
    actor: User,
    work: Work,
    at: datetime | None = None,
    edit_days: int = EDIT_DAYS,
) -> dict[str, list[Any]]:
    """Change what ``work.given`` names; returns the changes ({field: [before, after]}),
    told on the timeline (nothing when nothing changed)."""
    now = at or utcnow()
    check_change(actor, ticket, entry, now, edit_days)
    before = _state(entry)
    given = work.given
    start = (work.started_at if "started_at" in given else None) or entry.started_at
    minutes: int | None
    if "ended_at" in given:
        end, minutes = work.ended_at, work.minutes if "minutes" in given else None
    elif "minutes" in given:
        end, minutes = None, work.minutes
    elif entry.ended_at is not None:  # a moved start keeps the length
        end, minutes = start + timedelta(minutes=entry.minutes), None
    else:
        end, minutes = None, entry.minutes
    if end is None and minutes is None:
        minutes = entry.minutes
    timing = Work(minutes=minutes, started_at=start, ended_at=end)
    start, end, minutes = _span(timing, now)
    entry.started_at, entry.ended_at, entry.minutes = start, end, minutes
    if "description" in given:
        entry.description = _description(work.description)
    if "work_type" in given:
        wt = _work_type(session, ticket, work.work_type)
        if (wt.id if wt else None) != entry.work_type_id:
            entry.work_type = wt
            default_billable, entry.rate = pricing(ticket, wt)
            if "billable" not in given:
                entry.billable = default_billable
    if "billable" in given and work.billable is not None:
        entry.billable = bool(work.billable)
    if "user" in given and work.user is not None:
        entry.user = _worker(actor, ticket, work.user)
    after = _state(entry)
    changes = {k: [_shown(before[k]), _shown(after[k])] for k in before if before[k] != after[k]}
    if not changes:
        return {}
    entry.updated_at = now
    append_event(
        session,
        ticket,
        "worklog",
        author=actor,
        at=now,
        data={"action": "changed", "entry_id": entry.id, "changes": changes},
    )
    session.flush()
    recount(session, ticket)
    return changes


def delete_entry(
    session: Session,
    ticket: Ticket,
    entry: WorkLogEntry,
    *,
    actor: User,
    at: datetime | None = None,
    edit_days: int = EDIT_DAYS,
) -> None:
    now = at or utcnow()
    check_change(actor, ticket, entry, now, edit_days)
    append_event(
        session,
        ticket,
        "worklog",
        author=actor,
        at=now,
        data={
            "action": "deleted",
            "entry_id": entry.id,
            "minutes": entry.minutes,
            "billable": entry.billable,
            "user": entry.user.email,
            "started_at": entry.started_at.isoformat(),
        },
    )
    session.delete(entry)
    session.flush()
    recount(session, ticket)


def recount(session: Session, ticket: Ticket) -> None:
    """Store the sums of the ticket's entries on it (the list's column)."""
    worked, billable = session.execute(
        select(
            func.coalesce(func.sum(WorkLogEntry.minutes), 0),
            func.coalesce(
                func.sum(case((WorkLogEntry.billable.is_(True), WorkLogEntry.minutes), else_=0)),
                0,
            ),
        ).where(WorkLogEntry.ticket_id == ticket.id)
    ).one()
    ticket.worked_minutes, ticket.billable_minutes = int(worked), int(billable)


def entries(session: Session, ticket: Ticket, *, billable_only: bool = False) -> list[WorkLogEntry]:
    """The ticket's entries, newest work first, with their person and work type (the card
    and the API show both for every row)."""
    stmt = (
        select(WorkLogEntry)
        .where(WorkLogEntry.ticket_id == ticket.id)
        .options(selectinload(WorkLogEntry.user), selectinload(WorkLogEntry.work_type))
        .order_by(WorkLogEntry.started_at.desc(), WorkLogEntry.id.desc())
    )
    if billable_only:
        stmt = stmt.where(WorkLogEntry.billable.is_(True))
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class PersonTotal:
    user: User
    minutes: int
    billable_minutes: int


@dataclass(frozen=True)
class Totals:
    minutes: int
    billable_minutes: int
    amount: int | None  # minor units; None when no entry has a rate
    people: list[PersonTotal]

    @property
    def non_billable_minutes(self) -> int:
        return self.minutes - self.billable_minutes


def totals(rows: list[WorkLogEntry]) -> Totals:
    """Sums of these entries: all, billable, the amount, and per person (most first)."""
    by_person: dict[int, list[Any]] = {}
    amount: int | None = None
    for e in rows:
        slot = by_person.setdefault(e.user_id, [e.user, 0, 0])
        slot[1] += e.minutes
        slot[2] += e.minutes if e.billable else 0
        if e.amount is not None:
            amount = (amount or 0) + e.amount
    people = sorted(
        (PersonTotal(u, m, b) for u, m, b in by_person.values()),
        key=lambda p: (-p.minutes, p.user.email),
    )
    return Totals(
        minutes=sum(e.minutes for e in rows),
        billable_minutes=sum(e.minutes for e in rows if e.billable),
        amount=amount,
        people=people,
    )


def client_entries(session: Session, ticket: Ticket) -> list[WorkLogEntry]:
    """What the client sees of the work log: the billable entries, when the contract says
    so (``worklog_visible_to_client``); never the non-billable ones. Nothing is read when
    the contract shows none."""
    if ticket.contract is None or not ticket.contract.worklog_visible_to_client:
        return []
    return entries(session, ticket, billable_only=True)


# --- The timer ------------------------------------------------------------------------------


def running_timer(session: Session, user: User) -> WorkTimer | None:
    return session.scalar(select(WorkTimer).where(WorkTimer.user_id == user.id))


def start_timer(
    session: Session, ticket: Ticket, *, actor: User, at: datetime | None = None
) -> WorkTimer:
    """Start ``actor``'s timer on ``ticket``; one timer per person (409 while another runs)."""
    now = at or utcnow()
    if not can(actor, "worklog", ticket):
        raise Forbidden(N_("you may not log work on ticket #%(number)s"), number=ticket.number)
    timer = running_timer(session, actor)
    if timer is None:
        timer = WorkTimer(user_id=actor.id, ticket_id=ticket.id, started_at=now)
        try:
            # A savepoint: a second tab starting the same person's timer at the same moment
            # loses on the unique user_id, and is answered like any running timer below.
            with session.begin_nested():
                session.add(timer)
                session.flush()
            return timer
        except IntegrityError:
            timer = running_timer(session, actor)
            if timer is None:
                raise
    if timer.ticket_id == ticket.id:
        return timer
    other = session.get(Ticket, timer.ticket_id)
    raise Conflict(
        N_("your timer runs on ticket #%(number)s: stop it there first"),
        number=other.number if other else timer.ticket_id,
    )


def stop_timer(
    session: Session,
    ticket: Ticket,
    *,
    actor: User,
    work: Work | None = None,
    at: datetime | None = None,
) -> WorkLogEntry:
    """Stop ``actor``'s timer on ``ticket`` and write the entry it timed (at least a minute;
    longer than a day is refused: the timer was forgotten, log the real time by hand)."""
    now = at or utcnow()
    timer = running_timer(session, actor)
    if timer is None or timer.ticket_id != ticket.id:
        raise Conflict(N_("no timer of yours runs on this ticket"))
    minutes = max(1, math.ceil((now - timer.started_at).total_seconds() / 60))
    if minutes > MAX_MINUTES:
        raise Conflict(N_("the timer ran for more than a day: cancel it and log the time by hand"))
    work = work or Work()
    entry = log_work(
        session,
        ticket,
        actor=actor,
        work=Work(
            minutes=minutes,
            started_at=timer.started_at,
            description=work.description,
            billable=work.billable,
            work_type=work.work_type,
        ),
        at=now,
    )
    session.delete(timer)
    session.flush()
    return entry


def cancel_timer(session: Session, ticket: Ticket, *, actor: User) -> bool:
    """Throw ``actor``'s timer on ``ticket`` away; whether one ran."""
    timer = running_timer(session, actor)
    if timer is None or timer.ticket_id != ticket.id:
        return False
    session.delete(timer)
    session.flush()
    return True
