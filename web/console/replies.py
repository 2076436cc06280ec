"""Canned replies and macros in the console (issue 15).

- ``/profile/replies``: everyone on the staff manages their own canned replies and macros;
  admins and coordinators also the desk's shared ones, with the roles they are shared with
  (``core.desk.replies.may_share``). Linked from the profile page.
- ``GET /tickets/{n}/canned?q=``: the canned replies the user may use, rendered for the
  ticket (placeholders filled), for ``/static/replies.js`` (typing ``::`` in the reply box).
- ``GET /tickets/{n}/changes?since=ID``: the events after ``ID`` someone else caused, for the
  banner ``replies.js`` shows while one writes (polled every 30 s).
- ``POST /tickets/{n}/macros/{id}``: apply a macro (all or nothing, ``core.desk.macros``).

Clients and subcontractors get 403 everywhere here: canned replies and macros are staff's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import get
from litestar.response import Redirect, Template
from sqlalchemy import select

from core.desk import macros as desk_macros
from core.desk import replies as desk
from core.directory.models import STAFF_ROLES, User
from core.errors import N_, Forbidden, InputError
from web.console.common import form_list, form_str
from web.console.forms import (
    ActingTicket,
    Console,
    CurrentConsole,
    FormDict,
    form_post,
    guarded,
)
from web.console.reply_box import describe
from web.console.ticket_detail import detail_page, ticket_done


def staff_only(user: User) -> None:
    if not desk.may_use(user):
        raise Forbidden(N_("canned replies and macros are for staff"))


STAFF = {"console": guarded(staff_only)}
ROLE_LABELS = {"admin": "Administrator", "coordinator": "Coordinator", "technician": "Technician"}


def _reply_draft(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "shortcut": form_str(data, "shortcut"),
        "title": form_str(data, "title"),
        "body": str(data.get("body") or ""),
        "shared": form_str(data, "shared") == "1",
        "roles": form_list(data, "roles"),
    }


def _macro_draft(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": form_str(data, "name"),
        "reply": str(data.get("reply") or ""),
        "reply_public": form_str(data, "reply_public") != "0",
        "status": form_str(data, "status"),
        "assignee": form_str(data, "assignee"),
        "fields": str(data.get("fields") or ""),
        "shared": form_str(data, "shared") == "1",
        "roles": form_list(data, "roles"),
    }


def manage_page(
    console: Console,
    *,
    status_code: int = 200,
    error: str | None = None,
    reply_draft: Mapping[str, Any] | None = None,
    macro_draft: Mapping[str, Any] | None = None,
    edit_reply: int | None = None,
    edit_macro: int | None = None,
) -> Template:
    db, user = console.db, console.user
    managed = desk.managed_replies(db, user)
    managed_ids = {r.id for r in managed}
    macros = desk_macros.managed_macros(db, user)
    macro_ids = {m.id for m in macros}
    reply = next((r for r in managed if r.id == edit_reply), None)
    macro = next((m for m in macros if m.id == edit_macro), None)
    if reply_draft is None and reply is not None:
        reply_draft = {
            "shortcut": reply.shortcut,
            "title": reply.title,
            "body": reply.body,
            "shared": reply.owner_id is None,
            "roles": list(reply.roles or []),
        }
    if macro_draft is None and macro is not None:
        macro_draft = {
            "name": macro.name,
            "reply": macro.reply or "",
            "reply_public": macro.reply_public,
            "status": macro.status or "",
            "assignee": macro.assignee or "",
            "fields": desk_macros.fields_as_text(macro.custom_fields),
            "shared": macro.owner_id is None,
            "roles": list(macro.roles or []),
        }
    staff = list(
        db.scalars(
            select(User)
            .where(User.role.in_(STAFF_ROLES), User.active.is_(True))
            .order_by(User.name, User.email)
        )
    )
    return console.render(
        "replies.html",
        status_code=status_code,
        error=error,
        replies=managed,
        others=[r for r in desk.usable_replies(db, user) if r.id not in managed_ids],
        macros=macros,
        other_macros=[m for m in desk_macros.usable_macros(db, user) if m.id not in macro_ids],
        may_share=desk.may_share(user),
        role_options=[
            (r, console.gettext(ROLE_LABELS[r]) if r in ROLE_LABELS else r)
            for r in (desk.known_roles(db) if desk.may_share(user) else [])
        ],
        placeholders=list(desk.PLACEHOLDERS),
        reply_draft=reply_draft or {},
        macro_draft=macro_draft or {},
        edit_reply=edit_reply if reply is not None or reply_draft else None,
        edit_macro=edit_macro if macro is not None or macro_draft else None,
        statuses=desk_macros.status_names(db),
        staff=staff,
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@get("/profile/replies", sync_to_thread=True, name="replies", dependencies=STAFF)
def replies_page(console: CurrentConsole) -> Template:
    q = console.request.query_params
    return manage_page(console, edit_reply=_int(q.get("reply")), edit_macro=_int(q.get("macro")))


def _reply_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    return manage_page(
        console,
        status_code=exc.status_code,
        error=console.refusal(exc),
        reply_draft=_reply_draft(kwargs["data"]),
        edit_reply=kwargs.get("reply_id"),
    )


def _macro_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    return manage_page(
        console,
        status_code=exc.status_code,
        error=console.refusal(exc),
        macro_draft=_macro_draft(kwargs["data"]),
        edit_macro=kwargs.get("macro_id"),
    )


@form_post("/profile/replies", refused=_reply_refused, dependencies=STAFF)
def post_reply(console: CurrentConsole, data: FormDict) -> Template | Redirect:
    d = _reply_draft(data)
    reply = desk.create_reply(
        console.db,
        console.user,
        shortcut=d["shortcut"],
        title=d["title"],
        body=d["body"],
        shared=d["shared"],
        roles=d["roles"],
    )
    return console.redirect(
        "/profile/replies#replies",
        console.gettext("Canned reply ::%(shortcut)s saved.") % {"shortcut": reply.shortcut},
    )


@form_post("/profile/replies/{reply_id:int}", refused=_reply_refused, dependencies=STAFF)
def post_reply_update(
    console: CurrentConsole, reply_id: int, data: FormDict
) -> Template | Redirect:
    d = _reply_draft(data)
    reply = desk.update_reply(
        console.db,
        console.user,
        reply_id,
        shortcut=d["shortcut"],
        title=d["title"],
        body=d["body"],
        roles=d["roles"],
    )
    return console.redirect(
        "/profile/replies#replies",
        console.gettext("Canned reply ::%(shortcut)s saved.") % {"shortcut": reply.shortcut},
    )


@form_post("/profile/replies/{reply_id:int}/delete", refused=_reply_refused, dependencies=STAFF)
def post_reply_delete(
    console: CurrentConsole, reply_id: int, data: FormDict
) -> Template | Redirect:
    shortcut = desk.delete_reply(console.db, console.user, reply_id)
    return console.redirect(
        "/profile/replies#replies",
        console.gettext("Canned reply ::%(shortcut)s deleted.") % {"shortcut": shortcut},
    )


def _spec(console: Console, data: Mapping[str, Any]) -> tuple[desk_macros.MacroSpec, bool]:
    d = _macro_draft(data)
    spec = desk_macros.MacroSpec(
        name=d["name"],
        reply=d["reply"],
        reply_public=d["reply_public"],
        status=d["status"],
        assignee=d["assignee"],
        custom_fields=desk_macros.fields_from_text(console.db, d["fields"]),
        roles=d["roles"],
    )
    return spec, bool(d["shared"])


@form_post("/profile/macros", refused=_macro_refused, dependencies=STAFF)
def post_macro(console: CurrentConsole, data: FormDict) -> Template | Redirect:
    spec, shared = _spec(console, data)
    macro = desk_macros.create_macro(console.db, console.user, spec, shared=shared)
    return console.redirect(
        "/profile/replies#macros",
        console.gettext("Macro %(name)s saved.") % {"name": macro.name},
    )


@form_post("/profile/macros/{macro_id:int}", refused=_macro_refused, dependencies=STAFF)
def post_macro_update(
    console: CurrentConsole, macro_id: int, data: FormDict
) -> Template | Redirect:
    spec, _shared = _spec(console, data)
    macro = desk_macros.update_macro(console.db, console.user, macro_id, spec)
    return console.redirect(
        "/profile/replies#macros",
        console.gettext("Macro %(name)s saved.") % {"name": macro.name},
    )


@form_post("/profile/macros/{macro_id:int}/delete", refused=_macro_refused, dependencies=STAFF)
def post_macro_delete(
    console: CurrentConsole, macro_id: int, data: FormDict
) -> Template | Redirect:
    name = desk_macros.delete_macro(console.db, console.user, macro_id)
    return console.redirect(
        "/profile/replies#macros", console.gettext("Macro %(name)s deleted.") % {"name": name}
    )


# --- On the ticket page ----------------------------------------------------------------------


@get("/tickets/{number:int}/canned", sync_to_thread=True, dependencies=STAFF)
def canned_for_ticket(console: CurrentConsole, ticket: ActingTicket) -> dict[str, Any]:
    """``{"items": [{id, shortcut, title, shared, body}]}``: the usable canned replies matching
    ``q`` (shortcut or title, case- and accent-insensitive), rendered for this ticket."""
    q = console.request.query_params.get("q") or ""
    return {"items": desk.replies_for_ticket(console.db, console.user, ticket, q)}


@get("/tickets/{number:int}/changes", sync_to_thread=True)
def ticket_changes(console: CurrentConsole, ticket: ActingTicket) -> dict[str, Any]:
    """``{"changes": [{id, who, what}]}``: what others did after event ``since``."""
    since = console.request.query_params.get("since")
    changed = desk.changed_since(console.db, console.user, ticket, since)
    return {"changes": describe(console.tr, changed, console.user.is_staff)}


def _macro_apply_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    return detail_page(
        console,
        int(console.request.path_params["number"]),
        status_code=exc.status_code,
        error=console.refusal(exc),
    )


@form_post(
    "/tickets/{number:int}/macros/{macro_id:int}",
    refused=_macro_apply_refused,
    dependencies=STAFF,
)
def post_apply_macro(
    console: CurrentConsole, ticket: ActingTicket, macro_id: int, data: FormDict
) -> Template | Redirect:
    macro = desk_macros.get_macro(console.db, console.user, macro_id)
    applied = desk_macros.apply_macro(console.db, console.user, ticket, macro_id)
    return ticket_done(
        console,
        ticket,
        applied.last,
        console.gettext("Macro %(name)s applied.") % {"name": macro.name},
        unchanged=console.gettext("Macro %(name)s changed nothing.") % {"name": macro.name},
    )


replies_handlers = [
    replies_page,
    post_reply,
    post_reply_update,
    post_reply_delete,
    post_macro,
    post_macro_update,
    post_macro_delete,
    canned_for_ticket,
    ticket_changes,
    post_apply_macro,
]

__all__ = ["replies_handlers"]
