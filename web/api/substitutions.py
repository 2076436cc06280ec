"""Substitution endpoints of the JSON API (docs/api.md).

``POST /api/v1/substitutions`` records one, ``GET`` lists the current and future ones the
caller may see (``?past=true`` adds the ended ones), ``DELETE /api/v1/substitutions/{id}``
ends one early. Refusals are sentences in ``{"detail"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar import delete, get, post

from core.access.accounts import get_user_by_email
from core.access.models import Substitution
from core.access.substitutions import create_substitution, end_substitution, list_substitutions
from core.clock import utcnow
from core.directory.models import User
from core.errors import Forbidden, InputError
from web.api.params import Id
from web.api.serializers import iso
from web.deps import DB, CurrentUser


@dataclass
class NewSubstitution:
    absent: str
    substitute: str
    starts_at: str
    ends_at: str


def substitution_json(sub: Substitution, now: datetime) -> dict[str, Any]:
    """The API shape of one substitution; ``active`` is as of ``now``."""
    return {
        "id": sub.id,
        "absent": sub.absent.email,
        "substitute": sub.substitute.email,
        "starts_at": iso(sub.starts_at),
        "ends_at": iso(sub.ends_at),
        "ended_at": iso(sub.ended_at),
        "active": sub.is_active(now),
    }


def parse_time(value: str, name: str) -> datetime:
    """An aware datetime from ISO 8601, or an InputError naming the field."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise InputError(
            f"{name} must be an ISO 8601 time such as 2026-12-01T08:00:00Z, not {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise InputError(f"{name} needs a time zone, e.g. 2026-12-01T08:00:00Z")
    return parsed


def person(db: DB, email: str, name: str) -> User:
    """The user with this e-mail, or an InputError naming the field."""
    user = get_user_by_email(db, email or "")
    if user is None:
        raise InputError(f"{name}: no user with e-mail {email!r}")
    return user


def _staff_only(user: User) -> None:
    if not user.is_staff and user.role != "subcontractor":
        raise Forbidden("substitutions are for staff; clients cannot see or change them")


@get("/substitutions", sync_to_thread=True, summary="List substitutions")
def get_substitutions(db: DB, user: CurrentUser, past: bool = False) -> dict[str, Any]:
    _staff_only(user)
    now = utcnow()
    items = list_substitutions(db, user, now, include_past=past)
    return {"items": [substitution_json(s, now) for s in items]}


@post("/substitutions", sync_to_thread=True, status_code=201, summary="Record a substitution")
def post_substitution(db: DB, user: CurrentUser, data: NewSubstitution) -> dict[str, Any]:
    _staff_only(user)
    now = utcnow()
    sub = create_substitution(
        db,
        absent=person(db, data.absent, "absent"),
        substitute=person(db, data.substitute, "substitute"),
        starts_at=parse_time(data.starts_at, "starts_at"),
        ends_at=parse_time(data.ends_at, "ends_at"),
        actor=user,
        now=now,
    )
    db.commit()
    return substitution_json(sub, now)


@delete(
    "/substitutions/{substitution_id:int}",
    sync_to_thread=True,
    status_code=200,
    summary="End a substitution early",
)
def delete_substitution(db: DB, user: CurrentUser, substitution_id: Id) -> dict[str, Any]:
    _staff_only(user)
    now = utcnow()
    sub = end_substitution(db, substitution_id, user, now)
    db.commit()
    return substitution_json(sub, now)


substitution_handlers = [get_substitutions, post_substitution, delete_substitution]
