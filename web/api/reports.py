"""Reports as JSON or as files, under /api/v1/reports (docs/reports.md, "API").

``GET /api/v1/reports/sla?from=2026-03-01&to=2026-03-31&group_by=client`` answers
``{"rows": [...], "totals": {...}, "columns": [...], ...}`` (``Report.as_json``); the same
with ``format=csv`` or ``format=xlsx`` answers the file, named like
``pulpit-sla-2026-03.xlsx``. Likewise ``/worktime``, ``/backlog``, ``/workload``,
``/arrivals`` and ``/statement?client=NAME&month=YYYY-MM``.

Who: staff allowed the ``reports`` action see everything; a client's manager sees their
company's SLA, work time and statements (``Scope.for_user``), but not grouped by the desk's
people and not the desk's backlog; anyone else gets 403. A bad ``group_by``, date or format is
a 400 with a sentence. The helpers here are shared with the console's report pages
(``web.console.reports``), so both doors ask the same questions the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

from litestar import Response, get
from litestar.params import QueryParameter
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.directory.models import Client, User
from core.errors import N_, Forbidden, InputError, NotFound
from core.reports import backlog, sla, statement, worktime
from core.reports.base import REPORT_ZONE, Period, Report, Scope
from core.reports.export import FORMATS, filename, media_type, render
from web.deps import DB, CurrentUser

# Grouping by the desk's own people is for the desk: a client's manager reads their company's
# figures by contract, ticket type, ticket or month.
STAFF_ONLY_GROUPS = frozenset({"assignee", "technician"})

From = Annotated[str | None, QueryParameter(name="from", description="YYYY-MM-DD or YYYY-MM")]
To = Annotated[str | None, QueryParameter(name="to", description="YYYY-MM-DD or YYYY-MM")]
Format = Annotated[str | None, QueryParameter(name="format", description="csv or xlsx")]


def today() -> date:
    return utcnow().astimezone(REPORT_ZONE).date()


def period_of(start: str | None, end: str | None) -> Period:
    return Period.parse(start, end, today=today())


def group_of(value: str | None, groups: tuple[str, ...], scope: Scope) -> str:
    """The ``group_by`` asked for, the first of ``groups`` when left out."""
    group = (value or groups[0]).strip()
    if group not in groups:
        raise InputError(
            N_("group_by should be one of %(allowed)s, not %(value)r"),
            allowed=", ".join(groups),
            value=group,
        )
    if scope.client_id is not None and group in STAFF_ONLY_GROUPS:
        raise Forbidden(N_("your company's reports are not grouped by the desk's people"))
    return group


def format_of(value: str | None) -> str | None:
    if value is None or value == "" or value == "json":
        return None
    if value not in FORMATS:
        raise InputError(N_("format should be csv or xlsx, not %(value)r"), value=value)
    return value


def staff_scope(user: User) -> Scope:
    """Backlog, workload and arrivals are the desk's own: staff allowed ``reports`` only."""
    scope = Scope.for_user(user)
    if scope.client_id is not None:
        raise Forbidden(N_("the backlog and the workload are the desk's own reports"))
    return scope


def statement_client(db: Session, scope: Scope, name: str | None) -> Client:
    """The statement's client: a manager's own company (another's is refused); for staff the
    client named (by name, as everywhere in the API)."""
    if scope.client_id is not None:
        own = db.get(Client, scope.client_id)
        assert own is not None
        if name and name.strip() != own.name:
            raise Forbidden(N_("only a manager of your company sees its reports"))
        return own
    if not name or not name.strip():
        raise InputError(N_("say which client's statement you want (client=NAME)"))
    found = db.scalar(select(Client).where(Client.name == name.strip()))
    if found is None:
        raise NotFound(N_("there is no client %(name)r"), name=name.strip())
    return found


def month_period(month: str | None) -> Period:
    """A statement's month (YYYY-MM; left out: the month before this one, the one to bill)."""
    if month is None or not month.strip():
        first = today().replace(day=1)
        return Period.month_of(date.fromordinal(first.toordinal() - 1))
    text = month.strip()
    if len(text) != 7:
        raise InputError(N_("month should be YYYY-MM, not %(value)r"), value=text)
    return Period.parse(text, text, today=today())


def file_response(
    report: Report,
    fmt: str,
    gettext: Any = None,
    *,
    decimal: str = ".",
    more: Sequence[Report] = (),
) -> Response[bytes]:
    """The file, named for its report and period (``pulpit-sla-2026-03.xlsx``)."""
    name = filename(report, fmt)
    return Response(
        content=render(report, fmt, gettext, decimal=decimal, more=more),
        media_type=media_type(fmt),
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def answer(report: Report, fmt: str | None, more: Sequence[Report] = ()) -> Response[Any]:
    """JSON (no labels in it: columns are keys and kinds) or the file, in English."""
    if fmt is None:
        return Response(content=report.as_json())
    return file_response(report, fmt, more=more)


# --- Handlers --------------------------------------------------------------------------------


@get("/reports/sla", sync_to_thread=True, summary="SLA compliance for a period, grouped")
def get_sla(
    db: DB,
    user: CurrentUser,
    start: From = None,
    end: To = None,
    group_by: str | None = None,
    fmt: Format = None,
) -> Response[Any]:
    scope = Scope.for_user(user)
    report = sla.sla_report(db, period_of(start, end), group_of(group_by, sla.GROUPS, scope), scope)
    return answer(report, format_of(fmt))


@get("/reports/sla/tickets", sync_to_thread=True, summary="The tickets of one SLA group")
def get_sla_tickets(
    db: DB,
    user: CurrentUser,
    start: From = None,
    end: To = None,
    group_by: str | None = None,
    group_id: Annotated[str | None, QueryParameter(name="id")] = None,
    fmt: Format = None,
) -> Response[Any]:
    scope = Scope.for_user(user)
    group = group_of(group_by, sla.GROUPS, scope) if group_by else None  # None: every ticket
    report = sla.sla_tickets(db, period_of(start, end), group, group_id or "", scope)
    return answer(report, format_of(fmt))


@get("/reports/worktime", sync_to_thread=True, summary="Work time for a period, grouped")
def get_worktime(
    db: DB,
    user: CurrentUser,
    start: From = None,
    end: To = None,
    group_by: str | None = None,
    fmt: Format = None,
) -> Response[Any]:
    scope = Scope.for_user(user)
    report = worktime.worktime_report(
        db, period_of(start, end), group_of(group_by, worktime.GROUPS, scope), scope
    )
    return answer(report, format_of(fmt))


@get("/reports/backlog", sync_to_thread=True, summary="Open tickets by age")
def get_backlog(db: DB, user: CurrentUser, fmt: Format = None) -> Response[Any]:
    report = backlog.backlog_report(db, staff_scope(user), utcnow())
    return answer(report, format_of(fmt))


@get("/reports/workload", sync_to_thread=True, summary="Open tickets per assignee")
def get_workload(db: DB, user: CurrentUser, fmt: Format = None) -> Response[Any]:
    report = backlog.workload_report(db, staff_scope(user), utcnow())
    return answer(report, format_of(fmt))


@get("/reports/arrivals", sync_to_thread=True, summary="Arrivals and closures per week")
def get_arrivals(
    db: DB, user: CurrentUser, start: From = None, end: To = None, fmt: Format = None
) -> Response[Any]:
    scope = staff_scope(user)
    report = backlog.arrivals_report(db, period_of(start, end), scope)
    return answer(report, format_of(fmt))


@get("/reports/statement", sync_to_thread=True, summary="A client's billing statement")
def get_statement(
    db: DB,
    user: CurrentUser,
    client: str | None = None,
    month: str | None = None,
    fmt: Format = None,
) -> Response[Any]:
    scope = Scope.for_user(user)
    found = statement_client(db, scope, client)
    period, file_format = month_period(month), format_of(fmt)
    seen = scope.client_view
    report = statement.statement(db, found.id, period, language="en", client_view=seen)
    more = []
    if file_format == "xlsx":  # the bookkeeper's second sheet: the entries themselves
        more.append(
            statement.statement_entries(db, found.id, period, language="en", client_view=seen)
        )
    return answer(report, file_format, more)


report_handlers = [
    get_sla,
    get_sla_tickets,
    get_worktime,
    get_backlog,
    get_workload,
    get_arrivals,
    get_statement,
]
