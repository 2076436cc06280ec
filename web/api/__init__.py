"""The JSON API under /api/v1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import get
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text

from web.api.outbox import outbox_handlers
from web.api.people import people_handlers
from web.api.preferences import preference_handlers
from web.api.replies import replies_handlers
from web.api.reports import report_handlers
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


@dataclass
class Error:
    """The body of every error answer (docs/api.md): the status again and a sentence saying
    what was wrong. A refused bulk change adds ``reasons``, a sentence per ticket number."""

    status_code: int
    detail: str


@dataclass
class BulkError(Error):
    reasons: dict[str, str] | None = None


def _error(description: str, body: type[Error] = Error) -> ResponseSpec:
    return ResponseSpec(data_container=body, description=description, generate_examples=False)


# Declared on every operation: any of them may answer so (no token, another's ticket, a stale
# state). 400 is Litestar's own, for requests its validation refuses.
ERROR_RESPONSES: dict[int, ResponseSpec] = {
    401: _error("No or unknown token: send 'Authorization: Bearer <token>'"),
    403: _error("The token's user may not do this"),
    404: _error("No such thing, or not visible to the token's user"),
    409: _error("Refused in the current state; a bulk change adds reasons", BulkError),
    429: _error("Too many failed logins: try again after a cool-down"),
}


api_handlers = [
    health,
    me,
    *ticket_handlers,
    *substitution_handlers,
    *preference_handlers,
    *outbox_handlers,
    *people_handlers,
    *report_handlers,
    *replies_handlers,
]

for _handler in api_handlers:
    _handler.responses = {**ERROR_RESPONSES, **(_handler.responses or {})}
