"""Programs: named, versioned units of work the host stores and workers cache.

The host keeps every program's definition; a worker builds a program the
first time it sees its definition and caches it (bounded LRU keyed by
program id and version), so any worker can run any program. Two kinds exist:
``python`` (a function named ``module:function``) and ``dspy`` (a DSPy 3
module built from a typed signature string).

This package imports only the standard library; DSPy is imported the first
time a dspy program is built or :func:`dspy_definition` is called, or at start
with ``--preload dspy`` (which also imports LiteLLM, used to price LM usage, so
a worker's first request does not pay for that import).
"""

import sys
from typing import Iterable

from .cache import DEFAULT_CAPACITY, ProgramCache
from .dspy_kind import dspy_definition, load_dspy, load_pricing
from .lm_config import LMConfigError
from .runner import ProgramRunner
from .validate import KINDS

#: What ``--preload`` accepts.
PRELOADABLE = ("dspy",)


def preload(names: Iterable[str]) -> None:
    """Imports the named optional libraries now instead of on first use
    (``dspy`` with LiteLLM, which prices the usage of its LM calls, if installed)."""
    for name in names:
        if name == "dspy":
            load_dspy()
            load_pricing()
        else:
            raise ValueError("cannot preload %r (preloadable: %s)" % (name, ", ".join(PRELOADABLE)))


def dspy_loaded() -> bool:
    """Whether DSPy has been imported in this process."""
    return "dspy" in sys.modules


__all__ = [
    "DEFAULT_CAPACITY",
    "KINDS",
    "LMConfigError",
    "PRELOADABLE",
    "ProgramCache",
    "ProgramRunner",
    "dspy_definition",
    "dspy_loaded",
    "preload",
]

