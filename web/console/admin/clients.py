"""Admin console: clients (issue 13). A list with search (name, domain) and a detail form: the
client's language, its e-mail domains (one per line: a line taken out is sent under
``remove: domains``), its contacts (one row each, plus an empty row for a new one) and links to
its contracts. A contact without portal access yet gets an invitation: a mail with a
set-password link (the password-reset link, valid for a week).

Every save is the YAML fragment ``{"clients": [{...}]}`` applied like ``pulpit config apply``
(``web.console.admin.common.save``); a refusal comes back with each sentence under its field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from litestar import Controller, get
from litestar.response import Redirect, Template
from sqlalchemy import func, or_, select

from core.access.accounts import get_user_by_email, password_reset_token
from core.audit import AuditEntry
from core.clock import utcnow
from core.configuration.delete import delete_object
from core.configuration.errors import ConfigError, Problem
from core.contracts.models import Contract
from core.directory.models import Client, ClientDomain, User
from core.errors import N_, InputError, NotFound
from core.mail.outbox import DEFAULT_TIMEZONE, queue_mail
from core.notify.notifications import config_of
from web.console.admin.common import admin_console, history, problems, save
from web.console.common import form_str
from web.console.forms import Console, CurrentConsole, FormDict, form_post
from web.i18n import LANGUAGES

#: How long an invitation's set-password link works.
INVITATION_TTL = timedelta(days=7)
#: Contacts shown with the client (one form row each).
CONTACT_KEYS = ("email", "name", "language", "manager", "active")


def _client(console: Console, name: str) -> Client:
    client = console.db.scalar(select(Client).where(Client.name == name))
    if client is None:
        raise NotFound(N_("there is no client %(name)s"), name=name)
    return client


def _contacts(console: Console, client: Client) -> list[User]:
    return list(
        console.db.scalars(
            select(User)
            .where(User.client_id == client.id, User.role == "client")
            .order_by(User.email)
        )
    )


def _values(console: Console, client: Client | None) -> dict[str, Any]:
    """The form's fields for a stored client (or a new one), named as the form names them."""
    if client is None:
        return {"name": "", "language": "pl", "domains": "", "contacts": 0}
    values: dict[str, Any] = {
        "name": client.name,
        "language": client.language,
        "domains": "\n".join(d.domain for d in client.domains),
    }
    contacts = _contacts(console, client)
    for i, c in enumerate(contacts):
        values.update(
            {
                f"c{i}_email": c.email,
                f"c{i}_name": c.name or "",
                f"c{i}_language": c.language,
                f"c{i}_manager": "1" if c.manager else "",
                f"c{i}_active": "1" if c.active else "",
            }
        )
    values["contacts"] = len(contacts)
    return values


def client_page(
    console: Console,
    client: Client | None,
    *,
    form: Mapping[str, Any] | None = None,
    found: dict[str, str] | None = None,
    row_of: dict[int, int] | None = None,
    status_code: int = 200,
) -> Template:
    """The detail form (``client`` None: a new client), refilled with ``form`` after a refusal;
    ``found`` are the problems by key path, ``row_of`` maps a contact's index in the fragment to
    its form row."""
    values = dict(_values(console, client))
    if form is not None:
        values.update({k: form_str(form, k) for k in form if k != "csrf_token"})
        values["contacts"] = values.get("contacts", 0)
    count = int(values.get("contacts") or 0)
    contacts_by_email: dict[str, User] = {}
    if client is not None:
        contacts_by_email = {c.email: c for c in _contacts(console, client)}
    rows = []
    for i in range(count + 1):
        email = str(values.get(f"c{i}_email", ""))
        rows.append(
            {
                "i": i,
                "new": i == count,
                "email": email,
                "name": values.get(f"c{i}_name", ""),
                "language": values.get(f"c{i}_language", values.get("language") or "pl"),
                "manager": bool(values.get(f"c{i}_manager")),
                "active": bool(values.get(f"c{i}_active")) if i < count else True,
                "user": contacts_by_email.get(email),
            }
        )
    # A problem's key path by form row: clients[0].contacts[j].key -> row i.
    shown: dict[str, str] = {}
    for path, text in (found or {}).items():
        for j, i in (row_of or {}).items():
            prefix = f"clients[0].contacts[{j}]"
            if path == prefix or path.startswith(prefix + "."):
                shown[f"row{i}" + path[len(prefix) :]] = text
    contracts = (
        list(
            console.db.scalars(
                select(Contract).where(Contract.client_id == client.id).order_by(Contract.code)
            )
        )
        if client is not None
        else []
    )
    return console.render(
        "admin/clients_detail.html",
        status_code=status_code,
        client=client,
        values=values,
        rows=rows,
        contracts=contracts,
        problems=found or {},
        row_problems=shown,
        languages=LANGUAGES,
        entries=history(console.db, "client", client.name) if client is not None else [],
    )


def client_fragment(
    data: Mapping[str, Any], stored: Client | None
) -> tuple[dict[str, Any], dict[int, int]]:
    """The YAML fragment equivalent to the form, and which form row each contact came from."""
    name = form_str(data, "name") if stored is None else stored.name
    spec: dict[str, Any] = {"name": name}
    language = form_str(data, "language")
    if language:
        spec["language"] = language
    domains = [d.strip().lower() for d in form_str(data, "domains").splitlines() if d.strip()]
    spec["domains"] = list(dict.fromkeys(domains))
    if stored is not None:
        gone = [d.domain for d in stored.domains if d.domain not in spec["domains"]]
        if gone:
            spec["remove"] = {"domains": gone}
    contacts: list[dict[str, Any]] = []
    row_of: dict[int, int] = {}
    try:
        count = int(form_str(data, "contacts") or 0)
    except ValueError:
        count = 0
    for i in range(min(count, 500) + 1):
        email = form_str(data, f"c{i}_email").lower()
        if not email:
            continue
        contact: dict[str, Any] = {"email": email}
        contact["name"] = form_str(data, f"c{i}_name") or None
        contact["language"] = form_str(data, f"c{i}_language") or "pl"
        contact["manager"] = bool(form_str(data, f"c{i}_manager"))
        contact["active"] = bool(form_str(data, f"c{i}_active")) if i < count else True
        row_of[len(contacts)] = i
        contacts.append(contact)
    if contacts:
        spec["contacts"] = contacts
    return {"clients": [spec]}, row_of


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    data = kwargs["data"]
    name = kwargs.get("name")
    client = console.db.scalar(select(Client).where(Client.name == name)) if name else None
    found = problems(exc, console)
    row_of = client_fragment(data, client)[1]
    return client_page(
        console, client, form=data, found=found, row_of=row_of, status_code=exc.status_code
    )


def _delete_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    """A deletion refused (something refers to the object): the page as stored, saying why."""
    name = kwargs["name"]
    return client_page(
        console,
        _client(console, name),
        found={"": console.refusal(exc)},
        status_code=exc.status_code,
    )


def _path(name: str) -> str:
    return "/admin/clients/" + quote(name, safe="")


class ClientsAdmin(Controller):
    path = "/admin/clients"
    dependencies = {"console": admin_console}

    @get("/", sync_to_thread=True, name="admin_clients")
    def index(self, console: CurrentConsole, q: str = "") -> Template:
        q = q.strip()[:200]
        stmt = select(Client).order_by(Client.name)
        if q:
            like = f"%{q.lower()}%"
            stmt = stmt.where(
                or_(
                    func.lower(Client.name).like(like),
                    Client.id.in_(
                        select(ClientDomain.client_id).where(
                            func.lower(ClientDomain.domain).like(like)
                        )
                    ),
                )
            )
        clients = list(console.db.scalars(stmt.limit(500)))
        contracts = dict(
            console.db.execute(
                select(Contract.client_id, func.count()).group_by(Contract.client_id)
            ).all()
        )
        contacts = dict(
            console.db.execute(
                select(User.client_id, func.count())
                .where(User.role == "client")
                .group_by(User.client_id)
            ).all()
        )
        return console.render(
            "admin/clients.html", q=q, clients=clients, contracts=contracts, contacts=contacts
        )

    @get("/new", sync_to_thread=True, name="admin_client_new")
    def new(self, console: CurrentConsole) -> Template:
        return client_page(console, None)

    @form_post("/new", refused=_refused)
    def create(self, console: CurrentConsole, data: FormDict) -> Template | Redirect:
        name = form_str(data, "name")
        if not name:
            raise _missing_name()
        if console.db.scalar(select(Client.id).where(Client.name == name)) is not None:
            raise InputError(N_("a client named %(name)s exists already"), name=name)
        save(console, client_fragment(data, None)[0])
        return console.redirect(_path(name), console.gettext("Client created."))

    @form_post("/{name:str}/delete", refused=_delete_refused)
    def delete(self, console: CurrentConsole, name: str, data: FormDict) -> Template | Redirect:
        """Only what nothing refers to (``core.configuration.delete``); otherwise a 409 saying
        what refers to it."""
        found = _client(console, name)
        delete_object(console.db, "client", found.name, console.user)
        return console.redirect("/admin/clients", console.gettext("Client deleted."))

    @get("/{name:str}", sync_to_thread=True, name="admin_client")
    def show(self, console: CurrentConsole, name: str) -> Template:
        return client_page(console, _client(console, name))

    @form_post("/{name:str}", refused=_refused)
    def update(self, console: CurrentConsole, name: str, data: FormDict) -> Template | Redirect:
        client = _client(console, name)
        save(console, client_fragment(data, client)[0])
        return console.redirect(_path(name), console.gettext("Client saved."))

    @form_post("/{name:str}/invite", refused=_refused)
    def invite(self, console: CurrentConsole, name: str, data: FormDict) -> Template | Redirect:
        client = _client(console, name)
        email = form_str(data, "email")
        contact = get_user_by_email(console.db, email) if email else None
        if contact is None or contact.client_id != client.id or contact.role != "client":
            raise InputError(N_("%(email)s is not a contact of this client"), email=email)
        if not contact.active:
            raise InputError(
                N_("%(email)s has no portal access: tick it and save first"), email=email
            )
        send_invitation(console, contact)
        return console.redirect(
            _path(name), console.gettext("Invitation sent to %(email)s.") % {"email": email}
        )


def _missing_name() -> ConfigError:
    return ConfigError([Problem.of(0, "console", "clients[0].name", N_("a client needs a name"))])


def send_invitation(console: Console, contact: User) -> None:
    """Mail ``contact`` the ``invitation`` (templates/mail/invitation): a link to set their
    password, which is the password-reset link valid for :data:`INVITATION_TTL`."""
    settings = console.request.app.state.settings
    now = utcnow()
    token = password_reset_token(settings.secret_key, contact, now=now, ttl=INVITATION_TTL)
    config = config_of(console.db)
    mail_domain = config.mail_domain if config is not None else settings.mail_domain
    queue_mail(
        console.db,
        template="invitation",
        to=contact.email,
        context={
            "recipient": contact.display,
            "account": contact.email,
            "client": contact.client.name if contact.client is not None else "",
            "url": f"{settings.public_url.rstrip('/')}/password/reset/{token}",
            "until": (now + INVITATION_TTL).isoformat(),
            "timezone": DEFAULT_TIMEZONE,
        },
        mail_domain=mail_domain,
        language=contact.language,
        auto_submitted="auto-generated",
        now=now,
    )
    console.db.add(
        AuditEntry(
            actor=console.user.email,
            action="contact.invite",
            data={"contact": contact.email},
        )
    )


handlers = [ClientsAdmin]
