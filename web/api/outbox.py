"""The outbox for administrators: what went out, what failed and why, and sending it again.

``GET /api/v1/outbox?state=failed&limit=50`` lists outgoing mail newest first;
``POST /api/v1/outbox/{id}/resend`` gives a failed mail a new start (after the address or the
relay was fixed). Admins only: the rows carry every recipient's address. The same as
``pulpit mail outbox`` and ``pulpit mail resend``.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get, post
from litestar.params import QueryParameter

from core.clock import utcnow
from core.mail.outbox import check_access, list_outbound, outbound_json, resend
from web.api.params import Id, Limit
from web.deps import DB, CurrentUser


@get("/outbox", sync_to_thread=True, summary="Outgoing mail, newest first")
def get_outbox(
    db: DB,
    user: CurrentUser,
    state_filter: Annotated[str | None, QueryParameter(name="state")] = None,
    limit: Limit = 200,
) -> dict[str, Any]:
    check_access(user)
    rows = list_outbound(db, state=state_filter, limit=limit)
    return {"items": [outbound_json(row) for row in rows]}


@post(
    "/outbox/{outbound_id:int}/resend",
    sync_to_thread=True,
    status_code=200,
    summary="Send a failed mail again",
)
def post_resend(db: DB, user: CurrentUser, outbound_id: Id) -> dict[str, Any]:
    check_access(user)
    [row] = resend(db, [outbound_id], utcnow(), actor=user.email)
    db.commit()
    return outbound_json(row)


outbox_handlers = [get_outbox, post_resend]
