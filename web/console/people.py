"""People pages for administrators (docs/privacy.md): search people, a person's profile and
tickets, their data as a zip, and erasure after typing their e-mail address.

The same core calls as ``pulpit person export/erase`` and the API (``core.privacy``); the
guard is ``core.privacy.people.check_access`` (administrators only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Response, get
from litestar.response import Redirect, Template

from core.errors import N_, InputError
from core.privacy.erase import erase_person, is_erased
from core.privacy.people import check_access, person_by_id, person_tickets, search_people
from web.api.people import export_download
from web.console.forms import Console, CurrentConsole, Form, FormDict, form_post, guarded

SEARCH_LIMIT = 100


@dataclass
class EraseForm(Form):
    confirm: str = ""


def erase_page(
    console: Console, user_id: int, *, status_code: int = 200, error: str | None = None
) -> Template:
    person = person_by_id(console.db, user_id)
    return console.render(
        "people_erase.html",
        status_code=status_code,
        error=error,
        person=person,
        tickets=len(person_tickets(console.db, person)),
    )


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    return erase_page(
        console, kwargs["user_id"], status_code=exc.status_code, error=console.refusal(exc)
    )


class PeoplePage(Controller):
    """Administrators only; everyone else gets the error page."""

    path = "/people"
    dependencies = {"console": guarded(check_access)}

    @get("/", sync_to_thread=True, name="people")
    def search(self, console: CurrentConsole, q: str = "") -> Template:
        people = search_people(console.db, q, limit=SEARCH_LIMIT + 1)
        return console.render(
            "people.html",
            q=q.strip(),
            people=people[:SEARCH_LIMIT],
            more=len(people) > SEARCH_LIMIT,
        )

    @get("/{user_id:int}", sync_to_thread=True, name="person")
    def show(self, console: CurrentConsole, user_id: int) -> Template:
        person = person_by_id(console.db, user_id)
        return console.render(
            "people_detail.html",
            person=person,
            erased=is_erased(person),
            tickets=person_tickets(console.db, person),
        )

    @get("/{user_id:int}/export", sync_to_thread=True, name="person_export")
    def export(self, console: CurrentConsole, user_id: int) -> Response[bytes]:
        person = person_by_id(console.db, user_id)
        blobs = console.request.app.state.blobs
        return export_download(console.db, person, blobs=blobs, actor=console.user)

    @get("/{user_id:int}/erase", sync_to_thread=True, name="person_erase")
    def confirm(self, console: CurrentConsole, user_id: int) -> Template:
        return erase_page(console, user_id)

    @form_post("/{user_id:int}/erase", refused=_refused)
    def erase(self, console: CurrentConsole, user_id: int, data: FormDict) -> Template | Redirect:
        form = EraseForm(confirm=str(data.get("confirm", "")))
        person = person_by_id(console.db, user_id)
        if form.confirm.lower() != person.email.lower():
            raise InputError(N_("type the person's e-mail address exactly to confirm the erasure"))
        result = erase_person(
            console.db, person, blobs=console.request.app.state.blobs, actor=console.user.email
        )
        return console.redirect(
            f"/people/{user_id}",
            console.gettext("Erased. The person is now %(placeholder)s.")
            % {"placeholder": result.placeholder},
        )
