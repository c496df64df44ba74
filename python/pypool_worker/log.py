"""Logging to stderr, which the host forwards line by line to its own logs.

This module must NOT write anywhere but stderr: stdout belongs to the frame
stream.
"""

import logging
import sys

#: Accepted ``--log-level`` values.
LEVELS = ("debug", "info", "warning", "error")

#: The logger the worker runtime uses.
logger = logging.getLogger("pypool_worker")

_FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure(level: str) -> logging.Logger:
    """Sends every record at ``level`` or above (the worker's and handlers') to stderr."""
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        raise ValueError("unknown log level %r; use one of %s" % (level, ", ".join(LEVELS)))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    if sys.stderr is not None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)
    return logger
