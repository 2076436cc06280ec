"""Finding and replacing a person's identifiers in stored text, JSON values and raw bytes.

A person is identified by :class:`Terms`: their e-mail address, their name and the local part
of the address. Each is replaced by the matching part of a placeholder, case-insensitively:
the address first (so the local part inside it goes with it), then the name, then the local
part standing alone (``anna.nowak`` in "Pozdrawiam, anna.nowak", but not inside another
address such as ``anna.nowak@other.example``, which is somebody else's identifier).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

MIN_NAME = 4  # a shorter name ("Jo") would replace syllables, not a person
MIN_LOCAL_PART = 3


def placeholder_email(user_id: int, kind: str = "erased") -> str:
    return f"{kind}-{user_id}@pulpit.invalid"


def placeholder_name(user_id: int) -> str:
    return f"Osoba usunięta #{user_id}"


def _literal(replacement: Any) -> Any:
    """A ``re.sub`` replacement taken as it is (no backslash or group references)."""
    return lambda _match: replacement


@dataclass(frozen=True)
class Terms:
    """One person's identifiers and what replaces them."""

    address: str
    name: str | None
    new_address: str
    new_name: str

    @property
    def local_part(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def new_local_part(self) -> str:
        return self.new_address.split("@", 1)[0]

    @cached_property
    def _patterns(self) -> list[tuple[re.Pattern[str], str]]:
        found = [(re.compile(re.escape(self.address), re.I), self.new_address)]
        name = (self.name or "").strip()
        if len(name) >= MIN_NAME and name.lower() != self.address.lower():
            found.append(
                (re.compile(r"(?<!\w)" + re.escape(name) + r"(?!\w)", re.I), self.new_name)
            )
        local = self.local_part
        if len(local) >= MIN_LOCAL_PART:
            found.append(
                (
                    re.compile(r"(?<![\w.+%-])" + re.escape(local) + r"(?![\w+%-]|@|\.\w)", re.I),
                    self.new_local_part,
                )
            )
        return found

    def needles(self) -> list[str]:
        """Lower-cased substrings a SQL ``LIKE`` looks for (each also as JSON escapes it)."""
        words = [self.address.lower()]
        name = (self.name or "").strip().lower()
        if len(name) >= MIN_NAME:
            words.append(name)
        if len(self.local_part) >= MIN_LOCAL_PART:
            words.append(self.local_part.lower())
        escaped = [json.dumps(w)[1:-1] for w in words]
        return list(dict.fromkeys(words + escaped))

    def text(self, value: str) -> str:
        for pattern, replacement in self._patterns:
            value = pattern.sub(_literal(replacement), value)
        return value

    def raw(self, data: bytes) -> bytes:
        """The same replacements in raw mail bytes (headers and 8-bit or plain bodies; text in
        base64 or quoted-printable parts is not seen, see docs/privacy.md)."""
        for pattern, replacement in self._patterns:
            bytes_pattern = re.compile(pattern.pattern.encode(), re.I)
            data = bytes_pattern.sub(_literal(replacement.encode()), data)
        return data


def scrub(value: Any, terms: list[Terms]) -> Any:
    """``value`` (a string, or JSON made of dicts, lists and scalars) with every person's
    identifiers replaced; keys of dicts too."""
    if isinstance(value, str):
        for t in terms:
            value = t.text(value)
        return value
    if isinstance(value, dict):
        return {scrub(k, terms): scrub(v, terms) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, terms) for v in value]
    return value


def mentions(value: Any, terms: list[Terms]) -> bool:
    return scrub(value, terms) != value
