"""pypool_worker: the Python side of pypool, a supervised pool of Python workers.

A worker imports handler modules, announces their commands to the Rust host
and serves requests over framed JSON (docs/PROTOCOL.md). Handler modules use
only this package's public API::

    from pypool_worker import command

    @command
    def add(a, b):
        return a + b

    @command("summarise", idempotent=True)
    def summarise(text):
        ...

Handlers read the settings the host applied with :func:`settings`, and may
raise :class:`CommandError` to reply with a specific error kind (e.g.
``invalid_input``). Built-in commands ``pypool.run_program`` and
``pypool.apply_settings`` serve programs the host stores centrally (see
:mod:`pypool_worker.programs`).

Importing this package has no side effects on the process's streams; only
``python -m pypool_worker`` takes them over. The core needs nothing but the
standard library.
"""

from .errors import CommandError
from .registry import Command, DuplicateCommand, Registry, command, registry
from .results import WithUsage
from .streaming import streaming_requested
from .settings_store import settings, settings_version

__version__ = "0.1.0"

__all__ = [
    "Command",
    "CommandError",
    "DuplicateCommand",
    "Registry",
    "command",
    "registry",
    "settings",
    "settings_version",
    "streaming_requested",
    "WithUsage",
    "__version__",
]
