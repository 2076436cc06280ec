"""Notification preferences in the JSON API: ``GET/PUT /api/v1/me/preferences``.

The body is ``{"events": {kind: bool}, "clients": [name, ...], "products": [name, ...]}``;
a PUT replaces the whole set (a kind left out is on, empty lists mean every client and
product). ``ticket_ack`` is always on. Refusals are sentences in ``{"detail"}`` (400).
The rules are ``core.notify.preferences``'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import get, put

from core.notify.preferences import get_preferences, set_preferences
from web.deps import DB, CurrentUser


@dataclass
class PreferencesBody:
    events: dict[str, Any] = field(default_factory=dict)
    clients: list[Any] = field(default_factory=list)
    products: list[Any] = field(default_factory=list)


@get("/me/preferences", sync_to_thread=True, summary="The caller's notification preferences")
def get_my_preferences(user: CurrentUser) -> dict[str, Any]:
    return get_preferences(user).as_json()


@put(
    "/me/preferences", sync_to_thread=True, summary="Replace the caller's notification preferences"
)
def put_my_preferences(db: DB, user: CurrentUser, data: PreferencesBody) -> dict[str, Any]:
    prefs = set_preferences(
        db, user, events=data.events, clients=data.clients, products=data.products
    )
    db.commit()
    return prefs.as_json()


preference_handlers = [get_my_preferences, put_my_preferences]
