"""The outbox page for administrators: outgoing mail by state, the relay's last answer, and a
button that sends a failed mail again (``core.mail.outbox.resend``; the same as ``pulpit mail
resend`` and ``POST /api/v1/outbox/{id}/resend``). Failed mail is shown first: it is what an
administrator comes here for."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from core.clock import utcnow
from core.errors import InputError
from core.mail.outbox import STATES, check_access, list_outbound, resend
from web.console.common import console_session, error_page, redirect, render, translator
from web.console.profile import URLENCODED
from web.deps import DB, CurrentUser, check_csrf

PAGE_SIZE = 200


@get("/outbox", sync_to_thread=True, name="outbox")
def outbox(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, show: str = "failed"
) -> Template:
    web_session = console_session(request, db)
    try:
        check_access(user)
    except InputError as exc:
        return error_page(request, user, web_session, exc)
    state = show if show in STATES else None  # anything else: every state
    return render(
        request,
        "outbox.html",
        user=user,
        web_session=web_session,
        rows=list_outbound(db, state=state, limit=PAGE_SIZE),
        show=state or "all",
        states=STATES,
    )


@post("/outbox/{outbound_id:int}/resend", sync_to_thread=True, status_code=303)
def post_outbox_resend(
    request: Request[Any, Any, Any],
    db: DB,
    user: CurrentUser,
    outbound_id: int,
    data: Annotated[dict[str, Any], URLENCODED],
) -> Template | Redirect:
    web_session = console_session(request, db)
    check_csrf(request, web_session, data)
    tr = translator(request, user)
    try:
        check_access(user)
        [row] = resend(db, [outbound_id], utcnow(), actor=user.email)
    except InputError as exc:
        db.rollback()
        return error_page(request, user, web_session, exc)
    db.commit()
    return redirect(
        request,
        "/outbox",
        tr.gettext("The mail to %(to)s will be sent again.") % {"to": row.to_addr},
    )
