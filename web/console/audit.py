"""The audit log for administrators: who changed what outside tickets (configuration, users,
tokens, substitutions, logins, exports, erasures), newest first, filtered by action, actor and
dates, a page at a time. It lists whatever ``core.audit.AuditEntry`` holds."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from litestar import Controller, get
from litestar.response import Template

from core.privacy.people import audit_actions, audit_log, check_access
from web.console.common import query_url
from web.console.forms import CurrentConsole, guarded
from web.filters import DISPLAY_TZ

PER_PAGE = 50


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def _start(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), tzinfo=DISPLAY_TZ) if day is not None else None


class AuditPage(Controller):
    """Administrators only."""

    path = "/audit"
    dependencies = {"console": guarded(check_access)}

    @get("/", sync_to_thread=True, name="audit")
    def show(
        self,
        console: CurrentConsole,
        action: str = "",
        actor: str = "",
        since: str = "",
        until: str = "",
        page: str = "1",
    ) -> Template:
        first, last = _day(since), _day(until)
        number = int(page) if page.isdigit() else 1
        result = audit_log(
            console.db,
            action=action.strip(),
            actor=actor,
            since=_start(first),
            until=_start(last + timedelta(days=1)) if last is not None else None,
            page=number,
            per_page=PER_PAGE,
        )
        params = {
            "action": action.strip(),
            "actor": actor.strip(),
            "since": first.isoformat() if first else "",
            "until": last.isoformat() if last else "",
        }
        return console.render(
            "audit.html",
            result=result,
            params=params,
            actions=audit_actions(console.db),
            prev_url=query_url("/audit", params, page=result.page - 1) if result.page > 1 else None,
            next_url=query_url("/audit", params, page=result.page + 1)
            if result.page < result.pages
            else None,
        )
