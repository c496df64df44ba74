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

Importing this package has no side effects on the process's streams; only
``python -m pypool_worker`` takes them over. The core needs nothing but the
standard library.
"""

from .registry import Command, DuplicateCommand, Registry, command, registry

__version__ = "0.1.0"

__all__ = ["Command", "DuplicateCommand", "Registry", "command", "registry", "__version__"]
