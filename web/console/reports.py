"""The report pages under /reports: SLA compliance (with the drill-down to the tickets), work
time, backlog and workload, and a client's billing statement; each with its chart and its
``Download CSV`` / ``Download XLSX`` links (the same query plus ``format=csv|xlsx``).

One set of pages for both doors, as everywhere in the console: staff allowed the ``reports``
action see every client; a client's manager (the portal) sees their company's SLA, work time
and statements, never the desk's people or backlog (``Scope.for_user``; the questions are
asked as in the API, ``web.api.reports``). The table is the data; the chart above it (SVG from
``web.charts``) says the same for the eye.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Response, get
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy import select

from core.clock import utcnow
from core.directory.models import Client, User
from core.errors import N_, InputError
from core.reports import backlog, sla, statement, worktime
from core.reports.base import Column, Period, Report, Scope
from core.reports.export import CELL_WORDS
from web.api.reports import (
    STAFF_ONLY_GROUPS,
    file_response,
    format_of,
    group_of,
    month_period,
    period_of,
    staff_scope,
    statement_client,
    today,
)
from web.charts import bar_chart, pair_chart
from web.console.forms import CurrentConsole, guarded

From = Annotated[str | None, QueryParameter(name="from")]
To = Annotated[str | None, QueryParameter(name="to")]
Format = Annotated[str | None, QueryParameter(name="format")]
Page = Template | Response[bytes]

GROUP_WORDS = {
    "client": N_("Client"),
    "contract": N_("Contract"),
    "ticket_type": N_("Ticket type"),
    "assignee": N_("Assignee"),
    "technician": N_("Technician"),
    "ticket": N_("Ticket"),
    "month": N_("Month"),
    "work_type": N_("Work type"),
}


def check_reports(user: User) -> None:
    Scope.for_user(user)


# --- Cells -----------------------------------------------------------------------------------


def _number(value: float, places: int, lang: str) -> str:
    text = f"{value:,.{places}f}"
    if lang == "pl":  # 1 234,50: a (non-breaking) space between thousands, a decimal comma
        text = text.replace(",", "\u00a0").replace(".", ",")
    return text


def hours(minutes: float) -> str:
    """Minutes as h:mm, the way a desk reads durations (1:30 is ninety minutes)."""
    whole = int(round(minutes))
    return f"{whole // 60}:{whole % 60:02d}"


def cell_text(column: Column, value: Any, gettext: Callable[[str], str], lang: str) -> str:
    """A value as the page shows it."""
    if value is None or value == "":
        return "–"
    kind = column.kind
    if kind == "minutes":
        return hours(value)
    if kind == "percent":
        return _number(float(value), 1, lang) + "%"
    if kind == "money":
        return _number(int(value) / 100, 2, lang)
    if kind == "count" and isinstance(value, int):
        return _number(value, 0, lang)
    if isinstance(value, str) and value in CELL_WORDS:
        return gettext(value)
    return str(value)


# --- The pages' shared shape -----------------------------------------------------------------


def _query(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _page(
    console: Any,
    template: str,
    *,
    report: Report,
    query: dict[str, Any],
    **context: Any,
) -> Template:
    lang = console.tr.lang
    return console.render(
        template,
        report=report,
        gt=console.gettext,
        cell=lambda column, value: cell_text(column, value, console.gettext, lang),
        downloads=_downloads(console.request.url.path, query),
        scope=Scope.for_user(console.user),
        query=query,
        **context,
    )


def _downloads(path: str, query: dict[str, Any]) -> dict[str, str]:
    return {fmt: f"{path}?{_query(**query, format=fmt)}" for fmt in ("csv", "xlsx")}


def _file(console: Any, report: Report, fmt: str, *more: Report) -> Response[bytes]:
    """The file in the reader's language (a Polish CSV has decimal commas)."""
    decimal = "," if console.tr.lang == "pl" else "."
    return file_response(report, fmt, console.gettext, decimal=decimal, more=more)


def _month_inputs(period: Period) -> tuple[str, str]:
    """The ``from`` and ``to`` month inputs' values for a period."""
    return period.start.strftime("%Y-%m"), period.end.strftime("%Y-%m")


def _recent_months(months: int) -> Period:
    """The default period of the SLA page: this month and the ``months - 1`` before it, so the
    chart has months to compare."""
    end = Period.month_of(today())
    start = end.start
    for _ in range(months - 1):
        start = Period.month_of(start - timedelta(days=1)).start
    return Period(start, end.end)


def _drill(query: dict[str, Any], row: dict[str, Any] | None) -> str:
    """The drill-down link of a row (its group's tickets) or of the totals (all of them)."""
    if row is None:
        return "/reports/sla/tickets?" + _query(**{**query, "group_by": None})
    return "/reports/sla/tickets?" + _query(**query, id=str(row["id"]))


def _groups(groups: tuple[str, ...], scope: Scope) -> list[tuple[str, str]]:
    return [
        (g, GROUP_WORDS.get(g, g))
        for g in groups
        if scope.client_id is None or g not in STAFF_ONLY_GROUPS
    ]


def _percent(lang: str) -> Callable[[float], str]:
    return lambda v: _number(v, 0, lang) + "%"


class ReportsPage(Controller):
    """Staff allowed ``reports`` and clients' managers (``check_reports``); the backlog is
    staff only (``staff_scope``)."""

    path = "/reports"
    dependencies = {"console": guarded(check_reports)}

    @get("/", sync_to_thread=True, name="reports")
    def index(self, console: CurrentConsole) -> Template:
        return console.render("reports/index.html", scope=Scope.for_user(console.user))

    @get("/sla", sync_to_thread=True)
    def sla_page(
        self,
        console: CurrentConsole,
        start: From = None,
        end: To = None,
        group_by: str | None = None,
        fmt: Format = None,
    ) -> Page:
        scope = Scope.for_user(console.user)
        period = period_of(start, end) if start or end else _recent_months(6)
        group = group_of(group_by, sla.GROUPS, scope)
        report = sla.sla_report(console.db, period, group, scope)
        file_format = format_of(fmt)
        if file_format:
            return _file(console, report, file_format)
        months = report if group == "month" else sla.sla_report(console.db, period, "month", scope)
        lang = console.tr.lang
        chart = bar_chart(
            "chart-sla",
            console.gettext(N_("Compliance per month")),
            console.gettext(N_("The table below has the same figures.")),
            [(str(r["key"]), r["compliance"]) for r in months.rows],
            fmt=_percent(lang),
            axis_label=console.gettext(N_("Compliance")) + " (%)",
            top=100,
            empty=console.gettext(N_("No tickets in this period.")),
        )
        month_from, month_to = _month_inputs(period)
        query = {"from": period.start.isoformat(), "to": period.end.isoformat(), "group_by": group}
        return _page(
            console,
            "reports/sla.html",
            report=report,
            query=query,
            chart=chart,
            groups=_groups(sla.GROUPS, scope),
            group_by=group,
            month_from=month_from,
            month_to=month_to,
            drill=lambda row: _drill(query, row),
        )

    @get("/sla/tickets", sync_to_thread=True)
    def sla_drill(
        self,
        console: CurrentConsole,
        start: From = None,
        end: To = None,
        group_by: str | None = None,
        group_id: Annotated[str | None, QueryParameter(name="id")] = None,
        fmt: Format = None,
    ) -> Page:
        scope = Scope.for_user(console.user)
        period = period_of(start, end)
        group = group_of(group_by, sla.GROUPS, scope) if group_by else None
        report = sla.sla_tickets(console.db, period, group, group_id or "", scope)
        file_format = format_of(fmt)
        if file_format:
            return _file(console, report, file_format)
        query = {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "group_by": group,
            "id": group_id,
        }
        back = "/reports/sla?" + _query(
            **{"from": query["from"], "to": query["to"], "group_by": group}
        )
        return _page(
            console,
            "reports/sla_tickets.html",
            report=report,
            query=query,
            back=back,
            group_word=GROUP_WORDS.get(group or "", ""),
            group_id=group_id,
            limit=sla.DRILL_LIMIT,
        )

    @get("/worktime", sync_to_thread=True)
    def worktime_page(
        self,
        console: CurrentConsole,
        start: From = None,
        end: To = None,
        group_by: str | None = None,
        fmt: Format = None,
    ) -> Page:
        scope = Scope.for_user(console.user)
        period = period_of(start, end)
        group = group_of(group_by, worktime.GROUPS, scope)
        report = worktime.worktime_report(console.db, period, group, scope)
        file_format = format_of(fmt)
        if file_format:
            return _file(console, report, file_format)
        # Staff see who did the work; a client's manager sees it per month.
        by = "technician" if scope.client_id is None else "month"
        per = report if group == by else worktime.worktime_report(console.db, period, by, scope)
        lang = console.tr.lang
        title = N_("Work time per technician") if by == "technician" else N_("Work time per month")
        chart = bar_chart(
            "chart-worktime",
            console.gettext(title),
            console.gettext(N_("The table below has the same figures.")),
            [
                (
                    str(cell_text(Column("k", "", "text"), r["key"], console.gettext, lang)),
                    (r.get("minutes") or 0) / 60,
                )
                for r in per.rows
            ],
            fmt=lambda v: _number(v, 1, lang) + " h",
            axis_label=console.gettext(N_("Hours")),
            empty=console.gettext(N_("No work logged in this period.")),
        )
        month_from, month_to = _month_inputs(period)
        query = {"from": period.start.isoformat(), "to": period.end.isoformat(), "group_by": group}
        return _page(
            console,
            "reports/worktime.html",
            report=report,
            query=query,
            chart=chart,
            groups=_groups(worktime.GROUPS, scope),
            group_by=group,
            month_from=month_from,
            month_to=month_to,
        )

    @get("/backlog", sync_to_thread=True)
    def backlog_page(
        self,
        console: CurrentConsole,
        start: From = None,
        end: To = None,
        part: str | None = None,
        fmt: Format = None,
    ) -> Page:
        scope = staff_scope(console.user)
        now = utcnow()
        period = period_of(start, end) if start or end else _recent_months(3)
        makers: dict[str, Callable[[], Report]] = {
            "backlog": lambda: backlog.backlog_report(console.db, scope, now),
            "workload": lambda: backlog.workload_report(console.db, scope, now),
            "arrivals": lambda: backlog.arrivals_report(console.db, period, scope),
        }
        file_format = format_of(fmt)
        if file_format:  # one table's file: only that report is computed
            wanted = (part or "backlog").strip()
            if wanted not in makers:
                raise InputError(
                    N_("part should be one of %(allowed)s, not %(value)r"),
                    allowed=", ".join(makers),
                    value=wanted,
                )
            return _file(console, makers[wanted](), file_format)
        reports = {name: make() for name, make in makers.items()}
        arrivals = reports["arrivals"]
        lang = console.tr.lang
        chart = pair_chart(
            "chart-arrivals",
            console.gettext(N_("Arrivals and closures per week")),
            console.gettext(N_("The table below has the same figures.")),
            [str(r["key"]) for r in arrivals.rows],
            [
                (console.gettext(N_("Arrivals")), [r.get("arrivals") or 0 for r in arrivals.rows]),
                (console.gettext(N_("Closures")), [r.get("closures") or 0 for r in arrivals.rows]),
            ],
            fmt=lambda v: _number(v, 0, lang),
            axis_label=console.gettext(N_("Tickets")),
            empty=console.gettext(N_("No tickets in this period.")),
        )
        month_from, month_to = _month_inputs(period)
        query = {"from": period.start.isoformat(), "to": period.end.isoformat()}
        return console.render(
            "reports/backlog.html",
            reports=reports,
            gt=console.gettext,
            cell=lambda column, value: cell_text(column, value, console.gettext, lang),
            downloads={
                name: _downloads("/reports/backlog", {**query, "part": name}) for name in reports
            },
            chart=chart,
            month_from=month_from,
            month_to=month_to,
            scope=scope,
        )

    @get("/statement", sync_to_thread=True)
    def statement_page(
        self,
        console: CurrentConsole,
        client: str | None = None,
        month: str | None = None,
        fmt: Format = None,
    ) -> Page:
        scope = Scope.for_user(console.user)
        period = month_period(month)
        clients: list[str] = []
        if scope.client_id is None:
            clients = list(console.db.scalars(select(Client.name).order_by(Client.name)))
            if not client:  # the form first: which client
                return console.render(
                    "reports/statement.html",
                    report=None,
                    clients=clients,
                    client="",
                    month=period.start.strftime("%Y-%m"),
                    scope=scope,
                )
        found = statement_client(console.db, scope, client)
        lang = console.tr.lang
        seen = scope.client_view
        report = statement.statement(console.db, found.id, period, language=lang, client_view=seen)
        file_format = format_of(fmt)
        if file_format == "xlsx":
            entries = statement.statement_entries(
                console.db, found.id, period, language=lang, client_view=seen
            )
            return _file(console, report, file_format, entries)
        if file_format:
            return _file(console, report, file_format)
        query = {"client": found.name, "month": period.start.strftime("%Y-%m")}
        return _page(
            console,
            "reports/statement.html",
            report=report,
            query=query,
            clients=clients,
            client=found.name,
            month=period.start.strftime("%Y-%m"),
        )
