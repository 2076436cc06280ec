"""``email.policy.default`` without its per-header class creation.

CPython's :class:`email.headerregistry.HeaderRegistry` answers every header lookup by building
a new class (``type('_' + cls.__name__, (cls, base), {})``), so each header parsed or set costs
a class creation and an ABC registration: in our profiles that was a fifth of building an
outgoing mail and a good part of reading an incoming one. The class depends only on the
header's name, so it is made once per name here. Same behaviour, same header objects.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from typing import Any


class CachedHeaderRegistry(HeaderRegistry):
    """A :class:`HeaderRegistry` that makes the class for each header name once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._classes: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        super().map_to_type(name, cls)
        self._classes.pop(name.lower(), None)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


#: ``policy.default`` (RFC-aware headers, ``\n`` line ends) with the cached registry.
DEFAULT = policy.default.clone(header_factory=CachedHeaderRegistry())
