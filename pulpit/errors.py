"""The error a command raises to end with a one-line message and a chosen exit code."""

from __future__ import annotations

# Exit codes: 2 for bad input (as argparse uses), 1 for an operational failure.
EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


class CommandError(Exception):
    """A command cannot go on; ``str(error)`` is the sentence printed after ``pulpit:``."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code
