"""The ticket list: filters, sorting, paging and the bulk status change.

This is the page coordinators keep open all day, so its filters live in the URL (a filtered
view can be bookmarked and shared) and every list goes through ``core.tickets.queries.search_tickets``,
the same permission-scoped search the API uses.

Custom fields (issue 12): chosen fields show as columns (``columns=location,room``, kept per
user in the ``list_columns`` cookie so the list opens with them next time), and the filter form
takes ``field.<name>=value`` like the API (``TicketFilter.fields``). Rows show the checklist's
progress (``tickets.checklist_done``/``checklist_total``) and a "missing data" badge for an open
ticket missing a field its contract requires on open (a ticket opened by mail). Everything a
row shows is loaded with the page, in a constant number of statements whatever its size:
values are on the ticket row, definitions come in one query for the page's contracts
(``core.tickets.fields.definitions_by_contract``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlencode

from litestar import get
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import can, status_visible, ticket_scope
from core.clock import utcnow
from core.contracts.models import Contract, CustomField, Status
from core.directory.models import STAFF_ROLES, Client, User
from core.errors import BulkRefused, InputError, localized
from core.sla.clocks import is_overdue
from core.tickets import fields as ticket_fields
from core.tickets import search
from core.tickets.models import Ticket
from core.tickets.queries import MAX_PER_PAGE, SORTS, TicketFilter, search_tickets
from core.tickets.services import bulk_change_status
from web.console.common import clean_query, form_list, form_str, query_url
from web.console.forms import Console, CurrentConsole, FormDict, form_post
from web.console.views import views_bar
from web.console.worklog_view import hours_minutes
from web.i18n import Translator

PER_PAGE_CHOICES = (25, 50, 100, 200)
# The direction a column sorts in on its first click: deadlines soonest first, the rest newest.
FIRST_DIRECTION = {
    "number": "-",
    "subject": "",
    "deadline": "",
    "reaction": "",
    "resolution": "",
    "updated": "-",
    "created": "-",
}
QUERY_KEYS = (
    "state",
    "status",
    "client",
    "contract",
    "assignee",
    "key",
    "overdue",
    "q",
    "sort",
    "page",
    "per_page",
    "hide",  # the standard columns a saved view hides (web.console.views)
)


COLUMNS_COOKIE = "list_columns"
MAX_COLUMNS = 8
FIELD_PREFIX = "field."
# The work time column (worked / billable, issue 14): offered in the column picker beside the
# custom fields, to staff; its name cannot be a field's (field names start with a letter).
WORK_TIME = "_worktime"
# Who sees the checklist's progress (clients do not see checklists at all).
CHECKLIST_ROLES = ("admin", "coordinator", "technician", "subcontractor")


@dataclass(frozen=True)
class Row:
    ticket: Ticket
    overdue: bool
    values: Sequence[str] = ()  # the shown field columns' values, formatted ("" when empty)
    missing: Sequence[str] = ()  # labels of fields required on open that are empty


@dataclass(frozen=True)
class FieldColumn:
    """A custom field the user may read, as the list's picker, columns and filters offer it."""

    name: str
    label: str
    type: str
    options: list[str] = field(default_factory=list)


def _getall(query: Mapping[str, str], key: str) -> list[str]:
    getall = getattr(query, "getall", None)
    if getall is not None:
        return [str(v) for v in getall(key, [])]
    value = query.get(key)
    return [] if value is None else [value]


def readable_fields(db: Session, user: User, lang: str) -> dict[str, FieldColumn]:
    """Every custom field ``user`` may read, by name, in form order: an instance's field as
    itself, a contract's field by its first definition (one query). A name is readable when
    any of its definitions is, as ``core.tickets.queries.field_conditions`` filters."""
    rows = db.scalars(
        select(CustomField).order_by(
            CustomField.contract_id.is_not(None), CustomField.position, CustomField.name
        )
    )
    chosen: dict[str, CustomField] = {}
    for f in rows:
        if ticket_fields.field_visible(user, f):
            chosen.setdefault(f.name, f)
    ordered = sorted(chosen.values(), key=lambda f: (f.position or 0, f.name))
    return {
        f.name: FieldColumn(
            f.name, ticket_fields.label(f, lang), f.type, [str(o) for o in f.options or []]
        )
        for f in ordered
    }


def chosen_columns(
    query: Mapping[str, str], cookie: str | None, user: User, known: Mapping[str, FieldColumn]
) -> tuple[list[str], bool]:
    """The field columns to show and whether they came from the URL (then they are remembered).
    ``columns`` in the URL wins (``columns=`` shows none); otherwise the user's cookie
    (``<user id>:name|name``). The picker's checkboxes send ``columns`` once each, links send
    them comma-separated."""
    raw = _getall(query, "columns")
    explicit = bool(raw)
    if not explicit:
        prefix = f"{user.id}:"
        raw = [cookie[len(prefix) :]] if cookie and cookie.startswith(prefix) else []
    names: list[str] = []
    for part in raw:
        for name in part.replace("|", ",").split(","):
            name = name.strip()
            if name in known and name not in names:
                names.append(name)
    return names[:MAX_COLUMNS], explicit


def work_time(ticket: Ticket) -> str:
    """``1h 30m / 1h``: worked, then billable; empty when nothing is logged."""
    worked = ticket.worked_minutes or 0
    if not worked:
        return ""
    return f"{hours_minutes(worked)} / {hours_minutes(ticket.billable_minutes or 0)}"


def field_filters(query: Mapping[str, str], known: Mapping[str, FieldColumn]) -> dict[str, str]:
    """``field.<name>=value`` for fields the user may read, forgiving like the other filters:
    an unknown field or a number that is not one is left out rather than refused."""
    wanted: dict[str, str] = {}
    for key in query.keys():
        if not key.startswith(FIELD_PREFIX):
            continue
        name = key[len(FIELD_PREFIX) :]
        value = (query.get(key) or "").strip()
        column = known.get(name)
        if column is None or not value:
            continue
        if column.type == "number":
            try:
                float(value.replace(",", "."))
            except ValueError:
                continue
        wanted[name] = value
    return wanted


def format_value(value: Any, kind: str, tr: Translator) -> str:
    """A field's value as the list shows it: yes/no, lists joined, dates as dates."""
    if ticket_fields.is_empty(value):
        return ""
    if isinstance(value, bool):
        return tr.gettext("yes") if value else tr.gettext("no")
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if kind == "date":
        try:
            return date.fromisoformat(str(value)).strftime("%d.%m.%Y")
        except ValueError:
            return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def missing_on_open(
    db: Session, user: User, tickets: Sequence[Ticket], lang: str
) -> dict[int, list[str]]:
    """Labels of the fields required on open that each open ticket lacks (one query for the
    page's definitions), only those ``user`` may read."""
    candidates = [
        t
        for t in tickets
        if t.status_category != "closed"
        and t.contract is not None
        and any(when == "open" for when in (t.contract.required_fields or {}).values())
    ]
    if not candidates:
        return {}
    defs = ticket_fields.definitions_by_contract(db, {t.contract_id for t in candidates})
    missing: dict[int, list[str]] = {}
    for t in candidates:
        lacking = ticket_fields.missing_fields(
            defs[t.contract_id], t.contract, t.custom_fields, "open"
        )
        labels = [
            ticket_fields.label(f, lang) for f in lacking if ticket_fields.field_visible(user, f)
        ]
        if labels:
            missing[t.id] = labels
    return missing


def _flag(value: str | None) -> bool | None:
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value or "")
    except ValueError:
        return default
    return min(max(number, low), high)


def parse_filter(query: Mapping[str, str]) -> tuple[TicketFilter, dict[str, str]]:
    """The search for these query parameters, forgiving of bad values (a list must always
    show), and the cleaned parameters to rebuild links from."""
    params = {k: (query.get(k) or "").strip() for k in QUERY_KEYS}
    # A search from the header (no state chosen) looks through closed tickets too.
    default_state = "all" if params["q"] else "open"
    state = params["state"] if params["state"] in ("open", "closed", "all") else default_state
    sort = params["sort"] if params["sort"] in SORTS else "-number"
    per_page = _int(params["per_page"], 50, 1, MAX_PER_PAGE)
    f = TicketFilter(
        state=state,
        status=params["status"] or None,
        client=params["client"] or None,
        contract=params["contract"] or None,
        assignee=params["assignee"] or None,
        key=_flag(params["key"]),
        overdue=_flag(params["overdue"]),
        q=params["q"] or None,
        sort=sort,
        page=_int(params["page"], 1, 1, 1_000_000),
        per_page=per_page,
    )
    params.update(state=state, sort="" if sort == "-number" else sort)
    if per_page == 50:
        params["per_page"] = ""
    if state == "open":
        params["state"] = ""  # the default; keeps shared links short
    return f, params


def filter_options(db: Session, user: User) -> dict[str, Any]:
    """What the filter selects offer. Staff who see everything get every client and contract;
    everyone else only the ones of tickets they can see, so no other client's name leaks."""
    if user.role in ("admin", "coordinator"):
        clients = list(db.scalars(select(Client.name).order_by(Client.name)))
        contracts = list(db.scalars(select(Contract.code).order_by(Contract.code)))
    else:
        scope = ticket_scope(user)
        clients = list(
            db.scalars(
                select(Client.name)
                .join(Ticket, Ticket.client_id == Client.id)
                .where(scope)
                .distinct()
                .order_by(Client.name)
            )
        )
        contracts = list(
            db.scalars(
                select(Contract.code)
                .join(Ticket, Ticket.contract_id == Contract.id)
                .where(scope)
                .distinct()
                .order_by(Contract.code)
            )
        )
    staff: list[User] = []
    if user.is_staff:
        staff = list(
            db.scalars(
                select(User)
                .where(User.role.in_(STAFF_ROLES), User.active.is_(True))
                .order_by(User.name, User.email)
            )
        )
    return {
        "clients": clients,
        "contracts": contracts,
        "staff": staff,
        "status_names": status_names(db, user) if user.role != "client" else [],
    }


def status_names(db: Session, user: User | None = None) -> list[str]:
    """Every status name in use that ``user`` may see by name, in workflow order (a bulk
    change targets a name); a subcontractor only those ``visible_to_subcontractor``."""
    order = {"new": 0, "open": 1, "paused": 2, "closed": 3}
    seen: dict[str, tuple[int, int]] = {}
    query = select(Status.name, Status.category, Status.position)
    if user is not None and user.role == "subcontractor":
        query = query.where(Status.visible_to_subcontractor.is_(True))
    elif user is not None and user.role == "client":
        query = query.where(Status.visible_to_client.is_(True))
    for name, category, position in db.execute(query):
        key = (order.get(category, 9), position)
        seen[name] = min(seen.get(name, key), key)
    return sorted(seen, key=lambda n: (seen[n], n.casefold()))


def list_page(
    console: Console,
    query: Mapping[str, str],
    *,
    status_code: int = 200,
    **extra: Any,
) -> Template:
    db, user = console.db, console.user
    context: dict[str, Any] = {"selected": set(), "bulk_error": None, **extra}
    f, params = parse_filter(query)
    lang = console.tr.lang
    known = readable_fields(db, user, lang)
    offered = dict(known)
    if user.is_staff:
        offered[WORK_TIME] = FieldColumn(WORK_TIME, console.gettext("Work time"), "worktime")
    columns, explicit = chosen_columns(
        query, console.request.cookies.get(COLUMNS_COOKIE), user, offered
    )
    f.fields = field_filters(query, known)
    params["columns"] = ",".join(columns)
    params.update({FIELD_PREFIX + name: value for name, value in f.fields.items()})
    now = utcnow()
    result = search_tickets(db, user, f, now)
    if result.total and f.page > result.pages:  # a bookmarked page past the end: show the last
        f.page = result.pages
        result = search_tickets(db, user, f, now)
    staff_view = user.role != "client"
    missing = missing_on_open(db, user, result.items, lang) if staff_view else {}
    # The matching text of each hit, from what the user may read (core.tickets.search).
    context["snippets"] = search.snippets(db, user, result.items, f.q) if f.q else {}
    rows = [
        Row(
            t,
            is_overdue(t, now),
            [
                work_time(t)
                if name == WORK_TIME
                else format_value((t.custom_fields or {}).get(name), known[name].type, console.tr)
                for name in columns
            ],
            missing.get(t.id, []),
        )
        for t in result.items
    ]
    # The filter form offers a field's filter for each shown column and each field filtered by.
    filter_fields = [known[n] for n in known if n in columns or n in f.fields]
    first = (result.page - 1) * result.per_page + 1 if result.total else 0
    last = first + len(rows) - 1 if rows else 0

    def url(**changes: Any) -> str:
        if "page" not in changes:
            changes["page"] = None  # any other change starts from the first page
        return query_url("/tickets", params, **changes)

    response = console.render(
        "tickets_list.html",
        status_code=status_code,
        f=f,
        params=params,
        rows=rows,
        result=result,
        first=first,
        last=last,
        url=url,
        sort_url=lambda field: _sort_url(url, f.sort, field),
        sort_state=lambda field: _sort_state(f.sort, field),
        options=filter_options(db, user),
        can_bulk=can(user, "bulk"),
        # A status a client or subcontractor may not see shows by its category.
        status_hidden=lambda status: not status_visible(user, status),
        per_page_choices=PER_PAGE_CHOICES,
        query_string=query_url("", params, page=f.page if f.page > 1 else None).lstrip("?"),
        views_bar=views_bar(console, query, query_url("", params).lstrip("?")),
        field_columns=[offered[n] for n in columns],
        readable_fields=list(offered.values()),
        filter_fields=filter_fields,
        field_filter=f.fields,
        # Kept by the column picker's form: everything but the columns and the page.
        picker_params={k: v for k, v in params.items() if v and k not in ("columns", "page")},
        show_checklist=user.role in CHECKLIST_ROLES
        and any(t.checklist_total for t in result.items),
        **context,
    )
    if explicit:
        # Per user: the cookie names whose choice it is, so another login in the same
        # browser does not inherit it.
        response.set_cookie(
            COLUMNS_COOKIE,
            f"{user.id}:{'|'.join(columns)}",
            max_age=365 * 86400,
            path="/",
            httponly=True,
            samesite="lax",
        )
    return response


def _sort_state(current: str, field: str) -> str:
    if current.lstrip("-") != field:
        return "none"
    return "descending" if current.startswith("-") else "ascending"


def _sort_url(url: Any, current: str, field: str) -> str:
    if current == field:
        new = f"-{field}"
    elif current == f"-{field}":
        new = field
    else:
        new = FIRST_DIRECTION.get(field, "") + field
    return str(url(sort=None if new == "-number" else new))


@get("/", sync_to_thread=False, name="home")
def home() -> Redirect:
    return Redirect(path="/tickets", status_code=303)


@get("/tickets", sync_to_thread=True, name="tickets")
def tickets(console: CurrentConsole) -> Template | Redirect:
    query = console.request.query_params
    picked = query.getall("columns", [])
    if len(picked) > 1:
        # The column picker's form sends one ``columns`` per ticked box: go to the list's
        # own shape of the URL (``columns=location,room``), which its links then keep.
        names = [n.strip() for value in picked for n in value.split(",") if n.strip()]
        rest = [(k, v) for k, v in query.multi_items() if k != "columns"]
        target = urlencode([*rest, ("columns", ",".join(names))])
        return Redirect(path=f"/tickets?{target}", status_code=303)
    jump = _jump_to_number(console, query.get("q") or "")
    if jump is not None:
        return jump
    return list_page(console, query)


def _jump_to_number(console: Console, q: str) -> Redirect | None:
    """``#1042`` or ``1042`` in the search box opens that ticket when the user may see it;
    otherwise the list searches as usual (an unknown number finds nothing, telling nothing)."""
    number = search.ticket_number(q)
    if number is None:
        return None
    visible = console.db.scalar(
        select(Ticket.number).where(Ticket.number == number, ticket_scope(console.user))
    )
    return Redirect(path=f"/tickets/{number}", status_code=303) if visible is not None else None


@dataclass(frozen=True)
class BulkForm:
    """The list's bulk form: the ticked ticket numbers, the status, and the list's query."""

    numbers: list[int]
    status: str
    back: str

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> BulkForm:
        numbers = [
            int(raw.lstrip("#")) for raw in form_list(data, "numbers") if raw.lstrip("#").isdigit()
        ]
        return cls(numbers, form_str(data, "status"), clean_query(form_str(data, "back")))


def _bulk_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    """The list again, with the reason for each refused ticket and the same rows ticked."""
    form = BulkForm.read(kwargs["data"])
    reasons = (
        sorted((n, localized(e, console.gettext)) for n, e in exc.refusals.items())
        if isinstance(exc, BulkRefused)
        else []
    )
    return list_page(
        console,
        dict(parse_qsl(form.back)),
        status_code=exc.status_code,
        bulk_error={"message": console.refusal(exc), "reasons": reasons, "status": form.status},
        selected=set(form.numbers),
    )


@form_post("/tickets/bulk-status", refused=_bulk_refused)
def bulk_status(console: CurrentConsole, data: FormDict) -> Template | Redirect:
    """All or nothing (core.tickets.services.bulk_change_status): a refusal changes no ticket and the
    list comes back with the reason for each refused one and the same rows still ticked."""
    form = BulkForm.read(data)
    if not form.status:
        raise InputError(console.gettext("Choose the status to set."))
    changed = bulk_change_status(console.db, form.numbers, form.status, actor=console.user)
    n = len(changed)
    message = console.tr.ngettext(
        "Changed %(n)d ticket to %(status)s.", "Changed %(n)d tickets to %(status)s.", n
    ) % {"n": n, "status": form.status}
    return console.redirect("/tickets" + (f"?{form.back}" if form.back else ""), message)
