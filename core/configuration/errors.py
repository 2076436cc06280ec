"""Configuration errors: each problem names the file, the line and the key path.

A configuration file is validated as a whole before anything is written, and every problem
found is kept, so an operator fixes a file in one round instead of one error per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.errors import InputError

Loc = tuple[str | int, ...]


def format_path(loc: Sequence[str | int]) -> str:
    """The key path as people write it: ``contracts[0].ticket_types[1].reaction``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def sentence(exc: BaseException) -> str:
    """An exception's message as the tail of a ``file:line: path: ...`` line.

    Other modules write whole sentences ("The duration '2x' is not understood."); after a
    colon they read better starting in lower case and without the full stop.
    """
    text = str(exc).strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a configuration file."""

    line: int
    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(InputError):
    """A configuration file that cannot be applied.

    ``str(error)`` is one line, as the command line promises for bad input: the first
    problem, then how many more there are and on which lines. ``problems`` holds them all
    and ``report`` is every problem on its own line, for a caller that shows the full list.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(problems)
        if not self.problems:
            raise ValueError("a ConfigError needs at least one problem")
        super().__init__(self._summary())

    def _summary(self) -> str:
        first, rest = self.problems[0], self.problems[1:]
        if not rest:
            return str(first)
        lines = ", ".join(str(n) for n in sorted({p.line for p in rest}))
        more = f"{len(rest)} more problem" + ("s" if len(rest) > 1 else "")
        return f"{first} (and {more}, on line{'s' if ',' in lines else ''} {lines})"

    @property
    def report(self) -> str:
        return "\n".join(str(p) for p in self.problems)
