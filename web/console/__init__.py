"""The web console: server-rendered pages for staff, and the client and subcontractor portals.

One set of URLs serves every role; what a page shows is decided by ``core.access.permissions``.
``web.app`` mounts :data:`console_handlers` under ``/`` with the ``db``, ``user``, ``console``
and ``ticket`` dependencies; every form has one shape, described in ``web.console.forms``.
"""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from web.console.admin import admin_handlers
from web.console.attachments import download_attachment, download_raw_message
from web.console.audit import AuditPage
from web.console.auth import login_form, login_submit, logout, set_language
from web.console.merge import merge_handlers
from web.console.outbox import OutboxPage
from web.console.password import (
    forgot_form,
    forgot_submit,
    post_password,
    reset_form,
    reset_submit,
)
from web.console.people import PeoplePage
from web.console.profile import post_profile, profile
from web.console.queue import post_take, post_view
from web.console.replies import replies_handlers
from web.console.reports import ReportsPage
from web.console.substitutions import SubstitutionsPage
from web.console.ticket_cc import post_cc
from web.console.ticket_detail import (
    post_assign,
    post_checklist_item,
    post_comment,
    post_contract,
    post_fields,
    post_requester,
    post_status,
    post_tick,
    ticket_detail,
)
from web.console.ticket_new import ticket_new_form, ticket_new_submit
from web.console.tickets_list import bulk_status, home, tickets
from web.console.two_step import post_two_step, two_step
from web.console.views import views_handlers
from web.console.worklog import worklog_handlers

console_handlers: list[ControllerRouterHandler] = [
    post_contract,
    post_requester,
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
    *worklog_handlers,
    post_cc,
    post_fields,
    post_tick,
    post_checklist_item,
    download_attachment,
    download_raw_message,
    SubstitutionsPage,
    profile,
    post_profile,
    two_step,
    post_two_step,
    forgot_form,
    forgot_submit,
    reset_form,
    reset_submit,
    post_password,
    OutboxPage,
    PeoplePage,
    AuditPage,
    ReportsPage,
    *admin_handlers,
    *merge_handlers,
    *views_handlers,
    post_take,
    post_view,
    *replies_handlers,
]

__all__ = ["console_handlers"]
