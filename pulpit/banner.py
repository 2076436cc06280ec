"""The start-up banner of ``pulpit serve --demo-banner`` (what ``make run`` prints).

The demo logins are read from ``config/examples/demo.yaml`` -- the same file ``make run``
applies -- so the banner never drifts from the accounts that actually exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import Settings

log = logging.getLogger(__name__)

DEMO_FILE = Path("config") / "examples" / "demo.yaml"


@dataclass(frozen=True)
class DemoLogin:
    email: str
    role: str
    password: str


def find_demo_file() -> Path | None:
    """The demo file next to the working directory (``make run``), else next to the code."""
    for candidate in (Path.cwd() / DEMO_FILE, Path(__file__).resolve().parent.parent / DEMO_FILE):
        if candidate.is_file():
            return candidate
    return None


def demo_logins(path: Path) -> list[DemoLogin]:
    """Every login the file defines with a ``password:``: ``users:`` entries, then client
    contacts (``clients: [{contacts: [...]}]``, which log in to the client portal)."""
    import yaml

    data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        return []
    entries: list[tuple[Any, str]] = [(user, "") for user in data.get("users") or []]
    for client in data.get("clients") or []:
        if isinstance(client, dict):
            entries += [(contact, "client") for contact in client.get("contacts") or []]
    logins: list[DemoLogin] = []
    for entry, default_role in entries:
        if isinstance(entry, dict) and entry.get("email") and entry.get("password"):
            role = str(entry.get("role") or default_role)
            logins.append(DemoLogin(str(entry["email"]), role, str(entry["password"])))
    return logins


def console_url(settings: Settings) -> str:
    """The URL a person opens: PULPIT_PUBLIC_URL when set, else where the server listens."""
    listening = f"http://{settings.http_host}:{settings.http_port}"
    # public_url has a default of its own; only an explicitly changed one beats the real port.
    if settings.public_url and settings.public_url != Settings().public_url:
        return settings.public_url
    return listening


def _shown(path: Path | None) -> str:
    if path is None:
        return "?"
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:  # outside the working directory: the full path is clearer
        return str(path)


def format_banner(settings: Settings, logins: list[DemoLogin], *, demo_file: Path | None) -> str:
    lines = ["", f"  Pulpit is running at {console_url(settings)}", ""]
    if logins:
        lines.append(f"  Demo logins (from {_shown(demo_file)}):")
        width_email = max(len(login.email) for login in logins)
        width_role = max(len(login.role) for login in logins)
        for login in logins:
            lines.append(
                f"    {login.email:<{width_email}}  {login.role:<{width_role}}  {login.password}"
            )
    else:
        lines.append("  No demo logins: config/examples/demo.yaml was not found or has none.")
    lines.append("")
    lines.append(f"  SMTP gateway on {settings.smtp_host}:{settings.smtp_port}")
    lines += ["  Stop with Ctrl+C.", ""]
    return "\n".join(lines)


def demo_banner(settings: Settings) -> str:
    import yaml

    path = find_demo_file()
    logins: list[DemoLogin] = []
    if path is not None:
        try:
            logins = demo_logins(path)
        except (OSError, yaml.YAMLError) as exc:
            # The banner is a courtesy: a broken demo file must not stop the server.
            log.warning("could not read the demo logins from %s: %s", path, exc)
    return format_banner(settings, logins, demo_file=path)
