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

from collections.abc import Callable
from typing import Any


def N_(message: str) -> str:
    """Marks a sentence for the console's catalogue; it stays English here."""
    return message


class PulpitError(Exception):
    """Base of every error Pulpit raises on purpose."""


class InputError(PulpitError):
    """Bad input from a person or a program: answered with a 4xx and this sentence."""

    status_code = 400

    def __init__(self, message: str = "", /, **params: Any) -> None:
        self.template = message
        self.params = params
        super().__init__(message % params if params else message)


def localized(exc: InputError, gettext: Callable[[str], str]) -> str:
    """The sentence of ``exc`` in the language of ``gettext`` (English when not catalogued)."""
    text = gettext(exc.template) if exc.template else str(exc)
    return text % exc.params if exc.params else text


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
