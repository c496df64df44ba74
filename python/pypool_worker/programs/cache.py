"""A bounded LRU cache of built programs, keyed by (namespace, program_id, version).

The host stores programs centrally; a worker only caches what it has built,
so any worker can run any program (it asks for the definition when it lacks
one). The namespace (``global`` or ``session:<id>``, sent by the host) is part
of the key, so a definition cached for one namespace is never run for a
program of another, even under the same id and version. Storing a version of
a program evicts every other version of it in the same namespace.
This module must NOT know how programs are built or run.
"""

import threading
from collections import OrderedDict
from typing import Any, Generic, Optional, Tuple, TypeVar

#: How many programs a worker keeps by default (``--program-cache``).
DEFAULT_CAPACITY = 256

P = TypeVar("P")
Key = Tuple[str, str, str]


class ProgramCache(Generic[P]):
    """Built programs, least recently used first; never holds more than ``capacity``.

    Safe to use from several threads (requests run concurrently)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the program cache needs room for at least 1 program, got %d" % capacity)
        #: The most programs held at once.
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: "OrderedDict[Key, P]" = OrderedDict()

    def get(self, namespace: str, program_id: str, version: str) -> Optional[P]:
        """The cached program (now the most recently used), or ``None``."""
        key = (namespace, program_id, version)
        with self._lock:
            program = self._entries.get(key)
            if program is not None:
                self._entries.move_to_end(key)
            return program

    def put(self, namespace: str, program_id: str, version: str, program: P) -> None:
        """Caches ``program``, replacing any version of ``program_id`` in ``namespace``
        and evicting the LRU beyond capacity."""
        with self._lock:
            for key in [key for key in self._entries if key[:2] == (namespace, program_id)]:
                del self._entries[key]
            self._entries[(namespace, program_id, version)] = program
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def versions(self, namespace: str, program_id: str) -> Tuple[str, ...]:
        """The cached versions of ``program_id`` in ``namespace`` (at most one)."""
        with self._lock:
            keys = list(self._entries)
        return tuple(version for (ns, cached_id, version) in keys if (ns, cached_id) == (namespace, program_id))

    def peek(self, namespace: str, program_id: str, version: str) -> Optional[P]:
        """The cached program, without making it the most recently used, or ``None``."""
        with self._lock:
            return self._entries.get((namespace, program_id, version))

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
