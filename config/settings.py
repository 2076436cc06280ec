"""Pulpit's settings: one typed object, built once at start and passed in.

Sources, later ones win: built-in defaults, the TOML file named by ``PULPIT_CONFIG``
(default ``./pulpit.toml`` when it exists), then ``PULPIT_*`` environment variables.
Nothing here touches the disk or the network at import time.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


class SettingsError(Exception):
    """A setting has a value Pulpit cannot use; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./var")
    database_url: str = ""  # derived from data_dir when empty
    broker_url: str = "memory://"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    outbound_smtp_url: str = "log://"
    # Links in mail and the banner; load_settings derives it from http_host:http_port when unset.
    public_url: str = "http://127.0.0.1:8000"
    # generated into the data dir on first start when empty; never printed in a repr
    secret_key: str = field(default="", repr=False)
    max_message_bytes: int = 26_214_400
    default_language: str = "pl"
    reopen_days: int = 14
    # Stored mails one mail.process job takes and processes in one transaction
    # (mailgw.process.run_batch); 1 processes each mail in its own transaction.
    mail_batch: int = 64
    session_hours: int = 12
    mail_domain: str = ""  # Message-ID domain; derived from public_url when empty
    smtp_protocol: str = "smtp"  # "lmtp" behind Postfix or another MTA (RFC 2033)
    smtp_tls_cert: str = ""  # PEM certificate: the SMTP gateway offers STARTTLS when set
    smtp_tls_key: str = ""
    mail_from: str = ""  # From of outgoing mail; "Pulpit <pulpit@<mail domain>>" when empty
    # Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is believed
    # (web/client_ip.py); empty trusts none and the peer's address is the client's.
    trusted_proxies: str = ""
    # Comma-separated roles whose users must use two-step login (an authenticator app) in
    # the console, e.g. "admin,coordinator"; they are sent to set it up at their first login.
    two_step_roles: str = ""
    # Comma-separated second factors users may choose, for every role: "totp" (an
    # authenticator app), "email" (a one-time code mailed at login). A role in two_step_roles
    # satisfies the requirement with any of them.
    two_step_methods: str = "totp,email"
    # The authserv-id (RFC 8601) of the MTA in front of Pulpit whose Authentication-Results
    # headers are believed (mailgw/trust.py); empty believes none.
    trusted_authserv_id: str = ""
    # Pulpit is the MX: verify DKIM signatures and read DMARC policy from DNS itself.
    verify_dkim: bool = False
    # Closed tickets resolved more than this many days ago are anonymised by the scheduler
    # (core.privacy.retention, docs/privacy.md); 0 never does.
    retention_days: int = 0
    # Technicians and subcontractors change or delete their own work log entries for this
    # many days after writing them (core.worklog.services.may_change); coordinators and
    # administrators always.
    worklog_edit_days: int = 7
    # Each client's managers get last month's billing statement by mail, with the XLSX
    # attached (workers.statements, docs/reports.md); off by default.
    monthly_statements: bool = False
    # The bearer token Prometheus sends to scrape /metrics (web.metrics, docs/metrics.md);
    # empty answers 404 there. A secret: never printed in a repr.
    metrics_token: str = field(default="", repr=False)
    # Where attachment and raw-mail content is kept (core.blobs.open_blob_store, docs/settings.md):
    # empty or "file:" the data dir's blobs/, "file:///absolute/path" another directory,
    # "database:" the PostgreSQL database (for several hosts).
    blob_url: str = ""

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'pulpit.db').resolve()}"

    @property
    def required_two_step_roles(self) -> frozenset[str]:
        return frozenset(r.strip().lower() for r in self.two_step_roles.split(",") if r.strip())

    @property
    def allowed_two_step_methods(self) -> frozenset[str]:
        return frozenset(m.strip().lower() for m in self.two_step_methods.split(",") if m.strip())

    @property
    def blob_dir(self) -> Path:
        """The directory store's directory: the one ``PULPIT_BLOB_URL=file:///path`` names,
        else ``<data dir>/blobs`` (also where ``pulpit blobs migrate`` copies from and to)."""
        directory = _blob_url_directory(self.blob_url)
        return directory if directory is not None else self.data_dir / "blobs"

    @property
    def blobs_in_database(self) -> bool:
        return self.blob_url.strip() == "database:"

    def ensure_secret_key(self) -> Settings:
        """Return settings with a secret key, generating one into the data dir if needed."""
        if self.secret_key:
            return self
        path = self.data_dir / "secret_key"
        if path.exists():
            key = path.read_text().strip()
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")
        return replace(self, secret_key=key)


_BLOB_URL_HELP = (
    "use file: (the data directory's blobs/), file:///absolute/path (a directory) "
    "or database: (in the PostgreSQL database, for several hosts)"
)


def _blob_url_directory(url: str) -> Path | None:
    """The directory a ``file:///path`` blob URL names; None for the default and database:.
    The same forms as core.blobs.parse_blob_url (config/ imports nothing from core)."""
    parts = urlsplit(url.strip())
    if parts.scheme == "file" and not parts.netloc and parts.path.startswith("/"):
        return Path(unquote(parts.path))
    return None


def _check_blob_url(settings: Settings) -> None:
    text = settings.blob_url.strip()
    if text in ("", "file:", "file://") or _blob_url_directory(text) is not None:
        return
    if text != "database:":
        raise SettingsError(
            f"PULPIT_BLOB_URL={settings.blob_url!r} is not supported; {_BLOB_URL_HELP}"
        )
    if not settings.resolved_database_url.startswith("postgresql"):
        raise SettingsError(
            "PULPIT_BLOB_URL=database: keeps attachments in the database, which needs PostgreSQL "
            "(PULPIT_DATABASE_URL=postgresql+psycopg://...); with the embedded SQLite database "
            "leave PULPIT_BLOB_URL empty and they stay in the data directory"
        )


# core.tables.ROLES; config/ imports nothing from core.
_ROLES = ("admin", "coordinator", "technician", "client", "subcontractor")
_TWO_STEP_METHODS = ("totp", "email")
_BOOL_FIELDS = {"verify_dkim", "monthly_statements"}
_INT_FIELDS = {"http_port", "smtp_port", "max_message_bytes", "reopen_days", "session_hours"}
_INT_FIELDS.add("retention_days")  # docs/privacy.md
_INT_FIELDS.add("worklog_edit_days")  # docs/worklog.md
_INT_FIELDS.add("mail_batch")  # docs/mail.md, "Processing in batches"


def _coerce(name: str, value: Any, origin: str) -> Any:
    if name == "data_dir":
        return Path(str(value))
    if name in ("trusted_proxies", "two_step_roles", "two_step_methods") and isinstance(
        value, list | tuple
    ):
        # TOML may list them: trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
        return ",".join(str(v) for v in value)
    if name in _BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{origin}: {name} must be true or false, not {value!r}")
    if name in _INT_FIELDS:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{origin}: {name} must be a whole number, not {value!r}") from None
        if name == "mail_batch" and not 1 <= number <= 1000:
            raise SettingsError(f"{origin}: {name} must be between 1 and 1000, not {number}")
        return number
    return str(value)


def listening_url(host: str, port: int) -> str:
    """The address the console serves at, for links in mail when PULPIT_PUBLIC_URL is not set:
    so a changed port (PULPIT_HTTP_PORT) reaches every link, not only the banner. A wildcard
    host (0.0.0.0, ::) names this machine by its host name."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.getfqdn() or "localhost"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL
    return f"http://{host}:{port}"


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | os.PathLike[str] | None = None
) -> Settings:
    """Build the settings from defaults, the TOML file and the environment."""
    env = os.environ if environ is None else environ
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or env.get("PULPIT_CONFIG")
    if path is None and Path("pulpit.toml").exists():
        path = "pulpit.toml"
    if path:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"{p}: the settings file does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{p}: not valid TOML: {exc}") from None
        section = raw.get("pulpit", raw)
        for key, value in section.items():
            if key not in known:
                raise SettingsError(
                    f"{p}: unknown setting {key!r}; known: {', '.join(sorted(known))}"
                )
            values[key] = _coerce(key, value, str(p))

    for name in known:
        var = f"PULPIT_{name.upper()}"
        if var in env and env[var] != "":
            values[name] = _coerce(name, env[var], var)

    if "public_url" not in values:
        values["public_url"] = listening_url(
            str(values.get("http_host", Settings.http_host)),
            int(values.get("http_port", Settings.http_port)),
        )
    settings = Settings(**values)
    if settings.smtp_protocol not in ("smtp", "lmtp"):
        raise SettingsError(
            f"PULPIT_SMTP_PROTOCOL={settings.smtp_protocol!r} is not supported; use smtp or lmtp"
        )
    for entry in (e.strip() for e in settings.trusted_proxies.split(",")):
        try:
            if entry:
                ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                f"PULPIT_TRUSTED_PROXIES: {entry!r} is no IP address or network (CIDR)"
            ) from None
    unknown_roles = [r for r in settings.required_two_step_roles if r not in _ROLES]
    if unknown_roles:
        raise SettingsError(
            f"PULPIT_TWO_STEP_ROLES: {', '.join(map(repr, unknown_roles))} is no role; "
            f"use any of {', '.join(_ROLES)}"
        )
    methods = settings.allowed_two_step_methods
    unknown_methods = sorted(m for m in methods if m not in _TWO_STEP_METHODS)
    if unknown_methods or not methods:
        raise SettingsError(
            f"PULPIT_TWO_STEP_METHODS: {', '.join(map(repr, unknown_methods)) or 'nothing'} "
            f"is no method; use one or both of {', '.join(_TWO_STEP_METHODS)}"
        )
    for scheme_field, allowed in (
        ("broker_url", ("memory://", "redis://", "rediss://", "amqp://", "amqps://")),
        ("outbound_smtp_url", ("log://", "smtp://", "smtps://", "null://")),
    ):
        value = getattr(settings, scheme_field)
        if not value.startswith(allowed):
            raise SettingsError(
                f"PULPIT_{scheme_field.upper()}={value!r} is not supported; "
                f"use one of {', '.join(allowed)}"
            )
    _check_blob_url(settings)
    return settings
