"""The one shape of a console form: its fields plus its service call.

A page's handlers take :class:`Console` (the ``console`` dependency: who asks, their unit of
work and language; for a POST the CSRF token is checked here, once) and, on the ticket page,
the ``ticket`` dependency (resolved once, as the user may see it: 404 otherwise). A form is
posted to a :func:`form_post` handler, which does the service call and answers with a
redirect; :func:`form_post` commits it, or on core's refusal (:class:`core.errors.InputError`)
rolls the unit of work back and answers with the page again (the ``refused`` renderer) showing
the sentence in the user's language, with core's 4xx status and what they typed.

Pages not everyone may open swap the ``console`` dependency for :func:`guarded` with the
rule's check (``web.console.substitutions.staff_only``,
``core.mail.outbox.check_access``). A Litestar guard would
run before the dependencies, without the database session it needs to know who is asking.
Refusals outside a form (a guard, a ticket that is not visible, a bad CSRF token) reach the
console's exception handler (``web.app.console_exception_handler``), which shows the error
page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Annotated, Any, TypeAlias

from litestar import Request, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy.orm import Session

from core.access.models import WebSession
from core.directory.models import User
from core.errors import N_, InputError, NotFound
from core.tickets.models import Ticket
from core.tickets.services import get_ticket
from web.api.params import MAX_ID
from web.console.common import error_page, redirect, refusal, render, translator
from web.deps import check_csrf, identify
from web.i18n import Translator

# The media types of the console's forms: every form but those with file inputs is urlencoded.
URLENCODED = Body(media_type=RequestEncodingType.URL_ENCODED)
MULTIPART = Body(media_type=RequestEncodingType.MULTI_PART)
# A form read as a dict of its fields (a repeated field is a list; see common.form_str).
FormDict: TypeAlias = Annotated[dict[str, Any], URLENCODED]
UploadFormDict: TypeAlias = Annotated[dict[str, Any], MULTIPART]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Form:
    """Base of the console's dataclass form bodies: text fields, stripped like ``form_str``.

    Fields default to "" (a browser leaves out what is empty or not on its page); a field
    sent twice is a 400. The CSRF token is not a field: the ``console`` dependency reads it.
    """

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and f.metadata.get("strip", True):
                setattr(self, f.name, value.strip())


@dataclass
class Console:
    """One console request: who asks, their unit of work, their console session and language."""

    request: Request[Any, Any, Any]
    db: Session
    user: User
    web_session: WebSession | None

    @cached_property
    def tr(self) -> Translator:
        return translator(self.request, self.user)

    def gettext(self, message: str) -> str:
        return self.tr.gettext(message)

    def render(self, template: str, *, status_code: int = 200, **context: Any) -> Template:
        return render(
            self.request,
            template,
            user=self.user,
            web_session=self.web_session,
            status_code=status_code,
            **context,
        )

    def refusal(self, exc: InputError) -> str:
        """Core's sentence for ``exc`` in the user's language."""
        return refusal(self.request, self.user, exc)

    def error_page(self, exc: InputError) -> Template:
        return error_page(self.request, self.user, self.web_session, exc)

    def redirect(self, path: str, flash: str | None = None, kind: str = "ok") -> Redirect:
        return redirect(self.request, path, flash, kind)


async def provide_console(request: Request[Any, Any, Any], db: Session, user: User) -> Console:
    """The ``console`` dependency. Taking ``user`` orders it after the login check, so the
    session comes from ``identify``'s cache (no query on the event loop); the form was parsed
    before the dependencies, so reading it for the token costs nothing either."""
    web_session = identify(request, db)[1]
    if request.method not in SAFE_METHODS:
        check_csrf(request, web_session, dict(await request.form()))
    return Console(request, db, user, web_session)


def guarded(check: Callable[[User], None]) -> Provide:
    """The ``console`` dependency of a page only some may open: ``check`` refuses the rest."""

    async def provide_guarded_console(
        request: Request[Any, Any, Any], db: Session, user: User
    ) -> Console:
        console = await provide_console(request, db, user)
        check(user)
        return console

    return Provide(provide_guarded_console)


def provide_ticket(console: Console, number: int) -> Ticket:
    """The ``ticket`` dependency: the ticket as this user may see it; not visible is answered
    like not there (404), so numbers cannot be probed. A number past the database's integer
    (2**31-1) is answered the same, before it reaches a query it would overflow."""
    if not 1 <= number <= MAX_ID:
        raise NotFound(
            N_("ticket #%(number)s does not exist or is not visible to you"), number=number
        )
    return get_ticket(console.db, number, console.user)


console_dependencies: dict[str, Provide] = {
    "console": Provide(provide_console),
    "ticket": Provide(provide_ticket, sync_to_thread=True),
}

# Explicitly named dependencies (Litestar 3 drops inference by parameter name).
CurrentConsole: TypeAlias = NamedDependency[Console]
ActingTicket: TypeAlias = NamedDependency[Ticket]

# What a refused form answers with: given the console (its unit of work rolled back), the
# refusal and the handler's arguments (``data`` is what the person typed).
Refused: TypeAlias = Callable[[Console, InputError, Mapping[str, Any]], Template]


def error_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    """For forms without a page of their own to come back to: the error page."""
    return console.error_page(exc)


def form_post(
    path: str, *, refused: Refused, **options: Any
) -> Callable[[Callable[..., Template | Redirect]], HTTPRouteHandler]:
    """``@post(path)`` for a console form. The handler takes ``console`` and does the service
    call; its answer (a redirect with a flash message) is sent once the unit of work is
    committed. An :class:`InputError` rolls it back and answers with ``refused``."""

    def decorate(fn: Callable[..., Template | Redirect]) -> HTTPRouteHandler:
        @functools.wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Template | Redirect:
            console: Console = kwargs["console"]
            try:
                response = fn(*args, **kwargs)
            except InputError as exc:
                console.db.rollback()
                return refused(console, exc, kwargs)
            console.db.commit()
            return response

        handler.__annotations__ = {**fn.__annotations__, "return": Template | Redirect}
        options.setdefault("sync_to_thread", True)
        options.setdefault("status_code", 303)
        return post(path, **options)(handler)

    return decorate
