"""The web console: server-rendered pages for staff, and the client and subcontractor portals.

One set of URLs serves every role; what a page shows is decided by ``core.access.permissions``.
``web.app`` mounts :data:`console_handlers` under ``/`` with the ``user``, ``web_session``
and ``db`` dependencies.
"""

from __future__ import annotations

from web.console.attachments import download_attachment, download_raw_message
from web.console.auth import login_form, login_submit, logout, set_language
from web.console.outbox import outbox, post_outbox_resend
from web.console.profile import post_profile, profile
from web.console.substitutions import (
    post_end_substitution,
    post_substitution,
    substitutions,
)
from web.console.ticket_cc import post_cc
from web.console.ticket_detail import (
    post_assign,
    post_comment,
    post_contract,
    post_status,
    post_worklog,
    ticket_detail,
)
from web.console.ticket_new import ticket_new_form, ticket_new_submit
from web.console.tickets_list import bulk_status, home, tickets
from web.console.two_step import post_two_step, two_step

console_handlers = [
    post_contract,
    login_form,
    login_submit,
    logout,
    set_language,
    home,
    tickets,
    bulk_status,
    ticket_new_form,
    ticket_new_submit,
    ticket_detail,
    post_comment,
    post_status,
    post_assign,
    post_worklog,
    post_cc,
    download_attachment,
    download_raw_message,
    substitutions,
    post_substitution,
    post_end_substitution,
    profile,
    post_profile,
    two_step,
    post_two_step,
    outbox,
    post_outbox_resend,
]

__all__ = ["console_handlers"]
