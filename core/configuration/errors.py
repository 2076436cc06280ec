"""Configuration errors: each problem names the file, the line and the key path.

A configuration file is validated as a whole before anything is written, and every problem
found is kept, so an operator fixes a file in one round instead of one error per run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import InputError, Invalid, localize

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


def tail(text: str) -> str:
    """A sentence as the tail of a ``file:line: path: ...`` line.

    Other modules write whole sentences ("The duration '2x' is not understood."); after a
    colon they read better starting in lower case and without the full stop.
    """
    text = text.strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text


def sentence(exc: BaseException) -> str:
    """An exception's message as the tail of a ``file:line: path: ...`` line."""
    return tail(str(exc))


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a configuration file.

    ``message`` is the English sentence (the command line's). ``template`` and ``params``,
    when set, are the same sentence as a catalogued template (``N_``) and its values, so the
    admin console can say it in the admin's language (:meth:`localized`).
    """

    line: int
    source: str
    path: str
    message: str
    template: str = field(default="", compare=False)
    params: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # The template is another module's whole sentence ("The duration ... is not understood."),
    # shown as a tail (:func:`tail`) in every language.
    whole: bool = field(default=False, compare=False)

    @classmethod
    def of(cls, line: int, source: str, path: str, template: str, /, **params: Any) -> Problem:
        """A problem from a catalogued template and its values."""
        return cls(line, source, path, localize(template, params), template, params)

    def localized(self, gettext: Callable[[str], str]) -> str:
        """The sentence in the language of ``gettext`` (English when not catalogued)."""
        if not self.template:
            return self.message
        text = localize(self.template, self.params, gettext)
        return tail(text) if self.whole else text

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def template_of(exc: BaseException) -> tuple[str, Mapping[str, Any]]:
    """The catalogued template and values an exception carries (``InputError``,
    ``Invalid``), or ``("", {})`` for one that has none."""
    if isinstance(exc, InputError | Invalid) and exc.template:
        return exc.template, exc.params
    return "", {}


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
