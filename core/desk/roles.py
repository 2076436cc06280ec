"""The roles a shared view, canned reply or macro is shared with: names checked against the
roles that exist, blanks and repeats dropped, in the order given."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from core.errors import InputError


def pick_roles(roles: Iterable[str], known: Sequence[str], template: str) -> list[str]:
    """``roles`` stripped, without blanks and repeats; an unknown one is refused with
    ``template`` (``%(role)r`` and ``%(known)s``)."""
    wanted: list[str] = []
    for role in roles:
        role = role.strip()
        if not role:
            continue
        if role not in known:
            raise InputError(template, role=role, known=", ".join(known))
        if role not in wanted:
            wanted.append(role)
    return wanted
