"""The worker's settings: a versioned map the host replaces with ``pypool.apply_settings``.

The host owns the settings and sends them to every worker (including ones
started later); handlers read them with :func:`pypool_worker.settings`. A
worker only keeps the newest version it has received: a version older than
the current one is ignored, so a late or retried request cannot roll settings
back. This module must NOT know about frames, commands or DSPy.
"""

import copy
import threading
from typing import Any, Dict


class SettingsStore:
    """A settings map and its version (0 until the host applies one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._settings: Dict[str, Any] = {}

    @property
    def version(self) -> int:
        """The version of the settings in force (0: none applied yet)."""
        return self._version

    def apply(self, version: int, settings: Dict[str, Any]) -> bool:
        """Replaces the settings with ``settings`` unless ``version`` is older than the current one.

        Returns whether the settings were replaced.
        """
        fresh = copy.deepcopy(settings)
        with self._lock:
            if version < self._version:
                return False
            self._version = version
            self._settings = fresh
            return True

    def snapshot(self) -> Dict[str, Any]:
        """A private copy of the settings in force (changing it changes nothing)."""
        with self._lock:
            current = self._settings
        return copy.deepcopy(current)

    def get(self, key: str, default: Any = None) -> Any:
        """A copy of one setting, or ``default``."""
        with self._lock:
            current = self._settings
        return copy.deepcopy(current.get(key, default))


#: The process-wide settings that ``pypool.apply_settings`` replaces.
store = SettingsStore()


def settings() -> Dict[str, Any]:
    """The worker's current settings (a copy), as last applied by the host."""
    return store.snapshot()


def settings_version() -> int:
    """The version of the worker's current settings (0: none applied yet)."""
    return store.version
