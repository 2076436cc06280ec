"""Domain errors. Each carries a sentence for the person who caused it.

``InputError`` and its subclasses are the caller's fault (4xx in the API, a one-line message
on the command line); anything else is the operator's and is logged with a traceback.
"""

from __future__ import annotations


class PulpitError(Exception):
    """Base of every error Pulpit raises on purpose."""


class InputError(PulpitError):
    """Bad input from a person or a program: answered with a 4xx and this sentence."""

    status_code = 400


class NotFound(InputError):
    status_code = 404


class Forbidden(InputError):
    status_code = 403


class Conflict(InputError):
    status_code = 409


class BulkRefused(Conflict):
    """A bulk change refused as a whole; ``reasons`` maps each refused ticket to a sentence."""

    def __init__(self, message: str, reasons: dict[int, str]) -> None:
        super().__init__(message)
        self.reasons = reasons
