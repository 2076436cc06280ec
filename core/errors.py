"""Domain errors. Each carries a sentence for the person who caused it.

``InputError`` and its subclasses are the caller's fault (4xx in the API, a one-line message
on the command line); anything else is the operator's and is logged with a traceback.

The sentence is English (the API, the command line and the logs speak English). A sentence
the console shows is written as a template marked with :func:`N_` and its values passed by
name, ``InputError(N_("ticket #%(number)s is closed"), number=n)``: ``str(exc)`` is the English
sentence, and the console looks the template up in its catalogue (Babel extracts ``N_``) and
fills in the same values (:func:`localized`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def N_(message: str) -> str:
    """Marks a sentence for the console's catalogue; it stays English here."""
    return message


@dataclass(frozen=True)
class Phrase:
    """A value of a sentence that is itself translated with it: a word such as
    ``Phrase(N_("client"))`` in "there is no %(what)s %(name)r", or a whole nested sentence
    with its own values. ``str()`` is the English; :func:`localize` translates it in place."""

    template: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return localize(self.template, self.params)


def localize(
    template: str, params: Mapping[str, Any], gettext: Callable[[str], str] | None = None
) -> str:
    """``template`` filled with ``params``, both in the language of ``gettext`` (English
    without one): a :class:`Phrase` among the values is translated too."""
    text = gettext(template) if gettext is not None else template
    if not params:
        return text
    return text % {
        k: localize(v.template, v.params, gettext) if isinstance(v, Phrase) else v
        for k, v in params.items()
    }


class Invalid(ValueError):
    """A value refused with a catalogued sentence where a ``ValueError`` is expected (pydantic
    validators, parsers): template and values travel as :class:`InputError`'s do."""

    def __init__(self, message: str, /, **params: Any) -> None:
        self.template = message
        self.params = params
        super().__init__(localize(message, params))


class PulpitError(Exception):
    """Base of every error Pulpit raises on purpose."""


class InputError(PulpitError):
    """Bad input from a person or a program: answered with a 4xx and this sentence."""

    status_code = 400

    def __init__(self, message: str = "", /, **params: Any) -> None:
        self.template = message
        self.params = params
        super().__init__(localize(message, params))


def localized(exc: InputError | Invalid, gettext: Callable[[str], str]) -> str:
    """The sentence of ``exc`` in the language of ``gettext`` (English when not catalogued)."""
    return localize(exc.template, exc.params, gettext) if exc.template else str(exc)


class NotFound(InputError):
    status_code = 404


class Forbidden(InputError):
    status_code = 403


class Conflict(InputError):
    status_code = 409


class BulkRefused(Conflict):
    """A bulk change refused as a whole; ``reasons`` maps each refused ticket to a sentence,
    ``refusals`` to the error behind it (for :func:`localized`)."""

    def __init__(self, message: str, refusals: dict[int, InputError], /, **params: Any) -> None:
        super().__init__(message, **params)
        self.refusals = refusals
        self.reasons = {number: str(exc) for number, exc in refusals.items()}
