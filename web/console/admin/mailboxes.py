"""Admin console: mailboxes (issue 13). A list (address, contract or general, IMAP or not) and
a detail form: the address, the contract (or general: the triage mailbox) and the IMAP
settings. The password never passes through the console: ``password_env`` names the
environment variable that holds it, and the screen says whether this server has it set.
"Test connection" logs in with what the form says (saved or not), selects the folder and tells
the message count or the server's error in words.

Every save is the YAML fragment ``{"mailboxes": [{...}]}`` applied like ``pulpit config
apply`` (``web.console.admin.common.save``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from litestar import Controller, get, post
from litestar.response import Redirect, Template
from sqlalchemy import func, or_, select

from core.configuration.delete import delete_object
from core.configuration.errors import ConfigError, Problem
from core.contracts.models import Contract
from core.errors import N_, InputError, NotFound
from core.mail.models import Mailbox
from web.console.admin.common import admin_console, history, problems, save
from web.console.common import form_str
from web.console.forms import Console, CurrentConsole, FormDict, form_post

#: How long "Test connection" waits for the server, per network step.
TEST_TIMEOUT_SECONDS = 5.0
IMAP_KEYS = ("host", "port", "user", "password_env", "folder", "processed_folder", "poll_seconds")


def _mailbox(console: Console, address: str) -> Mailbox:
    box = console.db.scalar(select(Mailbox).where(Mailbox.address == address.lower()))
    if box is None:
        raise NotFound(N_("there is no mailbox %(address)s"), address=address)
    return box


def _values(box: Mailbox | None) -> dict[str, str]:
    """The form's fields for a stored mailbox (or a new one)."""
    values = {"address": "", "contract": "", "use_imap": "", "tls": "1", "port": "993"}
    values.update(folder="INBOX")
    if box is None:
        return values
    values.update(address=box.address, contract=box.contract.code if box.contract else "")
    if box.imap:
        values["use_imap"] = "1"
        values["tls"] = "1" if box.imap.get("tls", True) else ""
        for key in IMAP_KEYS:
            if box.imap.get(key) is not None:
                value = box.imap[key]
                values[key] = str(
                    int(value) if isinstance(value, float) and value.is_integer() else value
                )
    return values


def mailbox_page(
    console: Console,
    box: Mailbox | None,
    *,
    form: Mapping[str, Any] | None = None,
    found: dict[str, str] | None = None,
    tested: tuple[bool, str] | None = None,
    status_code: int = 200,
) -> Template:
    """The detail form (``box`` None: a new mailbox), refilled with ``form``."""
    values = _values(box)
    if form is not None:
        values = {k: form_str(form, k) for k in form if k != "csrf_token"}
        if box is not None:
            values["address"] = box.address
    env = values.get("password_env") or ""
    return console.render(
        "admin/mailboxes_detail.html",
        status_code=status_code,
        box=box,
        values=values,
        env_set=bool(env) and env in os.environ,
        contracts=list(console.db.scalars(select(Contract).order_by(Contract.code))),
        problems=found or {},
        tested=tested,
        entries=history(console.db, "mailbox", box.address) if box is not None else [],
    )


def _number(text: str) -> int | float | str | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text  # apply's validation names it


def imap_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """The form's ``imap:`` block, every key written (an empty one as null, so it is cleared)."""
    imap: dict[str, Any] = {
        "host": form_str(data, "host") or None,
        "port": _number(form_str(data, "port")),
        "tls": bool(form_str(data, "tls")),
        "user": form_str(data, "user") or None,
        "password_env": form_str(data, "password_env") or None,
        "folder": form_str(data, "folder") or None,
        "processed_folder": form_str(data, "processed_folder") or None,
        "poll_seconds": _number(form_str(data, "poll_seconds")),
    }
    return imap


def mailbox_fragment(data: Mapping[str, Any], stored: Mailbox | None) -> dict[str, Any]:
    """The YAML fragment equivalent to the form."""
    address = stored.address if stored is not None else form_str(data, "address").lower()
    spec: dict[str, Any] = {"address": address, "contract": form_str(data, "contract") or None}
    if form_str(data, "use_imap"):
        spec["imap"] = imap_settings(data)
    elif stored is not None and stored.imap:
        spec["imap"] = None
    return {"mailboxes": [spec]}


def try_connection(data: Mapping[str, Any], address: str) -> tuple[bool, str, dict[str, Any]]:
    """Log in with the form's settings and select the folder: (worked, what happened, the
    values for the sentence). Never raises: every failure is a sentence."""
    imap = imap_settings(data)
    host = imap["host"]
    if not host:
        return False, N_("Enter the IMAP server's host first."), {}
    tls = bool(imap["tls"])
    port = imap["port"] if isinstance(imap["port"], int) else (993 if tls else 143)
    user = imap["user"] or address
    folder = imap["folder"] or "INBOX"
    env = imap["password_env"]
    if not env:
        return False, N_("Name the environment variable that holds the password."), {}
    password = os.environ.get(env)
    if password is None:
        return False, N_("The variable %(name)s is not set on this server."), {"name": env}
    try:
        client = IMAPClient(host, port=port, ssl=tls, timeout=TEST_TIMEOUT_SECONDS)
    except ConnectionRefusedError as exc:
        return (
            False,
            N_("%(where)s refuses connections: nothing listens on that port."),
            _why(host, port, exc),
        )
    except socket.gaierror as exc:
        return (
            False,
            N_("The host %(host)s is unknown: %(error)s"),
            {
                "host": host,
                "error": _text(exc),
            },
        )
    except TimeoutError as exc:
        return (
            False,
            N_("No answer from %(where)s within %(seconds)s seconds."),
            {
                **_why(host, port, exc),
                "seconds": int(TEST_TIMEOUT_SECONDS),
            },
        )
    except (OSError, IMAPClientError) as exc:
        return False, N_("No connection to %(where)s: %(error)s"), _why(host, port, exc)
    except Exception as exc:  # a bad host name, a TLS oddity: in words, never a 500
        return False, N_("No connection to %(where)s: %(error)s"), _why(host, port, exc)
    try:
        client.login(user, password)
        info = client.select_folder(folder, readonly=True)
        count = int(info.get(b"EXISTS", 0))
    except LoginError as exc:
        return (
            False,
            N_("The server refused the login of %(user)s: %(error)s"),
            {
                "user": user,
                "error": _text(exc),
            },
        )
    except Exception as exc:
        return False, N_("The server answered: %(error)s"), {"error": _text(exc)}
    finally:
        try:
            client.logout()
        except Exception:
            try:
                client.shutdown()
            except Exception:  # nothing more to do with a dead socket
                pass
    return (
        True,
        N_("Connected as %(user)s. Messages in %(folder)s: %(count)s."),
        {
            "user": user,
            "folder": folder,
            "count": count,
        },
    )


def _text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return text[:300]


def _why(host: str, port: int, exc: BaseException) -> dict[str, Any]:
    return {"where": f"{host}:{port}", "error": _text(exc)}


def _refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    address = kwargs.get("address")
    box = (
        console.db.scalar(select(Mailbox).where(Mailbox.address == address.lower()))
        if address
        else None
    )
    found = problems(exc, console)
    return mailbox_page(console, box, form=kwargs["data"], found=found, status_code=exc.status_code)


def _delete_refused(console: Console, exc: InputError, kwargs: Mapping[str, Any]) -> Template:
    """A deletion refused (something refers to the object): the page as stored, saying why."""
    address = kwargs["address"]
    return mailbox_page(
        console,
        _mailbox(console, address),
        found={"": console.refusal(exc)},
        status_code=exc.status_code,
    )


def _path(address: str) -> str:
    return "/admin/mailboxes/" + quote(address, safe="@")


class MailboxesAdmin(Controller):
    path = "/admin/mailboxes"
    dependencies = {"console": admin_console}

    @get("/", sync_to_thread=True, name="admin_mailboxes")
    def index(self, console: CurrentConsole, q: str = "") -> Template:
        q = q.strip()[:200]
        stmt = select(Mailbox).outerjoin(Contract).order_by(Mailbox.address)
        if q:
            like = f"%{q.lower()}%"
            stmt = stmt.where(
                or_(func.lower(Mailbox.address).like(like), func.lower(Contract.code).like(like))
            )
        boxes = list(console.db.scalars(stmt.limit(500)))
        return console.render("admin/mailboxes.html", q=q, boxes=boxes)

    @get("/new", sync_to_thread=True, name="admin_mailbox_new")
    def new(self, console: CurrentConsole) -> Template:
        return mailbox_page(console, None)

    @form_post("/new", refused=_refused)
    def create(self, console: CurrentConsole, data: FormDict) -> Template | Redirect:
        address = form_str(data, "address").lower()
        where = "mailboxes[0].address"
        if not address:
            raise ConfigError([Problem.of(0, "console", where, N_("a mailbox needs an address"))])
        if console.db.scalar(select(Mailbox.id).where(Mailbox.address == address)):
            raise ConfigError(
                [Problem.of(0, "console", where, N_("%(name)r exists already"), name=address)]
            )
        save(console, mailbox_fragment(data, None))
        return console.redirect(_path(address), console.gettext("Mailbox created."))

    @post("/test", sync_to_thread=True, status_code=200)
    def test_new(self, console: CurrentConsole, data: FormDict) -> Template:
        """ "Test connection" on the form of a new mailbox."""
        return self._test(console, None, data)

    @form_post("/{address:str}/delete", refused=_delete_refused)
    def delete(self, console: CurrentConsole, address: str, data: FormDict) -> Template | Redirect:
        """Only what nothing refers to (``core.configuration.delete``); otherwise a 409 saying
        what refers to it."""
        found = _mailbox(console, address)
        delete_object(console.db, "mailbox", found.address, console.user)
        return console.redirect("/admin/mailboxes", console.gettext("Mailbox deleted."))

    @get("/{address:str}", sync_to_thread=True, name="admin_mailbox")
    def show(self, console: CurrentConsole, address: str) -> Template:
        return mailbox_page(console, _mailbox(console, address))

    @form_post("/{address:str}", refused=_refused)
    def update(self, console: CurrentConsole, address: str, data: FormDict) -> Template | Redirect:
        box = _mailbox(console, address)
        save(console, mailbox_fragment(data, box))
        return console.redirect(_path(box.address), console.gettext("Mailbox saved."))

    @post("/{address:str}/test", sync_to_thread=True, status_code=200)
    def test(self, console: CurrentConsole, address: str, data: FormDict) -> Template:
        """ "Test connection": with the form's settings, saved or not; changes nothing."""
        return self._test(console, _mailbox(console, address), data)

    @staticmethod
    def _test(console: Console, box: Mailbox | None, data: Mapping[str, Any]) -> Template:
        address = box.address if box is not None else form_str(data, "address")
        worked, sentence, values = try_connection(data, address)
        return mailbox_page(
            console, box, form=data, tested=(worked, console.gettext(sentence) % values)
        )


handlers = [MailboxesAdmin]
