"""What every admin screen shares: who may open it, the one write path, problems by field,
an object's history.

Every screen saves through :func:`save`, which applies the YAML fragment equivalent to the
form (``core.configuration.edit``): the same validation and service as ``pulpit config
apply``. A refusal (``ConfigError``) comes back as ``problems``: ``{key path: sentence}``,
keyed like the fragment (``contracts[0].ticket_types[1].reaction``), so a screen puts each
sentence under its field and keeps what was typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar.di import Provide
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import AuditEntry
from core.configuration.edit import apply_fragment, check_configure, preview
from core.configuration.errors import ConfigError
from core.configuration.result import ApplyResult
from core.errors import InputError
from web.console.forms import Console, guarded

#: The ``console`` dependency of every admin page: administrators (``configure``) only.
admin_console: Provide = guarded(check_configure)


def save(console: Console, fragment: dict[str, Any]) -> ApplyResult:
    """Apply the screen's change (the caller is a ``form_post`` handler: it commits, or rolls
    back on a refusal)."""
    return apply_fragment(console.db, fragment, actor=console.user)


def saved_message(
    console: Console, result: ApplyResult, data: Mapping[str, Any] | None = None
) -> str:
    """What a save says: whether anything changed, and how many open tickets get new
    deadlines. The SLA worker recomputes them after the commit; the number is the one the
    confirmation showed (its form sends it back as ``deadlines``)."""
    message = console.gettext("Saved.") if result.changed else console.gettext("Nothing changed.")
    announced = str((data or {}).get("deadlines", ""))
    if result.rescheduled and announced.isdigit() and int(announced):
        message += " " + console.gettext("Open tickets with new deadlines: %(num)d.") % {
            "num": int(announced)
        }
    return message


def what_it_would_do(console: Console, fragment: dict[str, Any]) -> ApplyResult:
    """The change's effect before saving (``ApplyResult.deadlines``: "14 open tickets get new
    deadlines")."""
    return preview(console.db, fragment, actor=console.user)


def problems(exc: InputError, console: Console) -> dict[str, str]:
    """Each problem's sentence in the user's language by its key path (the first one per
    path), for a refused ``ConfigError``; any other refusal under the path ""."""
    if not isinstance(exc, ConfigError):
        return {"": console.refusal(exc)}
    found: dict[str, str] = {}
    for problem in exc.problems:
        found.setdefault(problem.path, problem.localized(console.gettext))
    return found


def history(db: Session, object_type: str, key: str, *, limit: int = 20) -> list[AuditEntry]:
    """The configuration changes of one object, newest first (``AuditEntry.object_type`` and
    ``object_key``, written by ``core.configuration.apply``)."""
    return list(
        db.scalars(
            select(AuditEntry)
            .where(AuditEntry.object_type == object_type, AuditEntry.object_key == key)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(limit)
        )
    )
