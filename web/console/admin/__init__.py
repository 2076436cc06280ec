"""The admin console (issue 13): every configured object in the browser, one screen per area
(a list with search, a detail form), each in its own module exporting ``handlers``. Every save
goes through ``web.console.admin.common.save``: the YAML fragment equivalent to the form,
applied like ``pulpit config apply``."""

from __future__ import annotations

from litestar import get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from web.admin_areas import ADMIN_AREAS
from web.console.admin import (
    calendars,
    clients,
    contracts,
    fields,
    mailboxes,
    roles,
    subcontractors,
    users,
)
from web.console.admin.common import admin_console
from web.console.forms import CurrentConsole


@get("/admin", sync_to_thread=True, name="admin", dependencies={"console": admin_console})
def admin_index(console: CurrentConsole) -> Template:
    return console.render("admin/index.html", areas=ADMIN_AREAS)


admin_handlers: list[ControllerRouterHandler] = [
    admin_index,
    *clients.handlers,
    *contracts.handlers,
    *calendars.handlers,
    *fields.handlers,
    *mailboxes.handlers,
    *subcontractors.handlers,
    *users.handlers,
    *roles.handlers,
]

__all__ = ["admin_handlers"]
