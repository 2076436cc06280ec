"""The outbox page for administrators: outgoing mail by state, the relay's last answer, and a
button that sends a failed mail again (``core.mail.outbox.resend``; the same as ``pulpit mail
resend`` and ``POST /api/v1/outbox/{id}/resend``). Failed mail is shown first: it is what an
administrator comes here for."""

from __future__ import annotations

from litestar import Controller, get
from litestar.response import Redirect, Template

from core.clock import utcnow
from core.mail.outbox import STATES, check_access, list_outbound, resend
from web.console.forms import CurrentConsole, FormDict, error_refused, form_post, guarded

PAGE_SIZE = 200


class OutboxPage(Controller):
    """Administrators only (``core.mail.outbox.check_access``); a refused resend shows the
    error page."""

    path = "/outbox"
    dependencies = {"console": guarded(check_access)}

    @get("/", sync_to_thread=True, name="outbox")
    def show(self, console: CurrentConsole, show: str = "failed") -> Template:
        state = show if show in STATES else None  # anything else: every state
        return console.render(
            "outbox.html",
            rows=list_outbound(console.db, state=state, limit=PAGE_SIZE),
            show=state or "all",
            states=STATES,
        )

    @form_post("/{outbound_id:int}/resend", refused=error_refused)
    def post_resend(
        self, console: CurrentConsole, outbound_id: int, data: FormDict
    ) -> Template | Redirect:
        [row] = resend(console.db, [outbound_id], utcnow(), actor=console.user.email)
        return console.redirect(
            "/outbox",
            console.gettext("The mail to %(to)s will be sent again.") % {"to": row.to_addr},
        )
