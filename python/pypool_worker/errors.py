"""Errors a command can raise to choose the ``error.kind`` of its reply.

Any other exception a handler raises becomes a ``python_exception`` reply;
a :class:`CommandError` becomes an error reply of its own ``kind`` (one of the
kinds in docs/PROTOCOL.md, e.g. ``invalid_input``), with its message and no
exception type. This module must NOT know about frames or processes.
"""

from typing import Optional

#: A program's definition could not be built, or a command's arguments are malformed.
INVALID_ARGUMENTS = "invalid_arguments"
#: A program's inputs failed validation (missing, empty or unknown input).
INVALID_INPUT = "invalid_input"
#: ``pypool.run_program`` without a definition for a program the worker does not hold.
PROGRAM_NOT_CACHED = "program_not_cached"


class CommandError(Exception):
    """Ends a request with an error reply of kind :attr:`kind`."""

    def __init__(self, kind: str, message: str, traceback_text: Optional[str] = None) -> None:
        super().__init__(message)
        #: The reply's ``error.kind``.
        self.kind = kind
        #: The reply's ``error.message``.
        self.message = message
        #: An optional traceback for the reply (e.g. of a failed import).
        self.traceback_text = traceback_text


def invalid_arguments(message: str, traceback_text: Optional[str] = None) -> CommandError:
    """A :class:`CommandError` of kind ``invalid_arguments``."""
    return CommandError(INVALID_ARGUMENTS, message, traceback_text)


def invalid_input(message: str) -> CommandError:
    """A :class:`CommandError` of kind ``invalid_input``."""
    return CommandError(INVALID_INPUT, message)
