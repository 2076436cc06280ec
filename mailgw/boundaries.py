"""Multipart boundaries matched without compiling a regular expression for every message.

The standard library's ``email.feedparser`` compiles one pattern per multipart part it reads:
``(?P<sep>--BOUNDARY)(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>\\r\\n|\\r|\\n)?$``. Every
boundary is new, so the ``re`` module's cache never helps: about 90 µs per boundary, a third
of :func:`mailgw.parsing.parse_message` for a plain text-and-HTML mail, and a mail from
Outlook has two or three. It also pushes every other pattern out of that cache in turn.

:func:`install` gives the feedparser a view of ``re`` whose ``compile`` recognises exactly
that pattern and answers with a matcher of the same behaviour: the literal separator by
``str.startswith``, the rest by one pattern compiled once. Any other pattern, and this one
should a later Python write it differently, goes to ``re.compile`` unchanged.
"""

from __future__ import annotations

import email.feedparser
import re
from types import ModuleType
from typing import Any

_HEAD = "(?P<sep>"
_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_REST = re.compile(_TAIL[1:])
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


class BoundaryMatcher:
    """What ``re.compile`` of the feedparser's boundary pattern returns, for ``match``."""

    __slots__ = ("separator", "pattern")

    def __init__(self, separator: str, pattern: str) -> None:
        self.separator = separator
        self.pattern = pattern

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _REST.match(line, len(self.separator))


def compile_boundary(pattern: Any, flags: int = 0) -> Any:
    """``re.compile``, but the feedparser's boundary pattern gives a :class:`BoundaryMatcher`."""
    if (
        flags == 0
        and isinstance(pattern, str)
        and pattern.startswith(_HEAD)
        and pattern.endswith(_TAIL)
    ):
        escaped = pattern[len(_HEAD) : -len(_TAIL)]
        # re.escape puts a backslash before each special character and nothing else.
        separator = _ESCAPED.sub(r"\1", escaped)
        if re.escape(separator) == escaped:
            return BoundaryMatcher(separator, pattern)
    return re.compile(pattern, flags)


class _FeedparserRe(ModuleType):
    """The ``re`` module as ``email.feedparser`` sees it: :func:`compile_boundary` for
    ``compile``, everything else the real module's."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    compile = staticmethod(compile_boundary)


def install() -> None:
    """Give ``email.feedparser`` the boundary matcher (once per process; idempotent)."""
    if not isinstance(getattr(email.feedparser, "re", None), _FeedparserRe):
        email.feedparser.re = _FeedparserRe("re")  # type: ignore[attr-defined]


def uninstall() -> None:
    """The real ``re`` module back (tests compare the two)."""
    email.feedparser.re = re  # type: ignore[attr-defined]
