"""The JSON API under /api/v1."""

from __future__ import annotations

from typing import Any

from litestar import get
from sqlalchemy import text

from web.api.outbox import outbox_handlers
from web.api.people import people_handlers
from web.api.preferences import preference_handlers
from web.api.serializers import user_json
from web.api.substitutions import substitution_handlers
from web.api.tickets import ticket_handlers
from web.deps import DB, CurrentUser


@get("/health", sync_to_thread=True, summary="Liveness: the database answers")
def health(db: DB) -> dict[str, Any]:
    db.execute(text("SELECT 1"))
    return {"status": "ok"}


@get("/me", sync_to_thread=True, summary="The token's user")
def me(user: CurrentUser) -> dict[str, Any]:
    return user_json(user)


api_handlers = [
    health,
    me,
    *ticket_handlers,
    *substitution_handlers,
    *preference_handlers,
    *outbox_handlers,
    *people_handlers,
]
