"""The one write path of the configuration for people: the admin console's screens.

A screen's change is the YAML fragment that says the same thing (``{"contracts": [{"code":
"ACME-2026", "key": true}]}``), applied exactly as ``pulpit config apply`` applies a file:
the same validation (every problem with its key path), the same upserts, the same audit, and
the same hand-over of the open tickets under a changed contract or calendar to the SLA worker,
which recomputes them after the commit. So a screen edit and the equivalent YAML are one
change, and ``pulpit config export`` shows it afterwards.

:func:`preview` applies the fragment inside a savepoint, recomputes there, and rolls it all
back: what a screen says before saving ("14 open tickets get new deadlines").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml
from sqlalchemy.orm import Session

from core.access.permissions import can
from core.clock import utcnow
from core.configuration.apply import apply_config_text
from core.configuration.result import ApplyResult
from core.directory.models import User
from core.errors import N_, Forbidden
from core.sla import clocks as sla_clock

SOURCE = "console"


def check_configure(user: User) -> None:
    """Refuse who may not change the configuration (403)."""
    if not can(user, "configure"):
        raise Forbidden(N_("only administrators change the configuration"))


def fragment_text(fragment: dict[str, Any]) -> str:
    """A fragment as the YAML a person would write for it."""
    return yaml.safe_dump(fragment, allow_unicode=True, sort_keys=False, width=100)


def apply_fragment(
    session: Session, fragment: dict[str, Any], *, actor: User, now: datetime | None = None
) -> ApplyResult:
    """Apply a screen's change as ``actor``; raises ``core.configuration.errors.ConfigError``
    with every problem (their ``path`` is the key path within the fragment). The caller
    commits."""
    check_configure(actor)
    return apply_config_text(
        session, fragment_text(fragment), source=SOURCE, actor=actor.email, now=now
    )


def preview(
    session: Session, fragment: dict[str, Any], *, actor: User, now: datetime | None = None
) -> ApplyResult:
    """What applying the fragment would do (counts, tickets getting new deadlines), without
    doing it: applied in a savepoint that is rolled back."""
    check_configure(actor)
    now = now or utcnow()
    savepoint = session.begin_nested()
    try:
        result = apply_config_text(
            session, fragment_text(fragment), source=SOURCE, actor=actor.email, now=now
        )
        # The change itself leaves the recompute to the SLA worker; to say how many open
        # tickets get new deadlines, the preview recomputes them here, rolled back with it.
        result.recomputed_tickets = sla_clock.recompute_open(
            session,
            contract_codes=result.changed_contracts,
            calendar_names=result.changed_calendars,
            now=now,
        )
        return result
    finally:
        savepoint.rollback()
        session.expire_all()
