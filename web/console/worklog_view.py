"""The work log card's view: what the ticket page shows of the work log (entries, totals,
the timer, the form's choices) and how its timeline events read. The handlers are in
``web.console.worklog``; the ticket page (``web.console.ticket_detail``) imports only this."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency, get_currency_precision
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import can, can_view
from core.directory.models import User
from core.tickets.models import Ticket, TicketEvent
from core.worklog import services as wl
from core.worklog.models import WorkType
from web.filters import DISPLAY_TZ
from web.i18n import Translator

FORM_TIME = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends and shows


def hours_minutes(minutes: int | None) -> str:
    """``1h 30m``, ``45m``, ``2h``: a duration as the work log and the list show it."""
    hours, rest = divmod(int(minutes or 0), 60)
    if hours and rest:
        return f"{hours}h {rest}m"
    return f"{hours}h" if hours else f"{rest}m"


def money(amount: int | None, currency: str, lang: str) -> str:
    """Minor units (grosze, cents) as the language writes the currency: ``1 234,50 zł``."""
    if amount is None:
        return ""
    value = Decimal(amount).scaleb(-get_currency_precision(currency))
    return format_currency(value, currency, locale="pl_PL" if lang == "pl" else "en_GB")


def form_time(value: datetime | None) -> str:
    return value.astimezone(DISPLAY_TZ).strftime(FORM_TIME) if value else ""


def type_label(wt: WorkType, lang: str) -> str:
    return str((wt.labels or {}).get(lang) or wt.name)


def workers(db: Session, ticket: Ticket) -> list[User]:
    """Who a coordinator may log work for: active staff and subcontractor users who see the
    ticket (``core.worklog.services`` refuses the others)."""
    people = db.scalars(
        select(User)
        .where(User.role.in_(wl.WORKERS), User.active.is_(True))
        .order_by(User.name, User.email)
    )
    return [u for u in people if can_view(u, ticket)]


def worklog_context(
    db: Session, user: User, ticket: Ticket, now: datetime, lang: str, edit_days: int
) -> dict[str, Any]:
    """What the work log card shows this user: everything for who may log work, the
    billable entries for a client when the contract shows them, nothing to anyone else."""
    currency = ticket.contract.currency if ticket.contract else "PLN"
    if not can(user, "worklog", ticket):
        shown = wl.client_entries(db, ticket) if user.role == "client" else []
        return {
            "client_work": shown,
            "client_work_total": sum(e.minutes for e in shown),
            "hours_minutes": hours_minutes,
        }
    rows = wl.entries(db, ticket)
    timer = wl.running_timer(db, user)
    timer_ticket = db.get(Ticket, timer.ticket_id) if timer is not None else None
    types = wl.work_types(db, ticket)
    default_billable, _rate = wl.pricing(ticket, None)
    return {
        "work_entries": rows,
        "work_totals": wl.totals(rows),
        "work_types": types,
        # The billable flag each work type defaults to, for the form's checkbox.
        "type_billable": {wt.name: wl.pricing(ticket, wt)[0] for wt in types},
        "work_type_label": lambda wt: type_label(wt, lang),
        "work_default_billable": default_billable,
        "work_workers": workers(db, ticket) if wl.is_manager(user) else [],
        "may_change": lambda e: wl.may_change(user, e, now, edit_days),
        "timer": timer,
        "timer_ticket": timer_ticket,
        "now_local": form_time(now),
        "form_time": form_time,
        "entry_end": lambda e: e.ended_at or e.started_at + timedelta(minutes=e.minutes),
        "hours_minutes": hours_minutes,
        "money": lambda amount: money(amount, currency, lang),
        "edit_days": edit_days,
        # Our contract's prices are not the subcontractor's business.
        "show_amount": user.role != "subcontractor",
    }


# --- How the timeline tells of it -----------------------------------------------------------


def change_rows(event: TicketEvent, tr: Translator) -> list[tuple[str, str, str]]:
    """A ``changed`` worklog event's changes as (label, before, after), readable."""
    labels = {
        "minutes": tr.gettext("duration"),
        "started_at": tr.gettext("start"),
        "ended_at": tr.gettext("end"),
        "description": tr.gettext("description"),
        "billable": tr.gettext("billable"),
        "work_type": tr.gettext("work type"),
        "user": tr.gettext("person"),
    }

    def shown(key: str, value: Any) -> str:
        if value is None or value == "":
            return "—"
        if key == "minutes":
            return hours_minutes(int(value))
        if key == "billable":
            return tr.gettext("yes") if value else tr.gettext("no")
        if key in ("started_at", "ended_at"):
            try:
                return (
                    datetime.fromisoformat(str(value))
                    .astimezone(DISPLAY_TZ)
                    .strftime("%d.%m %H:%M")
                )
            except ValueError:
                return str(value)
        return str(value)

    return [
        (labels.get(key, key), shown(key, pair[0]), shown(key, pair[1]))
        for key, pair in (event.data.get("changes") or {}).items()
        if isinstance(pair, list) and len(pair) == 2
    ]
