"""Canned replies and macros in the JSON API (docs/replies.md). Staff only: a client's or a
subcontractor's token gets 403.

- ``GET /canned-replies``: the replies the token's user may use (``q`` filters shortcut and
  title, case- and accent-insensitive); with ``ticket=N`` each ``body`` is rendered for that
  ticket (placeholders filled), without it the stored text.
- ``GET /macros``: the macros the token's user may apply.
- ``POST /tickets/{number}/macros/{id}``: apply a macro, all or nothing; the answer is the
  ticket with the ``events`` the macro wrote.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import Parameter

from core.clock import utcnow
from core.desk import macros as desk_macros
from core.desk import replies as desk
from core.desk.models import CannedReply, Macro
from core.directory.models import User
from core.errors import N_, Forbidden
from core.tickets import services as svc
from web.api.params import MAX_ID, Id
from web.api.serializers import event_json, ticket_json
from web.deps import DB, CurrentUser


def _staff(user: User) -> None:
    if not desk.may_use(user):
        raise Forbidden(N_("canned replies and macros are for staff"))


def reply_json(reply: CannedReply, body: str) -> dict[str, Any]:
    return {
        "id": reply.id,
        "shortcut": reply.shortcut,
        "title": reply.title,
        "body": body,
        "shared": reply.owner_id is None,
        "roles": list(reply.roles or []) if reply.owner_id is None else [],
    }


def macro_json(macro: Macro) -> dict[str, Any]:
    return {
        "id": macro.id,
        "name": macro.name,
        "reply": macro.reply,
        "reply_public": macro.reply_public,
        "status": macro.status,
        "assignee": macro.assignee,
        "custom_fields": dict(macro.custom_fields or {}),
        "shared": macro.owner_id is None,
        "roles": list(macro.roles or []) if macro.owner_id is None else [],
    }


@get("/canned-replies", sync_to_thread=True, summary="The canned replies one may use")
def list_canned(
    db: DB,
    user: CurrentUser,
    q: str | None = None,
    ticket: Annotated[
        int | None, Parameter(ge=1, le=MAX_ID, description="fill the placeholders for this ticket")
    ] = None,
) -> dict[str, Any]:
    _staff(user)
    target = svc.get_ticket(db, ticket, user) if ticket is not None else None
    found = [r for r in desk.usable_replies(db, user) if desk.matches(r, q or "")]
    return {
        "items": [
            reply_json(r, desk.render(r.body, target, user) if target is not None else r.body)
            for r in found
        ]
    }


@get("/macros", sync_to_thread=True, summary="The macros one may apply")
def list_macros(db: DB, user: CurrentUser) -> dict[str, Any]:
    _staff(user)
    return {"items": [macro_json(m) for m in desk_macros.usable_macros(db, user)]}


@post(
    "/tickets/{number:int}/macros/{macro_id:int}",
    sync_to_thread=True,
    status_code=200,
    summary="Apply a macro to a ticket",
)
def apply_macro(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, number: Id, macro_id: Id
) -> dict[str, Any]:
    _staff(user)
    ticket = svc.get_ticket(db, number, user)
    applied = desk_macros.apply_macro(db, user, ticket, macro_id)
    db.commit()
    return {
        **ticket_json(ticket, user, utcnow(), str(request.app.state.settings.public_url)),
        "events": [event_json(e) for e in applied.events],
    }


replies_handlers = [list_canned, list_macros, apply_macro]
