"""Finding and replacing a person's identifiers in stored text, JSON values and raw bytes.

A person is identified by :class:`Terms`: their e-mail address, their name and the local part
of the address. Each is replaced by the matching part of a placeholder, case-insensitively:
the address first (so the local part inside it goes with it), then the name, then the local
part standing alone (``anna.nowak`` in "Pozdrawiam, anna.nowak", but not inside another
address such as ``anna.nowak@other.example``, which is somebody else's identifier).

The address and a full name identify wherever they are. A one-word name and the local part
are weak: "Anna" or "biuro" may be anybody or a plain word, so they are replaced only in text
known to be about the person (a row naming them strongly, or a ticket of theirs).
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

    @property
    def _name(self) -> str:
        name = (self.name or "").strip()
        if len(name) < MIN_NAME or name.lower() == self.address.lower():
            return ""
        return name

    @property
    def _full_name(self) -> bool:
        """A name of two words or more identifies; one word ("Anna") may be anybody's."""
        return len(self._name.split()) > 1

    @property
    def _distinctive_local(self) -> bool:
        """``zofia.kwiatkowska`` or ``jan2`` names a person; ``admin`` or ``biuro`` may be a word."""
        return any(c in ".-_+" or c.isdigit() for c in self.local_part)

    @cached_property
    def _patterns(self) -> list[tuple[re.Pattern[str], str, str]]:
        """(pattern, replacement, kind): kind ``strong`` (the address, a full name), ``name``
        (a one-word name) or ``local`` (the local part standing alone)."""
        found = [(re.compile(re.escape(self.address), re.I), self.new_address, "strong")]
        if self._name:
            found.append(
                (
                    re.compile(r"(?<!\w)" + re.escape(self._name) + r"(?!\w)", re.I),
                    self.new_name,
                    "strong" if self._full_name else "name",
                )
            )
        if len(self.local_part) >= MIN_LOCAL_PART:
            found.append(
                (
                    re.compile(
                        r"(?<![\w.+%-])" + re.escape(self.local_part) + r"(?![\w+%-]|@|\.\w)",
                        re.I,
                    ),
                    self.new_local_part,
                    "local",
                )
            )
        return found

    def needles(self, *, weak: bool = False) -> list[str]:
        """Lower-cased substrings a SQL ``LIKE`` looks for (each also as JSON escapes it): the
        address and a full name; with ``weak``, a one-word name and the local part too."""
        words = [self.address.lower()]
        if self._name and (weak or self._full_name):
            words.append(self._name.lower())
        if weak and len(self.local_part) >= MIN_LOCAL_PART:
            words.append(self.local_part.lower())
        escaped = [json.dumps(w)[1:-1] for w in words]
        return list(dict.fromkeys(words + escaped))

    def text(self, value: str, *, weak: bool = True) -> str:
        """``value`` with the identifiers replaced. The weak ones (a one-word name, the local
        part) only with ``weak``, where the text is known to be about the person; a string
        that is nothing but a plain local part (``"admin"``) is a word there, not a mention."""
        for pattern, replacement, kind in self._patterns:
            if kind != "strong" and not weak:
                continue
            if kind == "local" and not self._distinctive_local and not re.search(r"\s", value):
                continue
            value = pattern.sub(_literal(replacement), value)
        return value

    def raw(self, data: bytes) -> bytes:
        """The same replacements in raw mail bytes (headers and 8-bit or plain bodies; text in
        base64 or quoted-printable parts is not seen, see docs/privacy.md)."""
        for pattern, replacement, kind in self._patterns:
            if kind == "local" and not self._distinctive_local:
                continue  # "admin" in a mail is a word as often as a person
            bytes_pattern = re.compile(pattern.pattern.encode(), re.I)
            data = bytes_pattern.sub(_literal(replacement.encode()), data)
        return data


def scrub(value: Any, terms: list[Terms], *, weak: bool = True) -> Any:
    """``value`` (a string, or JSON made of dicts, lists and scalars) with every person's
    identifiers replaced; keys of dicts too."""
    if isinstance(value, str):
        for t in terms:
            value = t.text(value, weak=weak)
        return value
    if isinstance(value, dict):
        return {scrub(k, terms, weak=weak): scrub(v, terms, weak=weak) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, terms, weak=weak) for v in value]
    return value


def mentions(value: Any, terms: list[Terms], *, weak: bool = False) -> bool:
    return scrub(value, terms, weak=weak) != value
