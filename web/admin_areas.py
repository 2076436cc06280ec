"""The admin console's areas, in its side menu's order: (path, label msgid). Here, outside
``web.console.admin``, so the template globals (``web.filters``) can name them without
importing the screens."""

from __future__ import annotations

from collections.abc import Sequence

ADMIN_AREAS: Sequence[tuple[str, str]] = (
    ("/admin/clients", "Clients"),
    ("/admin/contracts", "Contracts"),
    ("/admin/calendars", "Calendars"),
    ("/admin/fields", "Custom fields"),
    ("/admin/mailboxes", "Mailboxes"),
    ("/admin/subcontractors", "Subcontractors"),
    ("/admin/users", "Users"),
    ("/admin/roles", "Roles"),
)
