"""Admin console: calendars (issue 13). See web/console/admin/__init__.py.

A calendar's form is the YAML entry of one calendar (``calendars: [{name, timezone, hours,
holidays, extra_holidays, day_length}]``) saved through ``common.save``; the name is the
natural key, so it is typed once, for a new calendar. The preview runs the SLA engine itself
(``core.sla.calendar.BusinessCalendar``, the same one ``core.sla.clocks`` computes deadlines
with): sample targets opened on the next Friday at 15:00, and the next days off.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import holidays as holidays_lib
from babel.dates import format_datetime, get_day_names
from litestar import Controller, get
from litestar.response import Redirect, Template
from sqlalchemy import func, select

from core.clock import utcnow
from core.configuration.errors import ConfigError, Problem
from core.contracts.models import Contract
from core.errors import N_, InputError, NotFound
from core.sla.calendar import BusinessCalendar, parse_duration
from core.sla.clocks import business_calendar
from core.sla.models import Calendar
from web.console.admin.common import (
    admin_console,
    history,
    problems,
    save,
    saved_message,
    what_it_would_do,
)
from web.console.forms import Console, CurrentConsole, FormDict, form_post

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_LABELS = {
    "mon": N_("Monday"),
    "tue": N_("Tuesday"),
    "wed": N_("Wednesday"),
    "thu": N_("Thursday"),
    "fri": N_("Friday"),
    "sat": N_("Saturday"),
    "sun": N_("Sunday"),
}
SAMPLE_TARGETS = ("4h", "1d")
PATH = "calendars[0]"


def zone_names() -> list[str]:
    """The IANA zones for the select: Europe first, then the rest, each alphabetically."""
    names = sorted(
        n
        for n in zoneinfo.available_timezones()
        if "/" in n and not n.startswith(("Etc/", "SystemV/"))
    )
    return (
        [n for n in names if n.startswith("Europe/")]
        + [n for n in names if not n.startswith("Europe/")]
        + ["UTC"]
    )


def _raw_list(data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [v.strip() for v in values if isinstance(v, str)]


@dataclass
class CalendarForm:
    """What the form holds, as typed (refilled after a refusal)."""

    name: str = ""
    timezone: str = "Europe/Warsaw"
    always: bool = False
    hours: dict[str, list[str]] | None = None
    holidays: str = ""
    extra_holidays: str = ""
    day_length: str = ""

    @classmethod
    def from_data(cls, data: Mapping[str, Any], name: str | None = None) -> CalendarForm:
        return cls(
            name=name if name is not None else str(data.get("name") or "").strip(),
            timezone=str(data.get("timezone") or "").strip(),
            always=bool(data.get("always")),
            hours={d: [v for v in _raw_list(data, f"hours_{d}") if v] for d in DAYS},
            holidays=str(data.get("holidays") or "").strip(),
            extra_holidays=str(data.get("extra_holidays") or "").strip(),
            day_length=str(data.get("day_length") or "").strip(),
        )

    @classmethod
    def from_calendar(cls, cal: Calendar) -> CalendarForm:
        always = isinstance(cal.hours, str)
        hours = {d: [] for d in DAYS} if always else {d: list(cal.hours.get(d) or []) for d in DAYS}
        engine = business_calendar(cal)
        day_length = engine.to_config().get("day_length", "")
        return cls(
            name=cal.name,
            timezone=cal.timezone,
            always=always,
            hours=hours,
            holidays=cal.holidays or "",
            extra_holidays="\n".join(str(d) for d in sorted(cal.extra_holidays or [])),
            day_length=str(day_length),
        )

    def entry(self) -> dict[str, Any]:
        """The calendar's YAML entry: every key the form shows, stated."""
        hours: Any = "24/7"
        if not self.always:
            hours = {d: list(v) for d, v in (self.hours or {}).items() if v}
        extra = [line.strip() for line in self.extra_holidays.replace(",", "\n").splitlines()]
        return {
            "name": self.name,
            "timezone": self.timezone or None,
            "hours": hours,
            "holidays": self.holidays.upper() or None,
            "extra_holidays": [d for d in extra if d],
            "day_length": self.day_length or None,
        }


def hours_summary(hours: Any, lang: str) -> list[tuple[str, str]]:
    """A calendar's week in short: consecutive days with the same intervals together
    (``[("pon.–pt.", "08:00-12:00, 12:30-16:00")]``); ``24/7`` as it is."""
    if isinstance(hours, str):
        return [("", hours)]
    names = get_day_names("abbreviated", locale="pl_PL" if lang == "pl" else "en_GB")
    groups: list[list[Any]] = []
    for index, day in enumerate(DAYS):
        text = ", ".join(hours.get(day) or [])
        if groups and groups[-1][2] == text and groups[-1][1] == index - 1:
            groups[-1][1] = index
        else:
            groups.append([index, index, text])
    return [
        (names[a] if a == b else f"{names[a]}–{names[b]}", text) for a, b, text in groups if text
    ]


def next_friday(now: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The next Friday 15:00 in ``zone`` after ``now``."""
    local = now.astimezone(zone)
    day = local.date() + timedelta(days=(4 - local.weekday()) % 7)
    start = datetime.combine(day, time(15, 0), tzinfo=zone)
    if start <= local:
        start += timedelta(days=7)
    return start


def preview(engine: BusinessCalendar, lang: str, now: datetime) -> dict[str, Any]:
    """Sample targets from the next Friday 15:00 (due times by the SLA engine) and the next
    five days off (public holidays of the country, extra days)."""
    zone = zoneinfo.ZoneInfo(engine.timezone)
    start = next_friday(now, zone)
    locale = "pl_PL" if lang == "pl" else "en_GB"

    def when(instant: datetime) -> str:
        return format_datetime(instant.astimezone(zone), "EEEE d MMM y, HH:mm", locale=locale)

    samples = []
    for target in SAMPLE_TARGETS:
        due = engine.add(start, parse_duration(target, engine))
        samples.append({"target": target, "start": when(start), "due": when(due)})
    return {"samples": samples, "days_off": days_off(engine, lang, now)}


def days_off(engine: BusinessCalendar, lang: str, now: datetime, count: int = 5) -> list[Any]:
    config = engine.to_config()
    today = now.astimezone(zoneinfo.ZoneInfo(engine.timezone)).date()
    found: dict[date, str] = {}
    code = config.get("holidays")
    if code:
        country, _, subdivision = str(code).partition("-")
        years = [today.year, today.year + 1]
        try:
            named = holidays_lib.country_holidays(
                country, subdiv=subdivision or None, years=years, language=lang
            )
        except (NotImplementedError, ValueError, TypeError):
            named = holidays_lib.country_holidays(country, subdiv=subdivision or None, years=years)
        found.update({d: str(n) for d, n in named.items()})
    for extra in config.get("extra_holidays", []):
        found.setdefault(date.fromisoformat(extra), "")
    return sorted((d, n) for d, n in found.items() if d >= today)[:count]


def refusal(path: str, message: str) -> ConfigError:
    """A screen's own refusal, shaped like apply's (shown under the field at ``path``)."""
    return ConfigError([Problem.of(0, "console", path, message)])


def _in_use(console: Console) -> dict[int, int]:
    rows = console.db.execute(
        select(Contract.calendar_id, func.count()).group_by(Contract.calendar_id)
    ).all()
    return {cid: n for cid, n in rows if cid is not None}


def _calendar(console: Console, calendar_id: int) -> Calendar:
    cal = console.db.get(Calendar, calendar_id)
    if cal is None:
        raise NotFound(N_("no such calendar"))
    return cal


def detail_page(
    console: Console,
    cal: Calendar | None,
    form: CalendarForm,
    *,
    status_code: int = 200,
    found: dict[str, str] | None = None,
    error: str | None = None,
    deadlines: int | None = None,
    typed: BusinessCalendar | None = None,
) -> Template:
    found = {path: console.gettext(text) for path, text in (found or {}).items()}
    fields = {
        key: found.pop(f"{PATH}.{key}")
        for key in ("name", "timezone", "hours", "holidays", "extra_holidays", "day_length")
        if f"{PATH}.{key}" in found
    }
    for path in list(found):  # e.g. calendars[0].extra_holidays[1]
        for key in ("extra_holidays", "hours"):
            if path.startswith(f"{PATH}.{key}"):
                fields.setdefault(key, found.pop(path))
    shown: dict[str, Any] | None = None
    if typed is not None or cal is not None:
        engine = typed if typed is not None else business_calendar(cal)
        shown = preview(engine, console.tr.lang, utcnow())
    contracts = (
        list(
            console.db.scalars(
                select(Contract).where(Contract.calendar_id == cal.id).order_by(Contract.code)
            )
        )
        if cal is not None
        else []
    )
    return console.render(
        "admin/calendars_detail.html",
        status_code=status_code,
        area="/admin/calendars",
        cal=cal,
        form=form,
        days=DAYS,
        day_labels=DAY_LABELS,
        zones=zone_names(),
        problems=fields,
        rest=found,
        error=error,
        deadlines=deadlines,
        preview=shown,
        typed=typed is not None,
        contracts=contracts,
        entries=history(console.db, "calendar", cal.name) if cal is not None else [],
    )


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    data = kwargs["data"]
    calendar_id = kwargs.get("calendar_id")
    cal = _calendar(console, calendar_id) if calendar_id is not None else None
    form = CalendarForm.from_data(data, cal.name if cal is not None else None)
    if isinstance(exc, ConfigError):
        return detail_page(console, cal, form, status_code=400, found=problems(exc, console))
    return detail_page(console, cal, form, status_code=exc.status_code, error=console.refusal(exc))


def _save(
    console: Console, cal: Calendar | None, form: CalendarForm, data: Mapping[str, Any]
) -> Template | Redirect:
    """Save the calendar; an edit that would move open tickets' deadlines is first shown with
    how many, and saved when confirmed (``action=confirm``)."""
    if not form.name:
        raise refusal(f"{PATH}.name", N_("a calendar needs a name"))
    change = {"calendars": [form.entry()]}
    if data.get("action") == "preview":
        # Checked like a save (problems under their fields), then shown, nothing saved.
        effect = what_it_would_do(console, change)
        entry = {k: v for k, v in form.entry().items() if k != "name" and v is not None}
        engine = BusinessCalendar.from_config({"timezone": "Europe/Warsaw", **entry})
        return detail_page(
            console, cal, form, deadlines=effect.recomputed_tickets or None, typed=engine
        )
    if cal is not None and data.get("action") != "confirm":
        effect = what_it_would_do(console, change)
        if effect.recomputed_tickets:
            return detail_page(console, cal, form, deadlines=effect.recomputed_tickets)
    result = save(console, change)
    console.db.flush()
    saved = console.db.scalar(select(Calendar).where(Calendar.name == form.name))
    assert saved is not None
    return console.redirect(f"/admin/calendars/{saved.id}", saved_message(console, result, data))


class CalendarsPage(Controller):
    path = "/admin/calendars"
    dependencies = {"console": admin_console}

    @get("/", sync_to_thread=True, name="admin_calendars")
    def index(self, console: CurrentConsole, q: str = "") -> Template:
        query = select(Calendar).order_by(Calendar.name)
        if q.strip():
            query = query.where(Calendar.name.ilike(f"%{q.strip()}%"))
        calendars = list(console.db.scalars(query))
        return console.render(
            "admin/calendars.html",
            area="/admin/calendars",
            q=q.strip(),
            calendars=calendars,
            in_use=_in_use(console),
            summaries={c.id: hours_summary(c.hours, console.tr.lang) for c in calendars},
        )

    @get("/new", sync_to_thread=True, name="admin_calendar_new")
    def new(self, console: CurrentConsole) -> Template:
        hours = {d: (["08:00-16:00"] if d not in ("sat", "sun") else []) for d in DAYS}
        return detail_page(console, None, CalendarForm(hours=hours, holidays="PL"))

    @form_post("/new", refused=_refused)
    def create(self, console: CurrentConsole, data: FormDict) -> Template | Redirect:
        form = CalendarForm.from_data(data)
        if console.db.scalar(select(Calendar.id).where(Calendar.name == form.name)):
            raise refusal(f"{PATH}.name", N_("a calendar with this name exists already"))
        return _save(console, None, form, data)

    @get("/{calendar_id:int}", sync_to_thread=True, name="admin_calendar")
    def show(self, console: CurrentConsole, calendar_id: int) -> Template:
        cal = _calendar(console, calendar_id)
        return detail_page(console, cal, CalendarForm.from_calendar(cal))

    @form_post("/{calendar_id:int}", refused=_refused)
    def update(
        self, console: CurrentConsole, calendar_id: int, data: FormDict
    ) -> Template | Redirect:
        cal = _calendar(console, calendar_id)
        return _save(console, cal, CalendarForm.from_data(data, cal.name), data)


handlers = [CalendarsPage]

__all__ = ["handlers", "refusal"]
