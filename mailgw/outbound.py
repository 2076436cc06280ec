"""Outgoing mail: render a queued mail from its template, build the message, hand it to a relay.

Three steps, each usable alone (the ``mail.send`` actor in ``workers.actors`` runs them in turn
on a row of ``core.mail.outbox``):

* :func:`render` -- ``templates/mail/<name>/{subject.txt, body.txt, body.html}`` with Jinja2,
  translated through the Babel catalogues in ``templates/mail/locale`` (see the README there).
* :func:`build_outgoing` -- an RFC 5322 message with the row's ``Message-ID``, the threading
  headers, the RFC 3834 auto-reply headers and text and HTML alternatives, written straight
  to its bytes (:mod:`mailgw.compose`); :func:`build_message` is the same parsed back.
* :func:`send` -- chosen by the scheme of ``PULPIT_OUTBOUND_SMTP_URL`` (Warehouse: a setting,
  never ``if testing``): ``log://`` writes the mail to the log and ``<data dir>/outbox.log``,
  ``null://`` drops it, ``smtp://`` and ``smtps://`` talk to a relay.

Failures are classified, because they call for different actions (Zulip keeps the sender's
errors and the operator's apart the same way): :class:`TemporaryDeliveryError` is retried
later, :class:`PermanentDeliveryError` means this recipient will never get this message, and
:class:`RelayConfigurationError` (a kind of temporary error) means the operator must fix the
relay settings. Every log line carries the Message-ID.
"""

from __future__ import annotations

import gettext as _gettext
import logging
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import get_day_names, get_month_names
from markupsafe import Markup

from core.i18n import compiled_catalogue
from core.mail.models import OutboundMail
from core.mail.outbox import derive_mail_domain
from mailgw.compose import OutgoingMail, compose, parts_of

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "mail"
LANGUAGES = ("pl", "en")
# Templates are written in English; a language without a catalogue falls back to it.
FALLBACK_LANGUAGE = "en"
SMTP_TIMEOUT_SECONDS = 30.0
DEFAULT_TIMEZONE = "Europe/Warsaw"

_log_file_lock = threading.Lock()


class MailSettings(Protocol):
    """What this module reads from ``config.settings.Settings``."""

    @property
    def outbound_smtp_url(self) -> str: ...
    @property
    def public_url(self) -> str: ...
    @property
    def mail_domain(self) -> str: ...
    @property
    def data_dir(self) -> Path: ...
    @property
    def mail_from(self) -> str: ...


# --- Errors ----------------------------------------------------------------------------------


class DeliveryError(Exception):
    """A mail could not be handed to the relay."""


class TemporaryDeliveryError(DeliveryError):
    """Worth another try later: the relay is down or slow, or answered 4xx."""


class RelayConfigurationError(TemporaryDeliveryError):
    """The operator's settings are wrong (login refused, TLS certificate, our sender refused).

    Retried like any temporary error, since fixing the settings should not lose the mail, but
    logged as an error that names the setting to check.
    """


class RelayUnavailableError(TemporaryDeliveryError):
    """The relay could not be reached or dropped the conversation: not this message's fault.

    Every other mail waiting for the same relay would fail alike, so a batch stops here.
    """


class PermanentDeliveryError(DeliveryError):
    """The relay refused this message for this recipient with a 5xx: retrying changes nothing."""


# --- Settings helpers ------------------------------------------------------------------------


def mail_domain(settings: MailSettings) -> str:
    """The domain of our Message-IDs and default sender: ``mail_domain``, else the public host."""
    return derive_mail_domain(settings.mail_domain, settings.public_url)


def sender(settings: MailSettings) -> str:
    """The From address: ``mail_from`` when configured, else ``Pulpit <pulpit@<mail domain>>``."""
    configured = settings.mail_from.strip()
    if configured:
        return configured
    return formataddr(("Pulpit", f"pulpit@{mail_domain(settings)}"))


# --- Rendering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def pick_language(language: str | None) -> str:
    """The supported language for ``language`` (``pl``, ``pl-PL``, ``PL``), else English."""
    code = (language or "").strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else FALLBACK_LANGUAGE


def translations(language: str, templates_dir: Path = TEMPLATES_DIR) -> _gettext.NullTranslations:
    """The mail catalogue of ``language``, compiled in memory (no ``.mo`` files are kept)."""
    return compiled_catalogue(
        templates_dir / "locale" / language / "LC_MESSAGES" / "messages.po", language
    )


def format_local(value: str | datetime | None, timezone: str | None, language: str) -> str:
    """An instant as the reader's wall clock, with the zone named: 'piątek, 27 listopada ...'."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        raise ValueError(f"a time in a mail context has no zone: {value!r}")
    zone = timezone or DEFAULT_TIMEZONE
    local = moment.astimezone(ZoneInfo(zone))
    days, months = _names(language)
    # Babel's "EEEE, d MMMM y, HH:mm" written out: Babel parsed the pattern and looked up the
    # locale's names on every call, a seventh of rendering a mail (tests compare the two).
    text = (
        f"{days[local.weekday()]}, {local.day} {months[local.month]} {local.year}, "
        f"{local.hour:02d}:{local.minute:02d}"
    )
    return f"{text} ({zone})"


@cache
def _names(language: str) -> tuple[dict[int, str], dict[int, str]]:
    """The language's full weekday names (0 is Monday) and month names (1 is January) in the
    form a date takes ("27 listopada", not "listopad")."""
    return (
        dict(get_day_names("wide", "format", locale=language)),
        dict(get_month_names("wide", "format", locale=language)),
    )


def _direct_gettext(lookup: Callable[[str], str]) -> Callable[..., str]:
    """What ``jinja2.ext.i18n`` installs as ``gettext`` with ``newstyle=True``, calling the
    catalogue itself: the phrase, marked safe where the template escapes, then formatted
    with its named values (always, so ``%%`` is a percent sign either way)."""

    @jinja2.pass_context
    def gettext(context: jinja2.runtime.Context, message: str, /, **values: Any) -> str:
        text = lookup(message)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % values

    return gettext


@lru_cache(maxsize=8)
def _environment(language: str, templates_dir: Path) -> jinja2.Environment:
    # One environment per language: installed translations are environment globals, and
    # worker threads render in different languages at the same time.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        # Only HTML is escaped: a "<" in a ticket subject must reach the text part as it is.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        # A missing context key is an error in the worker, not a blank in a customer's mail.
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
        # Compiled once per process: no stat() of each template file on every mail (a changed
        # template is read when the workers restart, as Django's cached loader does).
        auto_reload=False,
    )
    catalogue = translations(language, templates_dir)
    # Added to the Environment by the i18n extension at run time, hence the ignore.
    env.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
    # `_()` and `{% trans %}` straight to the catalogue: the extension's `_` looks `gettext` up
    # and calls it through the context, which calls the catalogue through the context again,
    # two of Jinja's calls per phrase and a dozen phrases a mail.
    direct = _direct_gettext(catalogue.gettext)
    env.globals.update(gettext=direct, _=direct)
    env.globals["lang"] = language
    env.filters["local"] = lambda value, timezone=None: format_local(value, timezone, language)
    env.filters["hours"] = format_hours
    env.filters["money"] = lambda minor, currency: format_money(minor, currency, language)
    env.filters["month"] = lambda value: format_month(value, language)
    return env


def compile_templates(templates_dir: Path = TEMPLATES_DIR) -> int:
    """Compile every mail template in every language now; how many there were. A worker does
    it before its first job (``pulpit.runtime``): about 0.15 s of CPU that the first mails
    after a start would otherwise wait for, a template at a time."""
    compiled = 0
    for language in LANGUAGES:
        env = _environment(language, templates_dir)
        for name in env.list_templates(extensions=("txt", "html")):
            env.get_template(name)
            compiled += 1
    return compiled


def format_hours(minutes: Any) -> str:
    """Minutes as hours and minutes, 750 -> "12:30" (a statement's work time)."""
    total = int(minutes or 0)
    return f"{total // 60}:{total % 60:02d}"


def format_money(minor: Any, currency: str, language: str) -> str:
    """An amount in minor units in the reader's language: 1234550, "PLN" -> "12 345,50 zł"."""
    from babel.numbers import format_currency

    return format_currency(int(minor) / 100, currency, locale=pick_language(language))


def format_month(value: str, language: str) -> str:
    """ "2026-11" as the month's name and year in the reader's language ("listopad 2026")."""
    from babel.dates import format_date

    day = date.fromisoformat(f"{value}-01")
    return format_date(day, "LLLL yyyy", locale=pick_language(language))


def _subject_tag(subject: str, number: Any) -> str:
    """Add ``[#N]`` unless some ``[...#N]`` tag is already there (docs/mail.md)."""
    if number is None or number == "":
        return subject
    # One pattern for every number: a pattern built per ticket number was compiled anew for
    # each mail (the re module caches 512), a fifth of rendering a mail under load.
    wanted = str(number)
    if any(found == wanted for found in _ANY_TAG.findall(subject)):
        return subject
    return f"{subject} [#{number}]"


_ANY_TAG = re.compile(r"\[[^\[\]#\s]*#([^\[\]]*)\]")


def render(
    template: str,
    language: str,
    context: dict[str, Any],
    *,
    templates_dir: Path = TEMPLATES_DIR,
) -> RenderedMail:
    """Render a mail in ``language`` (falls back to English) from its template folder."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", template):
        raise ValueError(f"{template!r} is not a mail template name")
    env = _environment(pick_language(language), templates_dir)
    raw_subject = env.get_template(f"{template}/subject.txt").render(context)
    # One line, whatever the ticket subject held: a line break in a header would end it.
    subject = _subject_tag(" ".join(raw_subject.split()), context.get("ticket_number"))
    text = env.get_template(f"{template}/body.txt").render(context)
    html = env.get_template(f"{template}/body.html").render({**context, "subject": subject})
    text = "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"
    # "-- " (with the space) is the signature separator and must keep its trailing space.
    text = text.replace("\n--\n", "\n-- \n")
    return RenderedMail(subject=subject, text=text, html=html.strip() + "\n")


# --- Building --------------------------------------------------------------------------------


def build_outgoing(
    row: OutboundMail,
    rendered: RenderedMail,
    settings: MailSettings,
    read_blob: Callable[[str], bytes] | None = None,
) -> OutgoingMail:
    """The message for ``row``, as the relay gets it (:func:`mailgw.compose.compose`);
    non-ASCII headers are RFC 2047 encoded-words."""
    from_ = sender(settings)
    headers = [
        ("From", from_),
        ("To", row.to_addr),
        ("Subject", rendered.subject),
        # RFC 5322 3.6.1: when the message was ready to go, i.e. when it was queued; a retry
        # is the same message, which is also why the Message-ID never changes.
        ("Date", format_datetime(row.created_at)),
        ("Message-ID", row.message_id),
    ]
    stored = row.headers or {}
    # RFC 5322 3.6.4: In-Reply-To names the parent, References the thread's ids, oldest first;
    # Outlook, Gmail and Thunderbird thread on these (Gmail also wants a similar subject).
    headers += [
        (name, stored[name])
        for name in ("In-Reply-To", "References", "Reply-To")
        if stored.get(name)
    ]
    if stored.get("Auto-Submitted"):
        # RFC 3834 section 5: responders must not answer auto-submitted mail, which breaks
        # loops with vacation replies and other help desks. Exchange and Outlook ignore it and
        # honour their own X-Auto-Response-Suppress instead ([MS-OXCMAIL] 2.2.3.2.14).
        headers += [
            ("Auto-Submitted", stored["Auto-Submitted"]),
            ("X-Auto-Response-Suppress", "All"),
        ]
    raw = compose(
        headers=headers,
        text=rendered.text,
        html=rendered.html,
        attachments=parts_of(row.attachments or [], read_blob),
        trailing=[("Content-Language", pick_language(row.language))],  # RFC 3282
    )
    to = [addr for _, addr in getaddresses([row.to_addr]) if addr]
    return OutgoingMail(
        raw=raw,
        message_id=row.message_id,
        envelope_from=parseaddr(from_)[1],
        recipients=tuple(to),
    )


def build_message(
    row: OutboundMail,
    rendered: RenderedMail,
    settings: MailSettings,
    read_blob: Callable[[str], bytes] | None = None,
) -> EmailMessage:
    """:func:`build_outgoing`'s message parsed back, to read (the tests read mail this way)."""
    return build_outgoing(row, rendered, settings, read_blob).message()


# --- Sending ---------------------------------------------------------------------------------


def send(
    settings: MailSettings,
    message: OutgoingMail | EmailMessage,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = SMTP_TIMEOUT_SECONDS,
) -> None:
    """Hand ``message`` over by the scheme of ``outbound_smtp_url``; raises a DeliveryError.

    ``ssl_context`` defaults to the system's trusted CAs with hostname checks; tests pass one
    that trusts their own certificate.
    """
    url = settings.outbound_smtp_url
    scheme = urlsplit(url).scheme.lower()
    mail = message if isinstance(message, OutgoingMail) else OutgoingMail.from_message(message)
    message_id = mail.message_id or "(no Message-ID)"
    if scheme == "null":
        log.info("mail %s: discarded (outbound mail is null://)", message_id)
        return
    if scheme == "log":
        _write_to_log(settings, mail.message(), message_id)
        return
    if scheme in ("smtp", "smtps"):
        _send_smtp(settings, mail, message_id, ssl_context=ssl_context, timeout=timeout)
        return
    raise RelayConfigurationError(
        f"PULPIT_OUTBOUND_SMTP_URL={url!r}: unknown scheme; use log://, null://, smtp:// or smtps://"
    )


def readable(message: EmailMessage) -> str:
    """The message as a person reads it: decoded headers, then each text part."""
    lines = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            lines += ["", f"--- {part.get_content_type()} ---", str(part.get_content()).rstrip()]
    return "\n".join(lines) + "\n"


def _write_to_log(settings: MailSettings, message: EmailMessage, message_id: str) -> None:
    text = readable(message)
    path = Path(settings.data_dir) / "outbox.log"
    # One line in the process log (a whole HTML mail there buries everything else under
    # make run); the full text goes to outbox.log, and to the log at DEBUG.
    log.info(
        "mail %s to %s: %s (outbound mail is log://, not sent; full text in %s)",
        message_id,
        message["To"],
        message["Subject"],
        path,
    )
    log.debug("mail %s:\n%s", message_id, text)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _log_file_lock, path.open("a", encoding="utf-8") as fh:
            fh.write(f"===== {message_id} =====\n{text}\n")
    except OSError as exc:
        # A read-only data dir must not turn a log:// delivery into a retry loop; the text
        # goes to the log instead.
        log.info("mail %s:\n%s", message_id, text)
        log.warning("mail %s: could not append to %s: %s", message_id, path, exc)


class _RelayConnections:
    """One open relay connection per worker thread, kept between mails.

    Connecting, STARTTLS and AUTH cost more than the mail itself (a TLS handshake per mail);
    a connection is reused while it has been idle for less than :data:`RELAY_IDLE_SECONDS`
    (relays drop idle clients after a few minutes; Postfix's default is 300 s) and dropped
    after any error. Per thread, because an SMTP conversation cannot be shared.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def _slots(self) -> dict[Any, tuple[smtplib.SMTP, float]]:
        slots: dict[Any, tuple[smtplib.SMTP, float]] | None = getattr(self._local, "slots", None)
        if slots is None:
            slots = self._local.slots = {}
        return slots

    def get(self, key: Any, connect: Callable[[], smtplib.SMTP]) -> tuple[smtplib.SMTP, bool]:
        """(a connection, whether it was kept from an earlier mail)."""
        slots = self._slots()
        now = time.monotonic()
        kept = slots.get(key)
        if kept is not None:
            client, last_used = kept
            if now - last_used < RELAY_IDLE_SECONDS:
                slots[key] = (client, now)
                return client, True
            self.discard(key)
        client = connect()
        slots[key] = (client, now)
        return client, False

    def discard(self, key: Any) -> None:
        kept = self._slots().pop(key, None)
        if kept is None:
            return
        client = kept[0]
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


RELAY_IDLE_SECONDS = 30.0


@cache
def _default_ssl_context() -> ssl.SSLContext:
    """The system's trusted CAs with hostname checks, loaded once per process.

    Loading the CA store costs milliseconds; one context serves every mail and thread (an
    SSLContext is safe to share), and a stable context is what lets a kept connection be found.
    """
    return ssl.create_default_context()


_relay_connections = _RelayConnections()


def _reply(code: int, text: bytes | str) -> str:
    detail = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(detail.split())}"


@dataclass(frozen=True)
class _Relay:
    """Where ``PULPIT_OUTBOUND_SMTP_URL`` points and how to talk to it."""

    url: str
    scheme: str
    host: str
    port: int
    user: str | None
    password: str
    # EHLO with our mail domain: socket.getfqdn() can stall on a slow resolver, and it is
    # the name our Message-IDs use anyway.
    helo: str

    @property
    def implicit_tls(self) -> bool:
        return self.scheme.lower() == "smtps"

    @property
    def name(self) -> str:
        """``smtp://host:port`` for messages: never the login or password."""
        return f"{self.scheme}://{self.host}:{self.port}"


def _relay(settings: MailSettings) -> _Relay:
    """The relay named by ``outbound_smtp_url``; a URL without a host is the operator's error."""
    parts = urlsplit(settings.outbound_smtp_url)
    host = parts.hostname
    if not host:
        raise RelayConfigurationError("PULPIT_OUTBOUND_SMTP_URL names no host")
    implicit_tls = parts.scheme.lower() == "smtps"
    return _Relay(
        url=settings.outbound_smtp_url,
        scheme=parts.scheme,
        host=host,
        port=parts.port or (465 if implicit_tls else 25),
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else "",
        helo=mail_domain(settings),
    )


def _connect(relay: _Relay, context: ssl.SSLContext, timeout: float) -> smtplib.SMTP:
    """A new conversation with the relay: EHLO, STARTTLS when offered, then the login."""
    client: smtplib.SMTP
    if relay.implicit_tls:
        client = smtplib.SMTP_SSL(
            relay.host, relay.port, local_hostname=relay.helo, timeout=timeout, context=context
        )
    else:
        client = smtplib.SMTP(relay.host, relay.port, local_hostname=relay.helo, timeout=timeout)
    try:
        client.ehlo()
        if not relay.implicit_tls and client.has_extn("starttls"):
            # Opportunistic STARTTLS (RFC 3207) whenever the relay offers it, verified against
            # the CA store: credentials and mail never cross the network in clear when the
            # relay can do better.
            client.starttls(context=context)
            client.ehlo()
        if relay.user:
            client.login(relay.user, relay.password)
    except BaseException:
        client.close()
        raise
    return client


def _deliver(
    relay: _Relay,
    context: ssl.SSLContext,
    timeout: float,
    mail: OutgoingMail,
) -> None:
    """Send over this thread's kept connection to the relay, or a new one; raises as smtplib."""
    # The context itself, not its id(): the key holds it alive, so a later context can never
    # take over its address and with it a connection made under other TLS rules.
    key = (relay.url, context)

    def connect() -> smtplib.SMTP:
        return _connect(relay, context, timeout)

    try:
        client, reused = _relay_connections.get(key, connect)
        try:
            _hand_over(client, mail)
        except smtplib.SMTPServerDisconnected:
            # The relay closed a kept connection before taking this mail (an idle timeout):
            # one more try on a new connection; a fresh one failing is real.
            _relay_connections.discard(key)
            if not reused:
                raise
            client, _ = _relay_connections.get(key, connect)
            _hand_over(client, mail)
    except BaseException:
        # Whatever went wrong, the connection's state is unknown: never reuse it.
        _relay_connections.discard(key)
        raise


def _hand_over(client: smtplib.SMTP, mail: OutgoingMail) -> None:
    """MAIL, RCPT and DATA for the composed bytes (what ``send_message`` does, minus building
    them again); a non-ASCII address needs the relay's SMTPUTF8, as there, else the mail is
    refused for good (PermanentDeliveryError)."""
    options: list[str] = []
    if mail.smtputf8:
        client.ehlo_or_helo_if_needed()
        if not client.has_extn("smtputf8"):
            # Retrying changes nothing until the relay changes: this message's end.
            raise PermanentDeliveryError(
                f"the relay does not offer SMTPUTF8, which {mail.envelope_from} -> "
                f"{', '.join(mail.recipients)} needs (an address that is not ASCII)"
            )
        options = ["SMTPUTF8", "BODY=8BITMIME"]
    client.sendmail(mail.envelope_from, list(mail.recipients), mail.raw, mail_options=options)


def _classify(exc: OSError, relay: _Relay, envelope_from: str) -> DeliveryError:
    """The DeliveryError an SMTP or network failure stands for (see the module docstring)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = {rcpt: _reply(code, text) for rcpt, (code, text) in exc.recipients.items()}
        detail = "; ".join(f"{rcpt}: {reply}" for rcpt, reply in replies.items())
        if all(code >= 500 for code, _ in exc.recipients.values()):
            return PermanentDeliveryError(detail)
        return TemporaryDeliveryError(detail)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return RelayConfigurationError(
            f"{relay.name} refused the login in PULPIT_OUTBOUND_SMTP_URL: "
            f"{_reply(exc.smtp_code, exc.smtp_error)}"
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return RelayConfigurationError(
            f"{relay.name} does not offer what PULPIT_OUTBOUND_SMTP_URL asks for (login needs "
            f"AUTH, often only after STARTTLS): {exc}"
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        if exc.smtp_code >= 500:
            return RelayConfigurationError(
                f"{relay.name} refused our sender {envelope_from} (set mail_from to an address "
                f"it accepts): {reply}"
            )
        return TemporaryDeliveryError(reply)
    if isinstance(exc, smtplib.SMTPResponseException):
        # DATA refused (content or size policy) with 5xx is this message's end; a 4xx, or a
        # refusal at HELO, is the relay's state or ours.
        reply = _reply(exc.smtp_code, exc.smtp_error)
        if exc.smtp_code >= 500 and isinstance(exc, smtplib.SMTPDataError):
            return PermanentDeliveryError(reply)
        if exc.smtp_code >= 500:
            return RelayConfigurationError(f"{relay.name}: {reply}")
        return TemporaryDeliveryError(reply)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return RelayConfigurationError(
            f"{relay.name}: the TLS certificate is not trusted: {exc.verify_message}"
        )
    # Refused or reset connections, timeouts, DNS failures, TLS handshakes that broke off: the
    # relay may be back in a minute.
    return RelayUnavailableError(f"{relay.name}: {type(exc).__name__}: {exc}")


def _send_smtp(
    settings: MailSettings,
    mail: OutgoingMail,
    message_id: str,
    *,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
) -> None:
    """Connect (or reuse), deliver, and turn any failure into a classified DeliveryError."""
    relay = _relay(settings)
    context = ssl_context or _default_ssl_context()
    try:
        _deliver(relay, context, timeout, mail)
    except OSError as exc:  # smtplib.SMTPException and ssl.SSLError are OSErrors
        raise _classify(exc, relay, mail.envelope_from) from exc
    log.info("mail %s: handed to %s for %s", message_id, relay.name, ", ".join(mail.recipients))
